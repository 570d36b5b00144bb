"""A sweep's bookkeeping under <out>/.sweep: one lock per step (held while it runs, released
when its process ends however it ends) and a record of each failure; and every step's state
(done, running, failed, partial, new) read from them without running anything."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from audioprune.fileio import read_json
from audioprune.pipeline.fingerprint import STEP_JSON
from audioprune.pipeline.schema import Recipe
from audioprune.pipeline.steps import Step, plan_steps
from audioprune.pipeline.units import recipe_folds
from audioprune.runs.run_dir import METRICS_JSON, PROFILE_JSON

SWEEP_DIR = ".sweep"  # under `out`: one lock per step (held while it runs) and failure records


def lock_path(out: Path, step: Step) -> Path:
    return out / SWEEP_DIR / f"{step.run_name}.lock"


def failed_path(out: Path, step: Step) -> Path:
    return out / SWEEP_DIR / f"{step.run_name}.failed.json"


def sweep_status(recipe: Recipe, out: str | Path | None = None) -> list[dict[str, Any]]:
    """Each step's state without running anything: done, running (its lock is held by a live
    process), failed (with the error), partial (started, interrupted), new; and whether its run
    was profiled."""
    import fcntl

    out = Path(out) if out is not None else Path(recipe.out_dir)
    rows = []
    for step in plan_steps(recipe, recipe_folds(recipe)):
        run = out / step.run_name
        failed = failed_path(out, step)
        state = "new"
        if (run / METRICS_JSON).is_file():
            state = "done"
        else:
            lock = lock_path(out, step)
            if lock.is_file():
                with open(lock) as handle:
                    try:
                        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        fcntl.flock(handle, fcntl.LOCK_UN)
                    except BlockingIOError:
                        state = "running"
            if state == "new" and failed.is_file():
                state = "failed"
            elif state == "new" and (run / STEP_JSON).is_file():
                state = "partial"
        row = {"step": step.run_name, "kind": step.kind, "state": state,
               "profiled": (run / PROFILE_JSON).is_file()}
        if state == "failed":
            row["error"] = read_json(failed).get("error")
        rows.append(row)
    return rows
