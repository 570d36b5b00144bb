"""One step of a recipe, wherever the executor put it: under its lock, its run directory made
new, continued or skipped by its state, by the run layer's train / prune / distill / quantize."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

from audioprune.errors import UserError
from audioprune.fileio import remove_stale_temps, write_json
from audioprune.pipeline.executors import Outcome
from audioprune.pipeline.fingerprint import STEP_JSON, fingerprint, step_state
from audioprune.pipeline.schema import DistillSection, PruneSection, QuantizeSection, Recipe
from audioprune.pipeline.steps import Step
from audioprune.pipeline.sweep import SWEEP_DIR, failed_path, lock_path
from audioprune.pipeline.units import data_spec, for_step, train_config
from audioprune.runs.logs import setup_logging
from audioprune.runs.run_dir import CONFIG_JSON, METRICS_JSON

log = logging.getLogger("audioprune")


def _has_checkpoint(run: Path) -> bool:
    ckpt = run / "checkpoint"
    return any((ckpt / f"{s}.json").is_file() and (ckpt / f"{s}.safetensors").is_file()
               for s in ("last", "prev"))


def _clear(run: Path, keep: str = STEP_JSON) -> None:
    for child in run.iterdir():
        if child.name != keep:
            shutil.rmtree(child) if child.is_dir() else child.unlink()


def resolve_init(step: Step, out: Path) -> str | None:
    """The run a model starts from: its `init` run directory, or its PANNs checkpoint imported
    (once, shared by every fold) into <out>/<model name>-pretrained."""
    assert step.model is not None
    init = step.model.init
    if init is None:
        return None
    if isinstance(init, str):
        if not (Path(init) / METRICS_JSON).is_file():
            raise UserError(f"{step.where}.init: {init} is not a finished run directory")
        return init
    import fcntl

    from audioprune.runs.imported import import_panns_run

    run = out / f"{step.model.name}-pretrained"
    lock = out / SWEEP_DIR / f"{run.name}.lock"  # parallel steps share one import
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        if not (run / METRICS_JSON).is_file():
            log.info("importing %s (PANNs %s) -> %s", init.panns, init.model, run)
            import_panns_run(init.panns, init.model, run)
    return str(run)


def run_train(step: Step, recipe: Recipe, out: Path, run: Path, state: str,
              progress: bool) -> None:
    from audioprune.runs.train import train_run

    assert step.model is not None
    resume = state == "partial" and (run / CONFIG_JSON).is_file() and _has_checkpoint(run)
    if state == "partial" and not resume:
        log.info("%s stopped before its first checkpoint: starting it again", run)
        _clear(run)
    elif resume:
        log.info("continuing %s from its last checkpoint", run)
    cfg = train_config(recipe, step.model.train, progress)
    cfg.init = resolve_init(step, out)
    train_run("" if cfg.init else step.model.architecture, dict(step.model.kwargs),
              data_spec(recipe, step.fold), cfg, run, resume=resume)


def run_prune(step: Step, recipe: Recipe, out: Path, run: Path, state: str, progress: bool) -> None:
    from audioprune.runs.parents import finetune_config
    from audioprune.runs.prune import prune_run

    g = step.group
    assert isinstance(g, PruneSection) and step.criterion is not None and step.parent is not None
    parent = out / step.parent
    if not (parent / METRICS_JSON).is_file():
        raise UserError(f"{step.where}: parent run {parent} has not finished")
    given = g.finetune.given()
    train = finetune_config(parent, given.pop("epochs", None),
                            **{**given, "seed": recipe.seed, "device": recipe.device,
                               "progress": progress})
    resume = state == "partial" and (run / CONFIG_JSON).is_file()
    if resume:
        log.info("continuing %s", run)
    prune_run(parent, run, g.spec(step.criterion, step.plan), train,
              data_spec(recipe, step.fold), resume=resume)


def run_scratch(step: Step, recipe: Recipe, out: Path, run: Path, state: str,
                progress: bool) -> None:
    """The pruned run's widths trained from scratch (runs/scratch.py) for the group's
    fine-tuning epochs, labels only or with KD from the parent (`step.kd`)."""
    from audioprune.runs.parents import DEFAULT_FINETUNE_EPOCHS
    from audioprune.runs.scratch import scratch_config, scratch_run

    g = step.group
    assert isinstance(g, PruneSection) and step.parent is not None
    pruned = out / step.parent
    if not (pruned / METRICS_JSON).is_file():
        raise UserError(f"{step.where}: pruned run {pruned} has not finished")
    resume = state == "partial" and (run / CONFIG_JSON).is_file() and _has_checkpoint(run)
    if state == "partial" and not resume:
        _clear(run)
    given = g.finetune.given()
    epochs = given.pop("epochs", DEFAULT_FINETUNE_EPOCHS)
    given.pop("lr", None)  # from scratch: the parent's rate, not the fine-tune's
    train = scratch_config(pruned, epochs, **{**given, "seed": recipe.seed,
                                              "device": recipe.device, "progress": progress})
    scratch_run(pruned, run, train, data_spec(recipe, step.fold),
                distill=step.kd, resume=resume)


def run_quantize(step: Step, recipe: Recipe, out: Path, run: Path, state: str) -> None:
    """int8 sibling of a finished run; an interrupted one is simply made again (minutes)."""
    from audioprune.runs.quantize import quantize_run

    q = step.group
    assert isinstance(q, QuantizeSection) and step.parent is not None
    parent = out / step.parent
    if not (parent / METRICS_JSON).is_file():
        raise UserError(f"{step.where}: run {parent} has not finished")
    if state == "partial":
        log.info("%s was interrupted: quantizing again", run)
        _clear(run)
    quantize_run(parent, run, method=q.method, calibration_batches_n=q.calibration_batches,
                 per_channel=q.per_channel, qat_epochs=q.qat_epochs,
                 data_root=recipe.dataset.root, seed=recipe.seed, reduce_range=q.reduce_range)


def run_distill(step: Step, recipe: Recipe, out: Path, run: Path, state: str,
                progress: bool) -> None:
    from audioprune.runs.distill import distill_run

    g, student = step.group, step.model
    assert isinstance(g, DistillSection) and student is not None and step.parent is not None
    teacher = out / step.parent
    if not (teacher / METRICS_JSON).is_file():
        raise UserError(f"{step.where}: teacher run {teacher} has not finished")
    resume = state == "partial" and (run / CONFIG_JSON).is_file() and _has_checkpoint(run)
    if state == "partial" and not resume:
        log.info("%s stopped before its first checkpoint: starting it again", run)
        _clear(run)
    distill_run(teacher, student.architecture, dict(student.kwargs), data_spec(recipe, step.fold),
                train_config(recipe, student.train, progress), run, loss=g.loss,
                temperature=g.temperature, alpha=g.alpha, teacher_mode=g.teacher_mode,
                resume=resume)


def execute_step(step: Step, recipe: Recipe, out: Path, progress: bool,
                 threads: int | None = None, device: str | None = None,
                 worker: bool = False) -> Outcome:
    """Run one step wherever the executor put it: under its exclusive lock (two drivers never
    write one run: a second one waits, then finds it done), with `threads` torch threads."""
    import fcntl
    import traceback

    import torch

    if worker:  # a worker process: quiet console, the run's log.txt has everything
        setup_logging(is_main=False)
    if threads:
        torch.set_num_threads(threads)
    if device:
        recipe = recipe.model_copy(update={"device": device})
    recipe = for_step(recipe, step)
    run = out / step.run_name
    lock = lock_path(out, step)
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # released when this process ends, however it ends
        want = fingerprint(step, recipe)
        state = step_state(run, want, step)
        if state == "done":
            return Outcome(step.run_name, "skipped")
        t0 = time.perf_counter()
        try:
            if state == "new":
                if run.is_dir():  # a step killed as it began left its temp file; we hold the lock
                    remove_stale_temps(run)
                write_json(run / STEP_JSON, want)
            if step.kind == "train":
                run_train(step, recipe, out, run, state, progress)
            elif step.kind == "prune":
                run_prune(step, recipe, out, run, state, progress)
            elif step.kind == "scratch":
                run_scratch(step, recipe, out, run, state, progress)
            elif step.kind == "quantize":
                run_quantize(step, recipe, out, run, state)
            else:
                run_distill(step, recipe, out, run, state, progress)
        except BaseException as exc:
            write_json(failed_path(out, step), {
                "step": step.run_name, "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc()[-4000:], "time": time.time()})
            raise
        failed_path(out, step).unlink(missing_ok=True)
        return Outcome(step.run_name, "ran", time.perf_counter() - t0)
