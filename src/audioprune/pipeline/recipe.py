"""YAML recipes: a whole experiment in one file, validated on load (pydantic) so that a typo fails
in the first second with the key named, not after the parent has trained for an hour.

    name: fsdd_quick
    dataset: {name: fsdd, root: ../shared/datasets/fsdd, split: "speaker:nicolas"}
    models:
      - name: dcase21net
        train: {epochs: 8, lr: 0.003}
    prune:
      criteria: [wdc, l1]
      ratios: [0.25, 0.5]
      layers: [C1, C2]
      finetune: {epochs: 2}
    profile: {batch_sizes: [1, 32]}

`dataset` may be one word (`dataset: esc50`); its root then comes from `--data-root`. `prune`
is one group or a list of groups, each pruning some parents (`models`, default all) with every
criterion at every plan (`ratios`, `per_layer`, `target_macs`, `target_params`, `budgets`),
fine-tuned plainly or with KD from the parent (`distill:`); `distill` trains KD students from a
recipe model; `quantize` makes an int8 sibling of every run. The sections below are the full set of keys (README:
Recipes and reports).
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from audioprune.data.registry import SPLIT_OPTIONS
from audioprune.errors import ArgumentError, UserError


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class DatasetSection(_Section):
    """Which data every run of the recipe uses (the keys are `audioprune train`'s data options)."""

    name: str
    root: str | None = None
    split: str | None = None
    test_fold: int | None = None
    val_fold: int | None = None
    subset: str | None = None
    split_file: str | None = None
    val_fraction: float | None = Field(None, gt=0, lt=1)
    frontend: dict[str, Any] = Field(default_factory=dict)
    cache: bool = True
    cache_dir: str | None = None
    strict: bool = False

    def options(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in SPLIT_OPTIONS if getattr(self, k) is not None}


class TrainSection(_Section):
    """Training settings; anything left out keeps TrainConfig's default (fine-tuning: the parent's
    settings with lr / 10, as `audioprune prune` does)."""

    epochs: int | None = Field(None, ge=0)
    batch_size: int | None = Field(None, ge=1)
    lr: float | None = Field(None, gt=0)
    weight_decay: float | None = Field(None, ge=0)
    schedule: Literal["cosine", "step", "none"] | None = None
    step_size: int | None = Field(None, ge=1)
    gamma: float | None = Field(None, gt=0)
    patience: int | None = Field(None, ge=0)
    mixup: float | None = Field(None, ge=0)
    eval_batch_size: int | None = Field(None, ge=1)
    freeze: list[str] | None = None  # transfer learning (with a model's `init`)
    body_lr_scale: float | None = Field(None, gt=0)

    def given(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class PannsInit(_Section):
    """A PANNs checkpoint to start from: imported once into <out>/<model name>-pretrained."""

    panns: str  # the .pth file
    model: Literal["cnn6", "cnn10", "cnn14", "cnn14-16k", "cnn14-8k"]


class ModelSection(_Section):
    """A model to train: `name` names its run directory, `arch` the registry model (default:
    the name), `kwargs` its arguments (width, dropout, ...); `init` starts it from a run's
    weights (a run directory) or from a PANNs checkpoint ({panns: FILE, model: cnn14}):
    transfer learning, as `audioprune train --init` (`train:` then takes freeze and
    body_lr_scale too)."""

    name: str
    arch: str | None = None
    kwargs: dict[str, Any] = Field(default_factory=dict)
    init: str | PannsInit | None = None
    train: TrainSection = Field(default_factory=TrainSection)

    @property
    def architecture(self) -> str:
        return self.arch or self.name


class CriterionSpec(_Section):
    """A criterion with options, e.g. {name: wdc, options: {paper_compat: true}, label: wdc-paper}."""

    name: str
    options: dict[str, Any] = Field(default_factory=dict)
    label: str | None = None

    @property
    def tag(self) -> str:
        return self.label or self.name


class PruneDistill(_Section):
    """Fine-tune the pruned model by knowledge distillation from its own unpruned parent
    (`audioprune prune --distill-from parent`)."""

    loss: str | None = None  # a KD recipe of audioprune.distill (hinton | bce-soft | qcnn)
    temperature: float | None = Field(None, gt=0)
    alpha: float | None = Field(None, ge=0, le=1)
    teacher_mode: str = "auto"


class PruneSection(_Section):
    """Prune `models` (default: every model) with each criterion at each plan, then fine-tune."""

    models: list[str] | None = None
    criteria: list[CriterionSpec] = Field(min_length=1)
    ratios: list[float] = Field(default_factory=list)
    per_layer: list[dict[str, float]] = Field(default_factory=list)
    target_macs: list[str | int | float] = Field(default_factory=list)  # 30M, or 0.5 of the parent's
    target_params: list[str | int | float] = Field(default_factory=list)
    budgets: list[str] = Field(default_factory=list)  # dcase2024, or params_bytes=..,macs=..
    precision: Literal["int8", "fp16", "fp32"] = "int8"  # what a parameter costs in `budgets`
    round_to: int | None = Field(None, ge=1)  # kept widths a multiple of this (SIMD blocks)
    layers: list[str] | None = None
    global_ranking: bool = Field(False, alias="global")
    normalise: Literal["minmax", "zscore"] = "minmax"
    allocation: Literal["uniform", "sensitivity"] = "uniform"  # budgets split by layer sensitivity
    iterative: int = Field(1, ge=1)
    aggregate: Literal["mean", "max", "min", "norm"] = "mean"
    quaternion_mode: Literal["aggregate", "concat"] = "aggregate"
    scope: Literal["root", "group"] | None = None  # None: the criterion's default
    group_reduction: Literal["mean", "sum", "max", "min"] = "mean"
    finetune: TrainSection = Field(default_factory=TrainSection)
    distill: PruneDistill | None = None  # fine-tune with KD from the parent
    tag: str | None = None  # inserted into the run names when two groups would otherwise clash

    @field_validator("criteria", mode="before")
    @classmethod
    def _criteria_words(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = [v]
        return [{"name": c} if isinstance(c, str) else c for c in v] if isinstance(v, list) else v

    @field_validator("layers", "models", mode="before")
    @classmethod
    def _comma_list(cls, v: Any) -> Any:
        return [s.strip() for s in v.split(",") if s.strip()] if isinstance(v, str) else v

    @field_validator("ratios")
    @classmethod
    def _ratios(cls, v: list[float]) -> list[float]:
        for r in v:
            if not 0.0 < r < 1.0:
                raise ValueError(f"each ratio is the fraction of filters removed, in (0, 1); got {r}")
        return v

    @field_validator("per_layer")
    @classmethod
    def _per_layer(cls, v: list[dict[str, float]]) -> list[dict[str, float]]:
        for plan in v:
            if not plan:
                raise ValueError("an empty per-layer plan; give LAYER: RATIO pairs, e.g. {C1: 0.5}")
            for layer, r in plan.items():
                if not 0.0 <= r < 1.0:
                    raise ValueError(f"{layer}: ratio must be in [0, 1), got {r}")
        return v

    @model_validator(mode="after")
    def _has_plan(self) -> PruneSection:
        if not (self.ratios or self.per_layer or self.target_macs or self.target_params or
                self.budgets):
            raise ValueError("give at least one plan: ratios, per_layer, target_macs, "
                             "target_params or budgets")
        if self.per_layer and self.layers is not None and not (
                self.ratios or self.target_macs or self.target_params or self.budgets):
            raise ValueError("per_layer plans name their layers; drop layers")
        return self


class DistillSection(_Section):
    """Train `students` from scratch with knowledge distillation from the trained `teacher`."""

    teacher: str
    students: list[ModelSection] = Field(min_length=1)
    loss: str | None = None  # a KD recipe of audioprune.distill (hinton | bce-soft | qcnn)
    temperature: float | None = Field(None, gt=0)
    alpha: float | None = Field(None, ge=0, le=1)
    teacher_mode: str = "auto"  # auto | cached | online (audioprune.distill.teacher)


class QuantizeSection(_Section):
    """int8-quantize the recipe's runs (`audioprune quantize`): each run of the kinds in `of`
    gets a sibling run <name>-int8 evaluated by ONNX Runtime."""

    method: Literal["static", "dynamic"] = "static"
    calibration_batches: int = Field(8, ge=1)
    per_channel: bool = True
    qat_epochs: int = Field(0, ge=0)
    of: list[Literal["train", "prune", "distill"]] = Field(
        default_factory=lambda: ["train", "prune", "distill"], min_length=1)

    @property
    def suffix(self) -> str:
        return "int8" + ("" if self.method == "static" else f"-{self.method}") + \
            (f"-qat{self.qat_epochs}" if self.qat_epochs else "")


class ProfileSection(_Section):
    """Latency settings for `audioprune profile` (params, MACs and sizes are always measured)."""

    batch_sizes: list[int] = Field(default_factory=lambda: [1, 32], min_length=1)
    threads: int | None = Field(None, ge=1)
    onnx: bool = True


class ReportSection(_Section):
    title: str | None = None
    budget: str | None = None  # mark runs within / outside a budget: dcase2024, params_bytes=..


class Recipe(_Section):
    """One experiment: train `models`, prune and/or distil them, profile, report."""

    name: str
    description: str = ""
    dataset: DatasetSection
    seed: int = Field(0, ge=0)
    seeds: list[int] | None = None  # every step once per seed (run names end in -s<seed>)
    folds: Literal["all"] | list[int] | None = None  # cross-validation: every step once per fold
    device: str = "cpu"
    models: list[ModelSection] = Field(min_length=1)
    prune: list[PruneSection] = Field(default_factory=list)
    distill: list[DistillSection] = Field(default_factory=list)
    quantize: QuantizeSection | None = None
    profile: ProfileSection | None = Field(default_factory=ProfileSection)
    report: ReportSection | None = Field(default_factory=ReportSection)  # false: no report

    @field_validator("dataset", mode="before")
    @classmethod
    def _dataset_word(cls, v: Any) -> Any:
        return {"name": v} if isinstance(v, str) else v

    @field_validator("prune", "distill", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, dict) else ([] if v is None else v)

    @field_validator("profile", "report", mode="before")
    @classmethod
    def _profile_switch(cls, v: Any) -> Any:
        if v is False or v is None:
            return None
        return {} if v is True else v

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and (not v or len(set(v)) != len(v) or any(s < 0 for s in v)):
            raise ValueError("give distinct non-negative seeds, e.g. [0, 1, 2]")
        return v

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", v):
            raise ValueError("use letters, digits, '.', '_' and '-' (it names the output folder)")
        return v


# ------------------------------------------------------------------------------ loading


def _where(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _allowed_keys(loc: tuple[Any, ...]) -> list[str]:
    """The keys the section at `loc` accepts (for 'did you mean' on unknown keys)."""
    model: Any = Recipe
    for part in loc[:-1]:
        if isinstance(part, int) or model is None:
            continue
        field = model.model_fields.get(part) or next(
            (f for f in model.model_fields.values() if f.alias == part), None)
        if field is None:
            return []
        ann = field.annotation
        model = next((a for a in getattr(ann, "__args__", (ann,))
                      if isinstance(a, type) and issubclass(a, BaseModel)), None)
        if model is None and isinstance(ann, type) and issubclass(ann, BaseModel):
            model = ann
    if model is None:
        return []
    return [f.alias or n for n, f in model.model_fields.items()]


def _message(err: dict[str, Any]) -> str:
    loc = tuple(err["loc"])
    where = _where(loc)
    kind = err["type"]
    if kind == "extra_forbidden":
        allowed = _allowed_keys(loc)
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"unknown key {where!r}{hint} (allowed here: {', '.join(allowed)})"
    if kind == "missing":
        return f"missing key {where!r}"
    msg = err["msg"].removeprefix("Value error, ")
    given = err.get("input")
    shown = f" (got {given!r})" if not isinstance(given, (dict, list)) else ""
    return f"{where}: {msg}{shown}"


def apply_variant(data: dict[str, Any], variant: str | None, source: str = "recipe"
                  ) -> dict[str, Any]:
    """The recipe `data` without its `variants:` block, or with variant `variant` applied: a
    variant replaces whole top-level sections (dataset:, folds:, models:, ...), e.g. `full:`
    for the paper's own data on a GPU beside the small FSDD run; its runs get their own name
    (`<name>-<variant>`, unless the variant sets `name:`), so they never mix with the base's."""
    variants = data.get("variants") or {}
    if not isinstance(variants, dict) or not all(isinstance(v, dict) for v in variants.values()):
        raise UserError(f"{source}: `variants` maps variant names to sections that replace the "
                        f"recipe's, e.g. variants: {{full: {{dataset: {{name: esc50}}}}}}")
    base = {k: v for k, v in data.items() if k != "variants"}
    if variant is None:
        return base
    if variant not in variants:
        raise UserError(f"{source} has no variant {variant!r}; its variants: "
                        f"{', '.join(variants) or 'none'}")
    return {**base, "name": f"{base.get('name', 'recipe')}-{variant}", **variants[variant]}


def parse_recipe(data: Any, source: str = "recipe", variant: str | None = None) -> Recipe:
    """Validate a recipe given as a dict (e.g. parsed YAML); UserError lists every problem.
    With `variant`, that entry of its `variants:` applied (each variant is validated too)."""
    if not isinstance(data, dict):
        raise UserError(f"{source}: a recipe is a YAML mapping (name:, dataset:, models:, ...), "
                        f"got {type(data).__name__}")
    for name in (data.get("variants") or {}) if variant is None else ():
        parse_recipe(apply_variant(data, name, source), f"{source} (variant {name})")
    data = apply_variant(data, variant, source)
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as exc:
        problems = [_message(e) for e in exc.errors()]
        raise UserError(f"{source}: " + ("\n  ".join([f"{len(problems)} problems:"] + problems)
                                         if len(problems) > 1 else problems[0])) from None
    check_names(recipe, source)
    return recipe


def load_recipe(path: str | Path, variant: str | None = None) -> Recipe:
    """Read and validate a YAML recipe file (with `variant`: that variant of it)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"recipe {path} not found; give a YAML file (see recipes/) or a "
                        f"built-in recipe name ({', '.join(builtin_recipes())})")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise UserError(f"{path} is not valid YAML: {exc}") from None
    return parse_recipe(data, str(path), variant)


BUILTIN_DIR = Path(__file__).with_name("recipes")


def builtin_recipes() -> list[str]:
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.yaml"))


def resolve_recipe(spec: str | Path, variant: str | None = None) -> Recipe:
    """A recipe file, or the name of a built-in recipe (e.g. "demo")."""
    path = Path(spec)
    if not path.exists() and str(spec) in builtin_recipes():
        path = BUILTIN_DIR / f"{spec}.yaml"
    return load_recipe(path, variant)


# ------------------------------------------------------------------------------ cross-checks


def check_names(recipe: Recipe, source: str = "recipe") -> None:
    """What pydantic cannot see: registry names, references between sections, clashing runs."""
    from audioprune.data.registry import get_dataset_info
    from audioprune.models.registry import list_models
    from audioprune.pruning.auto import AUTO, check_no_options
    from audioprune.pruning.criteria import list_criteria

    def fail(where: str, msg: str) -> None:
        raise UserError(f"{source}: {where}: {msg}")

    try:
        get_dataset_info(recipe.dataset.name)
    except UserError as exc:
        fail("dataset.name", str(exc))
    archs = list_models()
    names = [m.name for m in recipe.models]
    for i, m in enumerate(recipe.models):
        if m.architecture not in archs:
            fail(f"models[{i}].{'arch' if m.arch else 'name'}",
                 f"unknown model {m.architecture!r}; choose one of {', '.join(archs)} (or give "
                 f"`arch:` and keep `name:` for the run)")
    criteria = list_criteria()
    for g, group in enumerate(recipe.prune):
        for name in group.models or []:
            if name not in names:
                fail(f"prune[{g}].models", f"{name!r} is not a model of this recipe "
                     f"({', '.join(names)})")
        for c, crit in enumerate(group.criteria):
            if crit.name == AUTO:  # resolved per run from its budget (audioprune.pruning.auto)
                try:
                    check_no_options(crit.options)
                except ArgumentError as exc:
                    fail(f"prune[{g}].criteria[{c}]", str(exc))
                continue
            if crit.name not in criteria:
                close = difflib.get_close_matches(crit.name, criteria, n=1)
                fail(f"prune[{g}].criteria[{c}]", f"unknown criterion {crit.name!r}"
                     f"{f' (did you mean {close[0]!r}?)' if close else ''}; choose from "
                     f"{', '.join(criteria)}")
            from audioprune.pruning.importance import make_importance

            try:  # the options, checked by the criterion's own registry entry
                make_importance(crit.name, crit.options, aggregate=group.aggregate,
                                quaternion_mode=group.quaternion_mode, scope=group.scope,
                                group_reduction=group.group_reduction)
            except (ValueError, UserError) as exc:
                fail(f"prune[{g}].criteria[{c}].options", str(exc))
        from audioprune.pruning.plan import parse_target

        for key in ("target_macs", "target_params"):
            for t in getattr(group, key):
                try:
                    parse_target(t, key)
                except (UserError, ValueError) as exc:
                    fail(f"prune[{g}].{key}", str(exc))
        from audioprune.measure.budget import parse_budget

        for b in group.budgets:
            try:
                parse_budget(b)
            except ValueError as exc:
                fail(f"prune[{g}].budgets", str(exc))
        if group.distill is not None:
            from audioprune.distill import DistillConfig

            try:
                DistillConfig("parent", group.distill.loss, group.distill.temperature,
                              group.distill.alpha, group.distill.teacher_mode).validate()
            except UserError as exc:
                fail(f"prune[{g}].distill", str(exc))
    if recipe.report is not None and recipe.report.budget is not None:
        from audioprune.measure.budget import parse_budget

        try:
            parse_budget(recipe.report.budget)
        except ValueError as exc:
            fail("report.budget", str(exc))
    for d, group in enumerate(recipe.distill):
        if group.teacher not in names:
            fail(f"distill[{d}].teacher", f"{group.teacher!r} is not a model of this recipe "
                 f"({', '.join(names)})")
        from audioprune.distill import DistillConfig

        try:
            DistillConfig(group.teacher, group.loss, group.temperature, group.alpha,
                          group.teacher_mode).validate()
        except UserError as exc:
            fail(f"distill[{d}]", str(exc))
        for s, student in enumerate(group.students):
            if student.architecture not in archs:
                fail(f"distill[{d}].students[{s}]", f"unknown model {student.architecture!r}")
    from audioprune.pipeline.steps import plan_steps  # the run names must not clash

    seen: dict[str, str] = {}
    for step in plan_steps(recipe):
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", step.run_name):  # no '/', no '..'
            fail(step.where, f"its run folder {step.run_name!r} is not a plain name inside the "
                 f"output directory; use letters, digits, '.', '_' and '-' in names, tags and labels")
        if step.run_name in seen:
            fail(step.where, f"its run {step.run_name!r} clashes with {seen[step.run_name]}; give "
                 f"the group a distinct `tag:` or the model a distinct `name:`")
        seen[step.run_name] = step.where
