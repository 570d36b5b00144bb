"""What a step's run depends on (its fingerprint, kept beside the run as recipe_step.json) and
what a run directory's state is: done, partial or new. A rerun of a CHANGED recipe that would
reuse a directory stops with an error naming the difference instead of silently mixing settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from audioprune.errors import UserError
from audioprune.fileio import is_atomic_temp, read_json
from audioprune.pipeline.schema import Recipe, TrainSection
from audioprune.pipeline.steps import Step
from audioprune.pipeline.units import data_spec, for_step, train_config
from audioprune.runs.run_dir import METRICS_JSON

STEP_JSON = "recipe_step.json"


# how fast a run goes, not what it computes (channels_last and compile change rounding only)
_NOT_FINGERPRINTED = {"progress", "device", "num_workers", "eval_batch_size", "channels_last",
                      "compile"}


# TrainConfig fields added after recipes were first run: left out at their defaults, so the runs
# of an older version still match their recipe
_NEW_AT_DEFAULT = {"init": None, "freeze": None, "body_lr_scale": 1.0, "precision": "fp32",
                   "sampler": "shuffle"}
# ... the ones of them a fine-tuning section (given keys only) may name at their default
_NEW_FINETUNE_KEYS = ("precision", "sampler")


def _finetune(section: TrainSection) -> dict[str, Any]:
    """A fine-tuning section as fingerprinted: its given keys, less the speed-only ones and the
    newer ones at their defaults (so `precision: fp32` matches a run made before the key)."""
    return {k: v for k, v in section.given().items()
            if k not in ("channels_last", "compile") and
            not (k in _NEW_FINETUNE_KEYS and v == _NEW_AT_DEFAULT[k])}


def fingerprint(step: Step, recipe: Recipe) -> dict[str, Any]:
    """What the step's run depends on (not where the data lives, nor the device)."""
    recipe = for_step(recipe, step)
    data = {"dataset": recipe.dataset.name, "options": data_spec(recipe, step.fold).options,
            "frontend": recipe.dataset.frontend, "seed": recipe.seed}
    if step.kind in ("train", "distill"):
        assert step.model is not None
        cfg = {k: v for k, v in train_config(recipe, step.model.train, False).to_dict().items()
               if k not in _NOT_FINGERPRINTED and not (k in _NEW_AT_DEFAULT and
                                                       v == _NEW_AT_DEFAULT[k])}
        out = {"step": step.kind, "arch": step.model.architecture, "kwargs": step.model.kwargs,
               "train": cfg, "data": data}
        if step.model.init is not None:
            init = step.model.init
            out["init"] = init if isinstance(init, str) else init.model_dump()
        if step.kind == "distill":
            g = step.group
            out["distill"] = {"teacher": step.parent, "loss": g.loss, "temperature": g.temperature,  # type: ignore[union-attr]
                              "alpha": g.alpha, "teacher_mode": g.teacher_mode}  # type: ignore[union-attr]
        return out
    g = step.group
    if step.kind == "scratch":
        return {"step": "scratch", "pruned": step.parent, "kd": step.kd,
                "finetune": _finetune(g.finetune), "data": data}  # type: ignore[union-attr]
    if step.kind == "quantize":
        return {"step": "quantize", "parent": step.parent,
                "quantize": g.model_dump(exclude={"of"}), "data": data}  # type: ignore[union-attr]
    assert step.criterion is not None and g is not None
    out = {"step": "prune", "parent": step.parent, "criterion": step.criterion.name,
           "options": step.criterion.options, "plan": step.plan, "iterative": g.iterative,  # type: ignore[union-attr]
           "aggregate": g.aggregate, "quaternion_mode": g.quaternion_mode,  # type: ignore[union-attr]
           "finetune": _finetune(g.finetune), "data": data}  # type: ignore[union-attr]
    if g.scope is not None:  # type: ignore[union-attr]  (recorded only when set: older runs match)
        out["scope"] = g.scope  # type: ignore[union-attr]
    if g.group_reduction != "mean":  # type: ignore[union-attr]
        out["group_reduction"] = g.group_reduction  # type: ignore[union-attr]
    if g.prune_schedule != "geometric":  # recorded only when set: older runs match
        out["prune_schedule"] = g.prune_schedule
    if g.progressive:
        out["progressive"] = True
    if g.resolution is not None:
        out["resolution"] = g.resolution if isinstance(g.resolution, str) else list(g.resolution)
    if g.distill is not None:  # type: ignore[union-attr]
        out["distill"] = g.distill.model_dump()  # type: ignore[union-attr]
    return out


def _diff(old: Any, new: Any, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in sorted(set(old) | set(new), key=str):
            out += _diff(old.get(k), new.get(k), f"{prefix}.{k}" if prefix else str(k))
        return out
    return [] if old == new else [f"{prefix}: {old!r} -> {new!r}"]


def step_state(run: Path, want: dict[str, Any], step: Step) -> str:
    """'done', 'partial' or 'new' for the run directory `run` of `step` (see the module doc)."""
    if not run.exists() or all(is_atomic_temp(c) for c in run.iterdir()):
        return "new"  # nothing, or only the temp file of a step killed as it began
    saved_path = run / STEP_JSON
    if not saved_path.is_file():
        raise UserError(f"{run} exists but was not made by this pipeline (no {STEP_JSON}); move "
                        f"it away or choose another `out`")
    saved = read_json(saved_path)
    diff = _diff(saved, want)
    if diff:
        raise UserError(f"{run} was made by a different version of {step.where} "
                        f"({'; '.join(diff[:4])}); delete that run directory to redo it, or "
                        f"choose another `out`")
    return "done" if (run / METRICS_JSON).is_file() else "partial"
