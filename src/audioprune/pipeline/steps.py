"""A recipe unrolled into its steps: which runs it makes, in which order, under which names.

Parents train first, then every prune group makes one run per (parent, criterion, plan) (and,
with `scratch:`, its widths trained from scratch), then KD students, then (with `quantize:`) an
int8 sibling of each run. Each step's fingerprint (pipeline/fingerprint.py) is what the run
depends on; the pipeline stores it beside the run so a rerun can tell a finished step from a
changed one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from audioprune.pipeline.schema import (CriterionSpec, DistillSection, ModelSection,
                                            PruneSection, QuantizeSection, Recipe)


STEP_KINDS = ("train", "prune", "scratch", "distill", "quantize")  # in the order they run


@dataclass
class Step:
    kind: str  # "train" | "prune" | "scratch" | "distill" | "quantize"
    run_name: str
    where: str  # the recipe key that asked for it, for error messages
    model: ModelSection | None = None  # train / distill: the model trained; prune: the parent
    parent: str | None = None  # prune/quantize: the parent run's name; distill: the teacher's
    group: PruneSection | DistillSection | QuantizeSection | None = None
    criterion: CriterionSpec | None = None
    plan: dict[str, Any] = field(default_factory=dict)  # PlanSpec fields
    fold: int | None = None  # cross-validation fold (the recipe's `folds`), None without
    seed: int | None = None  # the unit's seed (the recipe's `seeds`); None: the recipe's `seed`
    kd: bool = False  # scratch: trained with KD from the parent (the run name ends in -kd
    #                   before any -fold<K>/-s<S> suffix: ask this flag, not the name)

    def describe(self) -> str:
        if self.kind == "train":
            assert self.model is not None
            return f"train {self.model.architecture}"
        if self.kind == "prune":
            from audioprune.report.collect import format_plan

            assert self.criterion is not None
            return f"prune {self.parent} with {self.criterion.tag} at {format_plan(self.plan)}"
        if self.kind == "quantize":
            return f"quantize {self.parent} to int8"
        if self.kind == "scratch":
            return f"train {self.parent}'s widths from scratch" + \
                (" with KD" if self.kd else "")
        assert self.model is not None
        return f"distil {self.parent} into {self.run_name} ({self.model.architecture})"


def _pct(r: float) -> str:
    return f"{100 * r:g}".replace(".", "p")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "", str(text).replace("*", "all"))


def _budget_slug(value: Any) -> str:
    """30M -> 30M; a fraction 0.5 of the parent's -> 50pct."""
    if isinstance(value, float) and 0 < value <= 1:
        return f"{_pct(value)}pct"
    return _slug(value)


def plan_tag(plan: dict[str, Any]) -> str:
    """Short, file-name-safe name of a plan: r25, C1-50_C2-25, macs30M, params128k (+ -global)."""
    if plan.get("ratio") is not None:
        tag = f"r{_pct(plan['ratio'])}"
    elif plan.get("ratios"):
        tag = "_".join(f"{_slug(k)}-{_pct(v)}" for k, v in plan["ratios"].items())
    elif plan.get("budget") is not None:
        precision = plan.get("precision", "int8")
        tag = _slug(plan["budget"]) + ("" if precision == "int8" else f"-{precision}")
    elif plan.get("target_macs") is not None:
        tag = f"macs{_budget_slug(plan['target_macs'])}"
    else:
        tag = f"params{_budget_slug(plan['target_params'])}"
    return tag + ("-global" if plan.get("global_ranking") else "") + \
        ("-sens" if plan.get("allocation") == "sensitivity" else "") + \
        (f"-round{plan['round_to']}" if plan.get("round_to") else "")


def _schedule_tags(group: PruneSection) -> list[str]:
    """What besides the plan names a run: coarser features, progressive pruning."""
    tags = []
    if group.resolution is not None:
        r = group.resolution
        tags.append("res" + (r if isinstance(r, str) else f"{r[0]:g}x{r[1]:g}"))
    if group.progressive:
        tags.append(f"prog{group.iterative}")
    d = group.distill
    if d is not None and (d.temperature is not None or d.alpha is not None):
        # only KD weights set by hand: the names of runs on the recipe's defaults stay as they were
        tags.append("kd" + (f"T{_slug(f'{d.temperature:g}')}" if d.temperature is not None else "")
                    + (f"a{_slug(f'{d.alpha:g}')}" if d.alpha is not None else ""))
    return tags


def group_plans(group: PruneSection) -> list[dict[str, Any]]:
    """Every plan of a prune group as PlanSpec keyword arguments."""
    common = {"layers": group.layers, "global_ranking": group.global_ranking,
              "normalise": group.normalise}
    if group.round_to is not None:  # only when set: the plans of older recipes stay as they were
        common["round_to"] = group.round_to
    budget_only = {"allocation": group.allocation} if group.allocation != "uniform" else {}
    plans = [{"ratio": r, **common} for r in group.ratios]
    plans += [{"ratios": dict(p), "global_ranking": False, "normalise": group.normalise,
               **({"round_to": group.round_to} if group.round_to is not None else {})}
              for p in group.per_layer]
    plans += [{"target_macs": t, **common, **budget_only} for t in group.target_macs]
    plans += [{"target_params": t, **common, **budget_only} for t in group.target_params]
    plans += [{"budget": b, "precision": group.precision, **common, **budget_only}
              for b in group.budgets]
    return plans


def plan_steps(recipe: Recipe, folds: list[int] | None = None) -> list[Step]:
    """Every step of `recipe`, once per unit of its matrix: with `folds`, once per fold (run
    names end in -fold<K>), with the recipe's `seeds`, once per seed (-s<S>); a pruned run's
    parent is the same unit's. All units' parents come first, then every unit's pruned runs, and
    so on (train, prune, distill, quantize)."""
    seeds = list(recipe.seeds) if recipe.seeds else [None]
    units = [(k, s) for k in (folds or [None]) for s in seeds]
    if units == [(None, None)]:
        return _steps(recipe)
    per_unit = {u: _steps(recipe) for u in units}
    out: list[Step] = []
    for kind in STEP_KINDS:
        for fold, seed in units:
            suffix = (f"-fold{fold}" if fold is not None else "") + \
                (f"-s{seed}" if seed is not None else "")
            for step in per_unit[(fold, seed)]:
                if step.kind == kind:
                    step.fold, step.seed = fold, seed
                    step.run_name = f"{step.run_name}{suffix}"
                    step.parent = f"{step.parent}{suffix}" if step.parent else None
                    out.append(step)
    return out


def _steps(recipe: Recipe) -> list[Step]:
    steps = [Step("train", m.name, f"models[{i}]", model=m) for i, m in enumerate(recipe.models)]
    by_name = {m.name: m for m in recipe.models}
    for g, group in enumerate(recipe.prune):
        for parent in group.models or list(by_name):
            for c, crit in enumerate(group.criteria):
                for plan in group_plans(group):
                    name = "-".join([parent] + ([group.tag] if group.tag else []) +
                                    [crit.tag, plan_tag(plan)] + _schedule_tags(group))
                    steps.append(Step("prune", name, f"prune[{g}].criteria[{c}]",
                                      model=by_name.get(parent), parent=parent, group=group,
                                      criterion=crit, plan=plan))
                    for kind in group.scratch:  # the same widths, trained from scratch
                        steps.append(Step("scratch", f"{name}-scratch" + ("-kd" if kind == "kd"
                                                                         else ""),
                                          f"prune[{g}].scratch", model=by_name.get(parent),
                                          parent=name, group=group, criterion=crit, plan=plan,
                                          kd=kind == "kd"))
    for d, group in enumerate(recipe.distill):
        for s, student in enumerate(group.students):
            steps.append(Step("distill", student.name, f"distill[{d}].students[{s}]",
                              model=student, parent=group.teacher, group=group))
    quantizable = list(steps)
    for i, q in enumerate(recipe.quantize):
        steps += [Step("quantize", f"{s.run_name}-{q.suffix}", f"quantize[{i}]", model=s.model,
                       parent=s.run_name, group=q) for s in quantizable if s.kind in q.of]
    return steps
