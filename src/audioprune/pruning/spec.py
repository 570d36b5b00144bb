"""One pruning request, as one frozen value from every edge (API, CLI, recipes) to the engine.

A :class:`PruneSpec` is the criterion and its options, how a layer's score is taken (scope,
group reduction, quaternion handling), the :class:`~audioprune.pruning.plan.Plan` (what and how
much), the schedule (rounds) and the distillation used while fine-tuning. Each edge builds it
once from what its user wrote; it is checked when it is made (here, and only here) and passed
down unchanged: ``ap.prune``, ``audioprune prune``, a recipe's prune group and the run layer all
hand the same object to the Pruner. Adding an option means adding it here, to the edges that
parse it and to the code that uses it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from audioprune.distill.config import DistillConfig
from audioprune.errors import ArgumentError, ArgumentTypeError, UserError
from audioprune.pruning.auto import AUTO, check_no_options
from audioprune.pruning.criteria import describe_criterion
from audioprune.pruning.importance import ActiveImportance, CriterionImportance, make_importance
from audioprune.pruning.plan import Plan
from audioprune.pruning.schedule import SHAPES

__all__ = ["QUATERNION_MODES", "PruneSpec"]

QUATERNION_MODES = ("aggregate", "concat")


@dataclass(frozen=True)
class PruneSpec:
    """What to prune and how (see the module doc).

    criterion        a name of ``audioprune.list_criteria()`` or "auto"
    plan             an :class:`~audioprune.pruning.plan.Plan`
    options          the criterion's own options (e.g. {"paper_compat": True})
    scope            "root" or "group" (None: the criterion's default)
    group_reduction  how a group's layers are combined in group scope
    aggregate        how a quaternion's r, i, j, k scores are combined
    quaternion_mode  "aggregate" (score components, combine) or "concat" (one score per unit)
    iterative        rounds of (prune, fine-tune) ending at the plan (pruning/schedule.py)
    prune_schedule   how the pruned fraction rises over the rounds: "geometric" (the same
                     fraction of what is left each round) or "cubic" (Zhu & Gupta 2017)
    progressive      the run layer: the rounds happen INSIDE one fine-tuning run, one at the
                     start of each of its first `iterative` epochs, under one learning-rate
                     schedule (instead of a full fine-tune after each round)
    resolution       the run layer, audioprune's own models: read coarser features before the
                     widths are pruned - (time, freq) (hop x time, mel bins x freq, weights
                     kept: audioprune.models.resolution), or "search" (the (time, freq) of a
                     small grid that scores best at the plan's MAC budget after a short
                     fine-tune: audioprune.pruning.split); None: widths only
    distill          fine-tune with knowledge distillation (the run layer; None: labels only)
    """

    criterion: str
    plan: Plan | None = None  # None: the caller plans (Pruner.plan) or gives counts
    options: Mapping[str, Any] = field(default_factory=dict)
    scope: str | None = None
    group_reduction: str = "mean"
    aggregate: str = "mean"
    quaternion_mode: str = "aggregate"
    iterative: int = 1
    prune_schedule: str = "geometric"
    progressive: bool = False
    resolution: tuple[float, float] | str | None = None
    distill: DistillConfig | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.criterion, str):
            raise ArgumentTypeError(f"`criterion` must be a name (see audioprune.list_criteria()), "
                                    f"got {type(self.criterion).__name__}")
        if self.plan is not None and not isinstance(self.plan, Plan):
            raise ArgumentTypeError(f"`plan` must be an audioprune.Plan, got "
                                    f"{type(self.plan).__name__}")
        if not isinstance(self.options, Mapping):
            raise ArgumentTypeError(f"criterion options must be a mapping, got "
                                    f"{type(self.options).__name__}")
        object.__setattr__(self, "options", dict(self.options))
        if isinstance(self.iterative, bool) or not isinstance(self.iterative, int) \
                or self.iterative < 1:
            raise ArgumentError(f"`iterative` needs at least 1 round, got {self.iterative!r}")
        if self.prune_schedule not in SHAPES:
            raise ArgumentError(f"unknown `prune_schedule` {self.prune_schedule!r}; choose from "
                                f"{', '.join(SHAPES)}")
        if self.progressive and self.iterative < 2:
            raise ArgumentError("`progressive` spreads `iterative` pruning steps over the first "
                                "epochs of one fine-tuning run: give `iterative` >= 2")
        if self.resolution is not None:
            object.__setattr__(self, "resolution", _check_resolution(self.resolution, self.plan))
        if self.quaternion_mode not in QUATERNION_MODES:
            raise ArgumentError(f"unknown `quaternion_mode` {self.quaternion_mode!r}; choose from "
                                f"{', '.join(QUATERNION_MODES)}")
        if self.distill is not None:
            if not isinstance(self.distill, DistillConfig):
                raise ArgumentTypeError(f"`distill` must be a DistillConfig, got "
                                        f"{type(self.distill).__name__}")
            try:
                self.distill.validate()
            except UserError as exc:
                raise ArgumentError(str(exc)) from None
        if self.criterion == AUTO:
            check_no_options(self.options)
            # auto resolves to a criterion with its defaults: the scoring choices are checked
            # against the one it may pick that takes all of them
            make_importance("taylor", aggregate=self.aggregate, scope=self.scope,
                            group_reduction=self.group_reduction)
        else:
            self.importance()  # the registry checks the name and every option

    @property
    def is_auto(self) -> bool:
        return self.criterion == AUTO

    @property
    def needs_data(self) -> bool:
        """True for criteria that score feature maps or gradients (hrank, activation, taylor)."""
        return not self.is_auto and describe_criterion(self.criterion).inputs != "weights"

    def importance(self) -> CriterionImportance | ActiveImportance:
        """A new importance for this criterion (active ones hold calibration state: one each)."""
        if self.is_auto:
            raise ArgumentError("`criterion` auto is resolved per model and budget first "
                                "(PruneSpec.resolved)")
        return make_importance(self.criterion, self.options, aggregate=self.aggregate,
                               quaternion_mode=self.quaternion_mode, scope=self.scope,
                               group_reduction=self.group_reduction)

    def resolved(self, criterion: str) -> PruneSpec:
        """This request with `auto` replaced by the criterion it chose."""
        return dataclasses.replace(self, criterion=criterion)

    def with_plan(self, plan: Plan) -> PruneSpec:
        return dataclasses.replace(self, plan=plan)

    def to_dict(self) -> dict[str, Any]:
        """As config.json keeps it (the keys older runs were written with)."""
        return {"criterion": self.criterion,
                "plan": self.plan.to_dict() if self.plan is not None else None,
                "criterion_options": dict(self.options), "iterative": self.iterative,
                "aggregate": self.aggregate, "quaternion_mode": self.quaternion_mode,
                "scope": self.scope, "group_reduction": self.group_reduction,
                **({"prune_schedule": self.prune_schedule}
                   if self.prune_schedule != "geometric" else {}),
                **({"progressive": True} if self.progressive else {}),
                **({"resolution": self.resolution if isinstance(self.resolution, str)
                    else list(self.resolution)} if self.resolution is not None else {}),
                "distill": self.distill.to_dict() if self.distill is not None else None}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any],
                  distill: Mapping[str, Any] | None = None) -> PruneSpec:
        """Read `to_dict`'s output; also the shape older runs wrote (an `auto` block beside a
        resolved criterion, the distillation kept apart as `distill`)."""
        d = dict(d)
        kd = d.get("distill") or distill
        return cls(criterion=d["criterion"], plan=Plan.from_dict(d["plan"]) if d.get("plan") else None,
                   options=d.get("criterion_options") or {},
                   scope=d.get("scope"), group_reduction=d.get("group_reduction", "mean"),
                   aggregate=d.get("aggregate", "mean"),
                   quaternion_mode=d.get("quaternion_mode", "aggregate"),
                   iterative=int(d.get("iterative", 1)),
                   prune_schedule=d.get("prune_schedule", "geometric"),
                   progressive=bool(d.get("progressive", False)),
                   resolution=d.get("resolution"),
                   distill=DistillConfig.from_dict(kd) if kd else None)


def _check_resolution(value: Any, plan: Plan | None) -> tuple[float, float] | str:
    """(time >= 1, 0 < freq <= 1), or "search" (which needs a MAC budget to search at)."""
    if value == "search":
        if plan is not None and plan.mode not in ("target_macs", "budget"):
            raise ArgumentError("`resolution` search splits a MAC budget between resolution and "
                                "width: give `target_macs` (or a `budget`)")
        return "search"
    if isinstance(value, str) or not isinstance(value, (tuple, list)) or len(value) != 2:
        raise ArgumentError(f"`resolution` must be 'search' or (time, freq), e.g. (2, 0.5): the "
                            f"hop x time, the mel bins x freq; got {value!r}")
    t, f = value
    if isinstance(t, bool) or isinstance(f, bool) or not isinstance(t, (int, float)) \
            or not isinstance(f, (int, float)) or t < 1 or not 0 < f <= 1:
        raise ArgumentError(f"`resolution` (time, freq): time >= 1 and 0 < freq <= 1, got {value!r}")
    return (float(t), float(f))
