"""The iterative schedule: K rounds of (prune, then whatever the caller does), ending at the plan.

One implementation for every caller: ``ap.prune`` (``finetune(model, round)`` between rounds, the
user's own loop) and the run layer (audioprune.runs.prune: fine-tuning, checkpoints and a record
per round) both call :func:`prune_in_rounds` and differ only in what `after_round` does.

Counts. The plan's per-layer counts are reached in `rounds` steps whose kept fraction shrinks
geometrically, (kept_final / n) ** (k / rounds) after round k: each round removes about the same
FRACTION of what is left (:func:`schedule_counts`). Each round re-scores the model as it is then.

Numbering. Torch-Pruning renumbers a layer's filters after every removal; :class:`ScheduleState`
keeps, per layer, which of the ORIGINAL filters are still there, so that every round's removal
is also known in the numbering of the model the schedule started from.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from audioprune.errors import ArgumentError

if TYPE_CHECKING:
    from audioprune.pruning.plan import ResolvedPlan


class Stepper(Protocol):
    """What a schedule needs of a pruner (pruning.pruner.Pruner is one): remove counts[name]
    units from each layer and return the removed indices. A protocol, so that the schedule does
    not import the pruner that calls it."""

    def step(self, counts: Mapping[str, int]) -> dict[str, list[int]]: ...

__all__ = ["SHAPES", "ScheduleState", "prune_in_rounds", "prune_round", "schedule_counts"]


SHAPES = ("geometric", "cubic")


def schedule_counts(final: Mapping[str, int], n_units: Mapping[str, int], rounds: int,
                    shape: str = "geometric") -> list[dict[str, int]]:
    """Cumulative counts after each of `rounds` rounds, ending exactly at `final`.

    geometric  the kept fraction shrinks as (kept_final / n) ** (k / rounds): each round removes
               about the same fraction of what is left
    cubic      the removed fraction rises as final * (1 - (1 - k / rounds) ** 3) (Zhu & Gupta
               2017): much early, while the network can recover, little at the end
    """
    if rounds < 1:
        raise ArgumentError(f"`iterative` needs at least 1 round, got {rounds}")
    if shape not in SHAPES:
        raise ArgumentError(f"unknown `prune_schedule` {shape!r}; choose from "
                            f"{', '.join(SHAPES)}")
    out = []
    prev = {name: 0 for name in final}
    for k in range(1, rounds + 1):
        step = {}
        for name, c in final.items():
            n = n_units[name]
            if shape == "cubic":
                cum = round(c * (1 - (1 - k / rounds) ** 3))
            else:
                cum = n - round(n * ((n - c) / n) ** (k / rounds))
            step[name] = c if k == rounds else min(c, max(prev[name], cum))
        out.append(step)
        prev = step
    return out


@dataclass
class ScheduleState:
    """Where a schedule stands: rounds done, the cumulative counts removed so far, and per layer
    the original indices of the filters still there."""

    kept: dict[str, list[int]]  # layer -> original indices of the filters left, in order
    done: int = 0
    removed_so_far: dict[str, int] = field(default_factory=dict)
    rounds: list[dict[str, list[int]]] = field(default_factory=list)  # as numbered at each round
    original_rounds: list[dict[str, list[int]]] = field(default_factory=list)  # the same, originally

    @classmethod
    def start(cls, plan: ResolvedPlan) -> ScheduleState:
        return cls({n: list(range(k)) for n, k in plan.n_units.items()},
                   removed_so_far={n: 0 for n in plan.counts})

    def record(self, removal: Mapping[str, list[int]]) -> dict[str, list[int]]:
        """Note one round's removal (numbered as the layers were); return it in the original
        numbering."""
        original = {}
        for name, idxs in removal.items():
            original[name] = [self.kept[name][i] for i in idxs]
            gone = set(idxs)
            self.kept[name] = [p for i, p in enumerate(self.kept[name]) if i not in gone]
        self.rounds.append({k: list(v) for k, v in removal.items()})
        self.original_rounds.append(original)
        self.done += 1
        return original

    def removed(self, plan: ResolvedPlan) -> dict[str, list[int]]:
        """Every filter removed so far, in the original numbering."""
        return {n: sorted(set(range(plan.n_units[n])) - set(self.kept[n])) for n in plan.counts}

    def to_dict(self) -> dict[str, Any]:
        return {"kept": self.kept, "done": self.done, "removed_so_far": self.removed_so_far,
                "rounds": self.rounds, "original_rounds": self.original_rounds}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> ScheduleState:
        return cls({k: list(v) for k, v in d["kept"].items()}, int(d["done"]),
                   dict(d["removed_so_far"]), [dict(r) for r in d["rounds"]],
                   [dict(r) for r in d.get("original_rounds", [])])


# after_round(round number, removal in the original numbering, the state after it) -> a new
# pruner when the caller replaced the model (e.g. reloaded it), else None to go on with this one
AfterRound = Callable[[int, dict[str, list[int]], ScheduleState], "Stepper | None"]


def prune_in_rounds(pruner: Stepper, plan: ResolvedPlan, rounds: int, *,
                    after_round: AfterRound | None = None,
                    state: ScheduleState | None = None, shape: str = "geometric") -> ScheduleState:
    """Prune `plan` in `rounds` rounds with `pruner` (its criterion re-scores the model before
    each), calling `after_round` after every round (the last one too: the run layer fine-tunes
    after it; ``ap.prune`` does nothing then). `state` continues a schedule stopped after
    `state.done` rounds; `shape` is schedule_counts'."""
    state = state or ScheduleState.start(plan)
    steps = schedule_counts(plan.counts, plan.n_units, rounds, shape)
    for k in range(state.done + 1, rounds + 1):
        prune_round(pruner, state, steps[k - 1])
        if after_round is not None:
            pruner = after_round(k, state.original_rounds[-1], state) or pruner
    return state


def prune_round(pruner: Stepper, state: ScheduleState, cumulative: Mapping[str, int]) -> None:
    """One round: remove what `cumulative` adds to what `state` has removed so far."""
    removal = pruner.step({n: cumulative[n] - state.removed_so_far[n] for n in cumulative})
    state.record(removal)
    state.removed_so_far = dict(cumulative)
