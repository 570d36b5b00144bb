"""One MAC budget split between input resolution and width, by search.

Filter pruning narrows layers; an audio model's MACs fall as much with the frames and mel bins
it reads. ``split_budget`` tries a small grid of (time, frequency) coarsenings: for each, the
caller's `build(time, freq)` gives the model at that resolution (audioprune's own models:
``audioprune.models.resolution.coarsen``; your model: build it from its hop and mel count), the
width plan that brings it to the budget is pruned (the spec's criterion), and the caller's
`score(model)` (a short fine-tune, then a metric on held-back training data; higher is better)
rates it. The best-scoring candidate wins; every candidate's costs and score are returned, so
the choice can be recorded beside the plan.

Candidates whose coarsening alone leaves less than (1 - `tolerance`) of the budget used are
skipped: widths cannot grow back, so they could not be compared at the budget. So are those
whose width plan lands more than `tolerance` under the budget (a few wide filters can make the
plan's steps coarse): a candidate that spends less than the budget is not a comparison at it,
and the benchmarks would flag the winner as having missed it.
"""

from __future__ import annotations

import time as timer
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from torch import nn

from audioprune.errors import ArgumentError
from audioprune.measure.counting import count
from audioprune.model_inputs import ForwardFn

__all__ = ["DEFAULT_GRID", "Candidate", "SplitResult", "split_budget", "width_plan"]

# (time, freq): hop x time, mel bins x freq
DEFAULT_GRID: tuple[tuple[float, float], ...] = (
    (1.0, 1.0), (1.5, 1.0), (2.0, 1.0), (1.0, 0.75), (1.5, 0.75), (2.0, 0.75),
    (1.0, 0.5), (1.5, 0.5), (2.0, 0.5))


@dataclass
class Candidate:
    """One (time, freq) of the grid: its MACs coarsened, after the width plan, and its score."""

    time: float
    freq: float
    coarse_macs: int
    macs: int | None = None
    params: int | None = None
    score: float | None = None
    seconds: float = 0.0
    skipped: str | None = None  # why it was not tried

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class SplitResult:
    """The winner (its model pruned to the budget, not yet fine-tuned beyond `score`'s) and
    every candidate's record."""

    time: float
    freq: float
    candidates: list[Candidate] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return {"chosen": {"time": self.time, "freq": self.freq}, "seconds": round(self.seconds, 2),
                "grid": [c.to_dict() for c in self.candidates]}


def width_plan(plan: Any, target_macs: int) -> Any:
    """`plan` (an audioprune.Plan) with its MAC budget made the absolute count `target_macs`: a
    fraction meant the model at its original resolution, which the coarsened one no longer is."""
    return plan.replace(target_macs=int(target_macs), budget=None) if plan.budget is None else plan


def split_budget(build: Callable[[float, float], tuple[nn.Module, Any]], target_macs: int,
                 prune: Callable[[nn.Module, Any, int], Any],
                 score: Callable[[nn.Module], float], *,
                 grid: Sequence[tuple[float, float]] = DEFAULT_GRID,
                 forward_fn: ForwardFn | str | None = None,
                 tolerance: float = 0.02) -> SplitResult:
    """Choose the (time, freq) coarsening and widths that score best at `target_macs` MACs
    (see the module doc). `prune(model, example_inputs, target_macs)` prunes a candidate's
    widths in place (e.g. ``ap.prune`` with the spec's criterion and an absolute target);
    `score(model)` rates the pruned candidate."""
    if not grid:
        raise ArgumentError("`grid` holds no (time, freq) pair")
    started = timer.perf_counter()
    tried: list[Candidate] = []
    best: Candidate | None = None
    for t, f in grid:
        t0 = timer.perf_counter()
        model, inputs = build(t, f)
        coarse = count(model, inputs, forward_fn).macs
        cand = Candidate(float(t), float(f), coarse)
        tried.append(cand)
        if coarse < (1 - tolerance) * target_macs:
            cand.skipped = (f"the coarsening alone keeps {coarse:,} MACs, under the budget's "
                            f"{target_macs:,}: widths cannot grow back to use it")
            continue
        if coarse > target_macs:
            prune(model, inputs, target_macs)
        after = count(model, inputs, forward_fn)
        cand.macs, cand.params = after.macs, after.params
        if after.macs < (1 - tolerance) * target_macs:
            cand.skipped = (f"its widths land at {after.macs:,} MACs, more than {tolerance:.0%} "
                            f"under the budget's {target_macs:,}: not comparable at the budget")
            cand.seconds = round(timer.perf_counter() - t0, 2)
            continue
        cand.score = float(score(model))
        cand.seconds = round(timer.perf_counter() - t0, 2)
        if best is None or cand.score > best.score:  # ties: the earlier (finer) one
            best = cand
    if best is None:
        raise ArgumentError(f"no (time, freq) of `grid` fits {target_macs:,} MACs within "
                            f"{tolerance:.0%}: every coarsening, or its width plan, undercuts it; "
                            f"use a finer grid, a larger `tolerance` or a ratio")
    return SplitResult(best.time, best.freq, tried, timer.perf_counter() - started)
