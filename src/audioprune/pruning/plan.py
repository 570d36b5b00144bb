"""What to prune: which layers, how many filters of each.

A plan is one of
  ratio R          the same fraction R (0 <= R < 1) of the filters of every selected layer
  ratios {L: R}    a fraction per layer (names, glob patterns or aliases as keys)
  target_macs X    the smallest uniform ratio over the selected layers whose pruned model has at
  target_params Y  most X MACs (per example, as the graph's forward runs) / Y parameters, by
                   binary search; X and Y are counts (30_000_000, "30M", "128k") or fractions
                   of the model's own (0.5, "50%"). Then (``fill``, default on) filters are
                   given back, layer by layer, as long as the budget still holds: a uniform
                   ratio moves in steps of one filter per layer at once, so on small layers it
                   can land far below the budget (dcase21net at 15% of its MACs: 10.9% uniform);
                   giving back what still fits brings it to the budget (14.9%), so that methods
                   are compared at the budget they were given
  budget B         a challenge's limits at once (measure.budget: "dcase2024" = 128 kB of
                   parameters at `precision` and 30 MMACs per second of audio), turned into
                   target_params (bytes / bytes per parameter) and target_macs (per second x
                   the seconds one example holds: the model's front end clip length, or
                   `clip_seconds`); every limit holds
plus the layer selection (``layers``: names, glob patterns such as ``block4.*``, or the C<k>
aliases of pruning/layers.py; default every prunable layer) and ``global_ranking``. How a budget
is read (fractions, counts) is pruning/targets.py; what a plan costs, pruning/costs.py.

Counting. A fraction R of a layer with n filters removes floor(R * n) of them (quaternions for
quaternion layers), never more than n - 1: every layer keeps at least one filter. With
``round_to`` R, every pruned layer keeps a multiple of R units (rounded up: fewer removed) or all
of them: a CPU computes output channels in SIMD blocks (16 fp32 lanes on AVX-512, 8 on AVX2), so
a width between two multiples costs the time of the next one (measure/blocking.py); budgets then
search and fill in those steps.

Global ranking (``global_ranking=True``, with a ratio or a budget): instead of the same fraction
everywhere, the filters of all selected layers compete in one ranking and a fraction R of ALL of
them is removed, so a layer full of redundant filters loses more. Scores of different layers are
not comparable as they come (norms scale with the fan-in, degree centralities with the number of
filters), so each layer's scores are first normalised:
  minmax (default)  (s - min) / (max - min) per layer: the most prunable filter of every layer
                    scores 1 and the least 0; what differs between layers is how the rest are
                    spread, i.e. how many filters are nearly as prunable as the most prunable one.
  zscore            (s - mean) / std per layer.
(Rank normalisation is not offered: it makes every layer's scores the same uniform spread, and
the global ranking then collapses to the uniform ratio.) Ties go to the earlier layer, then the
lower index. The one-filter floor still applies per layer.

Sensitivity allocation (``allocation="sensitivity"``, budgets only): each selected layer is
pruned ALONE at eighths of its width on calibration batches and the loss rise recorded
(pruning/sensitivity.py); every layer then loses as many units as keep its rise within one
tolerance, and the tolerance (the search level) is bisected until the budget holds, after which
filters are given back as in the uniform search.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from torch import nn

from audioprune.errors import ArgumentError, ArgumentTypeError
from audioprune.measure.budget import complexity, parse_budget, targets_for
from audioprune.pruning.costs import PlanCosts
from audioprune.pruning.criteria import prune_order
from audioprune.pruning.layers import resolve_layers
from audioprune.pruning.sensitivity import SensitivityCurve, tolerance_counts
from audioprune.pruning.targets import check_ratio, parse_target

__all__ = [
    "ALLOCATIONS",
    "NORMALISATIONS",
    "Plan",
    "ResolvedPlan",
    "counts_for_ratio",
    "fill_budget",
    "global_counts",
    "normalise_scores",
    "resolve_plan",
    "round_counts",
]

NORMALISATIONS = ("minmax", "zscore")
ALLOCATIONS = ("uniform", "sensitivity")


# ------------------------------------------------------------------------------------ counts


def counts_for_ratio(ratio: float, n_units: Mapping[str, int]) -> dict[str, int]:
    """floor(ratio * n) filters of each layer, at most n - 1."""
    return {name: min(math.floor(ratio * n + 1e-9), n - 1) for name, n in n_units.items()}


def round_counts(counts: Mapping[str, int], n_units: Mapping[str, int],
                 round_to: int | None) -> dict[str, int]:
    """Counts whose kept widths are rounded UP to a multiple of `round_to` (at most the layer's
    width): fewer filters removed, never more (as Torch-Pruning's round_to)."""
    if not round_to or round_to == 1:
        return dict(counts)
    out = {}
    for name, c in counts.items():
        n = n_units[name]
        out[name] = n - min(n, math.ceil((n - c) / round_to) * round_to)
    return out


def _aligned(kept: int, n: int, round_to: int | None) -> bool:
    return not round_to or kept % round_to == 0 or kept == n


def normalise_scores(scores: np.ndarray, how: str) -> np.ndarray:
    s = np.asarray(scores, dtype=np.float64)
    if how == "minmax":
        span = s.max() - s.min()
        return (s - s.min()) / span if span > 0 else np.full_like(s, 0.5)
    if how == "zscore":
        std = s.std()
        return (s - s.mean()) / std if std > 0 else np.zeros_like(s)
    raise ArgumentError(f"unknown `normalise` {how!r}; choose from {', '.join(NORMALISATIONS)}")


def global_counts(fraction: float, scores: Mapping[str, np.ndarray], how: str = "minmax") -> dict[str, int]:
    """Filters to remove per layer when floor(fraction * total) of all of them go by one ranking."""
    names = list(scores)
    total = sum(len(scores[n]) for n in names)
    budget = math.floor(fraction * total + 1e-9)
    entries = []  # (-normalised score, layer position, filter position in the layer's prune order)
    for li, name in enumerate(names):
        norm = normalise_scores(scores[name], how)
        for pos, idx in enumerate(prune_order(scores[name])):
            entries.append((-norm[idx], li, pos))
    entries.sort()
    counts = {n: 0 for n in names}
    caps = {n: len(scores[n]) - 1 for n in names}
    for _, li, _pos in entries:
        if budget <= 0:
            break
        name = names[li]
        if counts[name] < caps[name]:
            counts[name] += 1  # a layer's filters come out in its own prune order
            budget -= 1
    return counts


# ------------------------------------------------------------------------------------ plans


@dataclass(frozen=True)
class Plan:
    """What to prune, as one value: exactly one of `ratio`, `ratios`, `target_macs`,
    `target_params`, `budget` (or `target_macs` and `target_params` together), plus the layer
    selection and how a budget is split. Checked and normalised when it is made (budgets read by
    pruning/targets.py: fractions in (0, 1) or counts >= 1), so a Plan that exists is valid;
    frozen, so every layer below the edge that built it sees the same request.

        ap.Plan(ratio=0.5)                                  # half the filters of every layer
        ap.Plan(ratios={"C1": 0.5, "C2": 0.5})              # per layer (names, patterns, C<k>)
        ap.Plan(target_macs=0.3, layers=["block4.*"])       # 30% of the MACs, in those layers
        ap.Plan(budget="dcase2024", round_to=16)            # a challenge's limits, SIMD-aligned
    """

    ratio: float | None = None
    ratios: Mapping[str, float] | None = None
    target_macs: int | float | str | None = None  # a count, or a fraction of the model's MACs
    target_params: int | float | str | None = None
    layers: Sequence[str] | None = None
    global_ranking: bool = False
    normalise: str = "minmax"
    fill: bool = True  # budgets: give filters back while the budget holds (uniform plans)
    round_to: int | None = None  # kept widths a multiple of this (SIMD blocks: measure.blocking)
    budget: str | None = None  # "dcase2024" or "params_bytes=128k,macs=30M" (measure.budget)
    precision: str = "int8"  # what a parameter costs under `budget` (int8: one byte)
    clip_seconds: float | None = None  # audio per example, for `budget`'s MACs per second
    allocation: str = "uniform"  # budgets: "uniform" ratio, or by layer "sensitivity"

    def __post_init__(self) -> None:
        def put(name: str, value: Any) -> None:
            object.__setattr__(self, name, value)

        mode = self.mode
        if self.ratio is not None:
            put("ratio", check_ratio(self.ratio, "ratio"))
        if self.ratios is not None:
            if not isinstance(self.ratios, Mapping) or not self.ratios:
                raise ArgumentError("`ratios` must map layer names (or patterns, C1-style "
                                    "aliases) to fractions, e.g. {'conv1': 0.5}")
            put("ratios", {str(k): check_ratio(v, "ratios", str(k)) for k, v in self.ratios.items()})
            if self.layers is not None:
                raise ArgumentError("`ratios` names its layers; drop `layers`")
            if self.global_ranking:
                raise ArgumentError("`global_ranking` ranks filters across layers; it goes with "
                                    "`ratio` or a budget, not with per-layer `ratios`")
        for key in ("target_macs", "target_params"):
            if getattr(self, key) is not None:
                put(key, parse_target(getattr(self, key), key))
        if self.budget is not None:
            parse_budget(self.budget)
            complexity(0, 0, 1.0, self.precision)  # checks `precision`
        if self.round_to is not None and (isinstance(self.round_to, bool) or not isinstance(
                self.round_to, int) or self.round_to < 1):
            raise ArgumentError(f"`round_to` must be a positive integer (e.g. 16: the fp32 lanes "
                                f"of AVX-512), got {self.round_to!r}")
        if self.clip_seconds is not None and not (isinstance(self.clip_seconds, (int, float))
                                                  and self.clip_seconds > 0):
            raise ArgumentError(f"`clip_seconds` must be a positive number of seconds, got "
                                f"{self.clip_seconds!r}")
        if self.layers is not None:
            if isinstance(self.layers, str) or not all(isinstance(x, str) for x in self.layers):
                raise ArgumentTypeError("`layers` must be a list of layer names, glob patterns or "
                                        "aliases such as C7-C12")
            put("layers", list(self.layers))
        if self.allocation not in ALLOCATIONS:
            raise ArgumentError(f"unknown `allocation` {self.allocation!r}; choose from "
                                f"{', '.join(ALLOCATIONS)}")
        if self.allocation == "sensitivity":
            if mode not in ("target_macs", "target_params", "budget"):
                raise ArgumentError("`allocation` 'sensitivity' spreads a budget over the layers: "
                                    "give `target_macs`, `target_params` or `budget`")
            if self.global_ranking:
                raise ArgumentError("`allocation` 'sensitivity' and `global_ranking` are two ways "
                                    "to split a budget between layers: choose one")
        if self.normalise not in NORMALISATIONS:
            raise ArgumentError(f"unknown `normalise` {self.normalise!r}; choose from "
                                f"{', '.join(NORMALISATIONS)}")

    @property
    def mode(self) -> str:
        given = [k for k in ("ratio", "ratios", "target_macs", "target_params", "budget")
                 if getattr(self, k) is not None]
        if given == ["target_macs", "target_params"] or given == ["budget"]:
            return "budget"  # both at once (a challenge's limits): every target holds
        if len(given) != 1:
            raise ArgumentError("give exactly one of `ratio`, `ratios`, `target_macs`, "
                                "`target_params`, `budget`" +
                                (f" (got {', '.join(f'`{g}`' for g in given)})" if given else ""))
        return given[0]

    def replace(self, **changes: Any) -> Plan:
        """This plan with some fields changed (checked again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["ratios"] = dict(self.ratios) if self.ratios is not None else None
        d["layers"] = list(self.layers) if self.layers is not None else None
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Plan:
        return cls(**dict(d))


@dataclass
class ResolvedPlan:
    """How many filters (quaternions in quaternion layout) to remove from each selected layer."""

    counts: dict[str, int]
    n_units: dict[str, int]
    mode: str
    level: float | None = None  # the uniform ratio / global fraction used (found by the search)
    predicted: dict[str, int] = field(default_factory=dict)  # params, macs of the pruned model
    filled: bool = False  # filters were given back after the uniform search (fill_budget)
    sensitivity: dict[str, Any] | None = None  # allocation "sensitivity": each layer's curve
    base: dict[str, int] = field(default_factory=dict)  # params, macs of the model as planned on

    @property
    def ratios(self) -> dict[str, float]:
        return {n: self.counts[n] / self.n_units[n] for n in self.counts}

    def to_dict(self) -> dict[str, Any]:
        return {"mode": self.mode, "level": self.level, "counts": self.counts,
                "filters": self.n_units, "ratios": {k: round(v, 6) for k, v in self.ratios.items()},
                "predicted": self.predicted, "filled": self.filled,
                **({"sensitivity": self.sensitivity} if self.sensitivity else {})}


def resolve_plan(spec: Plan, graph: Any,
                 scores: Callable[[list[str]], dict[str, np.ndarray]] | None = None,
                 sensitivity: Callable[[list[str]], Mapping[str, SensitivityCurve]] | None = None,
                 exact_costs: bool = False) -> ResolvedPlan:
    """Turn `spec` into per-layer counts for the model behind `graph` (an engine.PruningGraph).

    `scores(names)` returns per-filter scores (our convention) of those layers; it is called only
    for global ranking. `sensitivity(names)` measures those layers' loss-rise curves; it is
    called only for ``allocation="sensitivity"``. `exact_costs` counts every candidate of a
    budget search on a pruned copy instead of by layer (pruning/costs.py: the same plans,
    slower; the reference the layer model is checked against).
    """
    mode = spec.mode
    layers = graph.layers()
    skipped = getattr(graph, "skipped", {})
    module_names = [n for n, _ in graph.model.named_modules()]
    n_units_all = {name: layer.n_units for name, layer in layers.items()}

    if mode == "ratios":
        counts: dict[str, int] = {}
        for pattern, r in spec.ratios.items():  # type: ignore[union-attr]
            for name in resolve_layers([pattern], layers, skipped, module_names):
                counts[name] = counts_for_ratio(r, {name: n_units_all[name]})[name]
        ordered = round_counts({n: counts[n] for n in layers if n in counts}, n_units_all,
                               spec.round_to)
        return _finish(ResolvedPlan(ordered, {n: n_units_all[n] for n in ordered}, mode), graph)

    selected = resolve_layers(spec.layers, layers, skipped, module_names)
    n_units = {n: n_units_all[n] for n in selected}
    layer_scores = scores(selected) if spec.global_ranking and scores is not None else None
    if spec.global_ranking and layer_scores is None:
        raise ValueError("global ranking needs the layers' scores")
    if not selected:
        raise ArgumentError("the model has no prunable layer (outputs, frozen layers and "
                            "`ignored_layers` are left alone)")

    curves = None
    if spec.allocation == "sensitivity":
        if sensitivity is None:
            raise ValueError("sensitivity allocation needs the layers' loss curves")
        curves = sensitivity(selected)

    def counts_at(level: float) -> dict[str, int]:
        if curves is not None:
            return round_counts(tolerance_counts(level, curves), n_units, spec.round_to)
        if layer_scores is not None:
            return round_counts(global_counts(level, layer_scores, spec.normalise), n_units,
                                spec.round_to)
        return round_counts(counts_for_ratio(level, n_units), n_units, spec.round_to)

    if mode == "ratio":
        return _finish(ResolvedPlan(counts_at(spec.ratio), n_units, mode, spec.ratio), graph)  # type: ignore[arg-type]

    costs = PlanCosts(graph.model, graph, by_layer=not exact_costs)
    base = costs({})
    targets: dict[str, int] = {}
    asked_targets = _budget_targets(spec, graph.model) if spec.budget is not None else \
        {"target_macs": spec.target_macs, "target_params": spec.target_params}
    for metric, key in (("macs", "target_macs"), ("params", "target_params")):
        asked = asked_targets.get(key)
        if asked is not None:
            targets[metric] = round(asked * base[metric]) if isinstance(asked, float) else int(asked)

    def fits(counts: Mapping[str, int]) -> bool:
        c = costs(counts)
        return all(c[m] <= t for m, t in targets.items())

    def fullness(counts: Mapping[str, int]) -> float:
        """How much of the budget is used (the sum over the targets of cost / target)."""
        c = costs(counts)
        return sum(c[m] / t for m, t in targets.items())

    described = {n: c.to_dict() for n, c in curves.items()} if curves is not None else None
    if fits({}):
        return _finish(ResolvedPlan(counts_at(0.0), n_units, mode, 0.0,
                                    sensitivity=described), graph, costs)
    floor_counts = round_counts({n: c - 1 for n, c in n_units.items()}, n_units, spec.round_to)
    if not fits(floor_counts):
        smallest = costs(floor_counts)
        over = [f"{m} {t:,} (smallest achievable {smallest[m]:,}, the model has {base[m]:,})"
                for m, t in targets.items() if smallest[m] > t]
        names = " and ".join(f"`target_{m}`" for m in targets)
        raise ArgumentError(
            f"{names} cannot be met by pruning {', '.join(selected)}: {'; '.join(over)}, every "
            f"selected layer down to one filter. Select more layers with `layers` or raise the "
            f"target.")
    lo, hi = 0.0, 1.0  # counts_at(lo) does not fit, counts_at(hi) (the floor) does

    def at(level: float) -> bool:
        return fits(counts_at(level)) if level < 1.0 else True

    for _ in range(40):
        mid = (lo + hi) / 2
        if at(mid):
            hi = mid
        else:
            lo = mid
        if hi - lo < 1e-7:
            break
    counts = counts_at(hi) if hi < 1.0 else floor_counts
    plan = ResolvedPlan(counts, n_units, mode, round(hi, 6), sensitivity=described)
    if spec.fill and layer_scores is None:
        plan.counts = fill_budget(counts, fits, fullness, n_units, spec.round_to)
        plan.filled = plan.counts != counts
    return _finish(plan, graph, costs)


def _budget_targets(spec: Plan, model: nn.Module) -> dict[str, int]:
    """`spec.budget` as target_params / target_macs (counts per example) for `model`."""
    seconds = spec.clip_seconds
    if seconds is None:
        frontend = getattr(model, "frontend_cfg", None)  # an AudioClassifier knows its clip
        if frontend is not None:  # full-length front ends are counted on 1 s examples
            seconds = frontend.clip_seconds or 1.0
    if seconds is None:
        raise ArgumentError("`budget` limits MACs per second of audio: give `clip_seconds`, the "
                            "seconds of audio one example of `example_inputs` holds")
    return targets_for(parse_budget(spec.budget), seconds, spec.precision)  # type: ignore[arg-type]


def fill_budget(counts: Mapping[str, int], fits: Callable[[Mapping[str, int]], bool],
                value: Callable[[Mapping[str, int]], float],
                n_units: Mapping[str, int] | None = None,
                round_to: int | None = None) -> dict[str, int]:
    """Give removed filters back while the plan still `fits` the budget: at each step, for every
    layer the most filters it can take back (binary search: costs only grow as filters come
    back), and the layer whose take-back uses most of the budget (`value`) gets them. A layer
    that cannot take one back never can again (costs only grow), so it is not asked again; a
    layer that took back all it could is done too. With `round_to` (and `n_units`), filters
    come back only in steps that keep the kept width a multiple of it (or the whole layer)."""
    counts = dict(counts)
    open_layers = [n for n, c in counts.items() if c > 0]
    while open_layers:
        best: tuple[str, int, float] | None = None
        for name in list(open_layers):
            have = counts[name]
            n = have + 1 if n_units is None else n_units[name]
            takes = [t for t in range(1, have + 1) if _aligned(n - have + t, n, round_to)]
            if not takes or not fits({**counts, name: have - takes[0]}):
                open_layers.remove(name)
                continue
            lo, hi = 0, len(takes) - 1  # takes[lo]: known to fit
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if fits({**counts, name: have - takes[mid]}):
                    lo = mid
                else:
                    hi = mid - 1
            lo = takes[lo]
            used = value({**counts, name: have - lo})
            if best is None or used > best[2]:
                best = (name, lo, used)
        if best is None:
            break
        counts[best[0]] -= best[1]
        open_layers.remove(best[0])
    return counts


def _finish(plan: ResolvedPlan, graph: Any, costs: PlanCosts | None = None) -> ResolvedPlan:
    """Attach the predicted params and MACs of the pruned model."""
    costs = costs or PlanCosts(graph.model, graph)
    predicted = costs.exact(plan.counts)  # the final counts, always from a pruned copy
    plan.predicted = {"params": int(predicted["params"]), "macs": int(predicted["macs"])}
    plan.base = {"params": int(costs.base["params"]), "macs": int(costs.base["macs"])}
    return plan
