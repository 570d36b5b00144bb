"""Reading recipes: YAML -> a validated :class:`~audioprune.pipeline.schema.Recipe`, with every
problem named by its key (pydantic for the shape; `check_names` for what the schema cannot see:
registry names, references between sections, each prune request's PruneSpec, clashing runs).
A typo fails in the first second, not after the parent has trained for an hour.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from audioprune.errors import UserError
from audioprune.pipeline.schema import (
    CriterionSpec,
    DatasetSection,
    DistillSection,
    ModelSection,
    PruneSection,
    QuantizeSection,
    Recipe,
    TrainSection,
)
from audioprune.pipeline.steps import group_plans, plan_steps

__all__ = ["CriterionSpec", "DatasetSection", "DistillSection", "ModelSection", "PruneSection",
           "QuantizeSection", "Recipe", "TrainSection", "apply_variant", "builtin_recipes",
           "check_names", "load_recipe", "parse_recipe", "resolve_recipe"]


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
    changed = {"name": f"{base.get('name', 'recipe')}-{variant}",
               **({"out": f"{base['out']}-{variant}"} if base.get("out") else {})}
    return {**base, **changed, **variants[variant]}


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
    for g, group in enumerate(recipe.prune):
        for name in group.models or []:
            if name not in names:
                fail(f"prune[{g}].models", f"{name!r} is not a model of this recipe "
                     f"({', '.join(names)})")
        for c, crit in enumerate(group.criteria):
            for plan in group_plans(group):
                try:  # the one check of a pruning request: building its PruneSpec
                    group.spec(crit, plan)
                except (ValueError, UserError) as exc:
                    fail(_spec_key(exc, g, c), _plain(exc))
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

    seen: dict[str, str] = {}
    for step in plan_steps(recipe):
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", step.run_name):  # no '/', no '..'
            fail(step.where, f"its run folder {step.run_name!r} is not a plain name inside the "
                 f"output directory; use letters, digits, '.', '_' and '-' in names, tags and labels")
        if step.run_name in seen:
            fail(step.where, f"its run {step.run_name!r} clashes with {seen[step.run_name]}; give "
                 f"the group a distinct `tag:` or the model a distinct `name:`")
        seen[step.run_name] = step.where


_PLAN_KEYS = {"target_macs": "target_macs", "target_params": "target_params", "budget": "budgets",
              "precision": "precision", "round_to": "round_to", "layers": "layers",
              "allocation": "allocation", "ratio": "ratios", "ratios": "per_layer",
              "global_ranking": "global", "normalise": "normalise"}


def _spec_key(exc: Exception, g: int, c: int) -> str:
    """Where in the recipe a PruneSpec's complaint points: the criterion (or its options), or
    the plan key it names."""
    names = getattr(exc, "arguments", [])
    for name in names:
        if name in _PLAN_KEYS:
            return f"prune[{g}].{_PLAN_KEYS[name]}"
    text = str(exc)
    if text.startswith("budget "):  # measure.budget's own message
        return f"prune[{g}].budgets"
    if " option " in text or "options" in names:
        return f"prune[{g}].criteria[{c}].options"
    if names and names[0] in ("criterion", "scope", "group_reduction", "aggregate",
                              "quaternion_mode", "iterative"):
        return f"prune[{g}].criteria[{c}]" if names[0] == "criterion" else f"prune[{g}].{names[0]}"
    return f"prune[{g}]"


def _plain(exc: Exception) -> str:
    """The message without a leading "criterion: " (the location already says so)."""
    return re.sub(r"^criterion: ", "", str(exc))
