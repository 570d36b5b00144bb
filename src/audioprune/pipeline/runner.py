"""`audioprune run RECIPE`: train -> prune (x criteria x plans) -> fine-tune -> evaluate ->
profile -> report, resumable.

Every step is one run directory under `out`. Its state decides what happens on a (re)run:
  done      metrics.json exists                     -> skipped
  partial   started (config.json), not finished    -> continued from its last epoch checkpoint
            (train --resume / prune --resume); a run killed before its first checkpoint is
            cleared and started again
  new                                               -> run
Before a step starts, its fingerprint (what the run depends on) is written to
recipe_step.json; a later run of a CHANGED recipe that would reuse the directory stops with an
error naming the difference, instead of silently mixing settings. Evaluation is part of every
train/prune step (metrics.json holds the test split's numbers); profiling adds profile.json to
each run; the report is rebuilt from all runs every time.
"""

from __future__ import annotations

import logging
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audioprune.errors import UserError
from audioprune.fileio import read_json, write_json
from audioprune.pipeline.executors import Outcome
from audioprune.pipeline.recipe import Recipe, TrainSection
from audioprune.pipeline.steps import Step, plan_steps
from audioprune.report import Report, write_report
from audioprune.runs.data import DataSpec
from audioprune.runs.logs import setup_logging
from audioprune.runs.run_dir import CONFIG_JSON, METRICS_JSON
from audioprune.train.fit import TrainConfig

log = logging.getLogger("audioprune")

STEP_JSON = "recipe_step.json"
PROFILE_JSON = "profile.json"
_NOT_FINGERPRINTED = {"progress", "device", "num_workers", "eval_batch_size"}


@dataclass
class PipelineResult:
    out: Path
    runs: list[Path]
    report: Report | None
    ran: list[str] = field(default_factory=list)  # "train dcase21net", "profile ..."
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0


def with_overrides(recipe: Recipe, dataset: str | None = None, data_root: str | None = None,
                   device: str | None = None, epochs: int | None = None) -> Recipe:
    """The recipe with command-line overrides. A new `dataset` replaces the whole dataset section
    (split, folds and front-end settings are dataset-specific); `epochs` sets every model's
    training epochs (not the fine-tuning)."""
    from audioprune.pipeline.recipe import check_names

    data = recipe.dataset
    if dataset is not None and dataset != data.name:
        data = type(data)(name=dataset)
    if data_root is not None:
        data = data.model_copy(update={"root": data_root})
    models = recipe.models
    if epochs is not None:
        if epochs < 1:
            raise UserError(f"`epochs` must be at least 1, got {epochs}")
        models = [m.model_copy(update={"train": m.train.model_copy(update={"epochs": epochs})})
                  for m in models]
    new = recipe.model_copy(update={"dataset": data, "models": models,
                                    **({"device": device} if device else {})})
    check_names(new, f"recipe {recipe.name}")
    return new


def data_spec(recipe: Recipe, fold: int | None = None) -> DataSpec:
    """The recipe's data; with `fold`, that cross-validation fold (split fold:K)."""
    d = recipe.dataset
    options = d.options()
    if fold is not None:
        options = {k: v for k, v in options.items() if k != "test_fold"}
        given = re.fullmatch(r"fold:\d+/(\d+)", str(options.get("split", "")))
        options["split"] = f"fold:{fold}" + (f"/{given.group(1)}" if given else "")  # keep K
    return DataSpec(dataset=d.name, data_root=d.root, options=options, frontend=dict(d.frontend),
                    cache=d.cache, cache_dir=d.cache_dir, strict=d.strict)


def recipe_folds(recipe: Recipe) -> list[int] | None:
    """The folds the recipe runs (`folds: all` resolved against the data), None without."""
    if recipe.folds is None:
        return None
    from audioprune.data.folds import fold_list

    d = recipe.dataset
    return fold_list(recipe.folds, d.name, d.root, d.options())


def _check_data(recipe: Recipe) -> None:
    """Fail before any training when the data cannot be found."""
    from audioprune.data.registry import get_dataset_info

    info = get_dataset_info(recipe.dataset.name)
    root = recipe.dataset.root
    if info.needs_root and root is None:
        raise UserError(f"recipe {recipe.name}: dataset {info.name!r} needs its data: add "
                        f"`root: DIR` under `dataset:` or pass `data_root` DIR. Expected layout:\n"
                        f"{info.layout}")
    if root is not None and info.needs_root and not Path(root).is_dir():
        raise UserError(f"recipe {recipe.name}: dataset root {root} is not a directory "
                        f"(dataset.root or `data_root`)")


def train_config(recipe: Recipe, section: TrainSection, progress: bool) -> TrainConfig:
    return TrainConfig(**{**section.given(), "seed": recipe.seed, "device": recipe.device,
                          "progress": progress})


# TrainConfig fields added after recipes were first run: left out at their defaults, so the runs
# of an older version still match their recipe
_NEW_AT_DEFAULT = {"init": None, "freeze": None, "body_lr_scale": 1.0}


def for_step(recipe: Recipe, step: Step) -> Recipe:
    """The recipe as the step sees it: its unit's seed in place of the recipe's."""
    return recipe if step.seed is None else recipe.model_copy(update={"seed": step.seed})


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
    if step.kind == "quantize":
        return {"step": "quantize", "parent": step.parent,
                "quantize": g.model_dump(exclude={"of"}), "data": data}  # type: ignore[union-attr]
    assert step.criterion is not None and g is not None
    out = {"step": "prune", "parent": step.parent, "criterion": step.criterion.name,
           "options": step.criterion.options, "plan": step.plan, "iterative": g.iterative,  # type: ignore[union-attr]
           "aggregate": g.aggregate, "quaternion_mode": g.quaternion_mode,  # type: ignore[union-attr]
           "finetune": g.finetune.given(), "data": data}  # type: ignore[union-attr]
    if g.scope is not None:  # type: ignore[union-attr]  (recorded only when set: older runs match)
        out["scope"] = g.scope  # type: ignore[union-attr]
    if g.group_reduction != "mean":  # type: ignore[union-attr]
        out["group_reduction"] = g.group_reduction  # type: ignore[union-attr]
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
    if not run.exists() or not any(run.iterdir()):
        return "new"
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
    from audioprune.pruning.plan import PlanSpec
    from audioprune.runs.parents import finetune_config
    from audioprune.runs.prune import PruneConfig, prune_run

    g, crit = step.group, step.criterion
    assert g is not None and crit is not None and step.parent is not None
    parent = out / step.parent
    if not (parent / METRICS_JSON).is_file():
        raise UserError(f"{step.where}: parent run {parent} has not finished")
    cfg = PruneConfig(crit.name, PlanSpec(**step.plan).validate(), dict(crit.options),
                      iterative=g.iterative, aggregate=g.aggregate,  # type: ignore[union-attr]
                      quaternion_mode=g.quaternion_mode, scope=g.scope,  # type: ignore[union-attr]
                      group_reduction=g.group_reduction)  # type: ignore[union-attr]
    given = g.finetune.given()  # type: ignore[union-attr]
    train = finetune_config(parent, given.pop("epochs", None),
                            **{**given, "seed": recipe.seed, "device": recipe.device,
                               "progress": progress})
    resume = state == "partial" and (run / CONFIG_JSON).is_file()
    if resume:
        log.info("continuing %s", run)
    distill = None
    if g.distill is not None:  # type: ignore[union-attr]
        from audioprune.distill import DistillConfig

        d = g.distill  # type: ignore[union-attr]
        distill = DistillConfig("parent", d.loss, d.temperature, d.alpha, d.teacher_mode)
    prune_run(parent, run, cfg, train, data_spec(recipe, step.fold), resume=resume,
              distill=distill)


def run_quantize(step: Step, recipe: Recipe, out: Path, run: Path, state: str) -> None:
    """int8 sibling of a finished run; an interrupted one is simply made again (minutes)."""
    from audioprune.pipeline.recipe import QuantizeSection
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
                 data_root=recipe.dataset.root, seed=recipe.seed)


def run_distill(step: Step, recipe: Recipe, out: Path, run: Path, state: str,
                progress: bool) -> None:
    from audioprune.pipeline.recipe import DistillSection
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


def profile_available() -> bool:
    try:
        from audioprune.runs.profile import profile_run  # noqa: F401
    except ImportError:
        return False
    return True


SWEEP_DIR = ".sweep"  # under `out`: one lock per step (held while it runs) and failure records


def _lock_path(out: Path, step: Step) -> Path:
    return out / SWEEP_DIR / f"{step.run_name}.lock"


def _failed_path(out: Path, step: Step) -> Path:
    return out / SWEEP_DIR / f"{step.run_name}.failed.json"


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
    lock = _lock_path(out, step)
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
                write_json(run / STEP_JSON, want)
            if step.kind == "train":
                run_train(step, recipe, out, run, state, progress)
            elif step.kind == "prune":
                run_prune(step, recipe, out, run, state, progress)
            elif step.kind == "quantize":
                run_quantize(step, recipe, out, run, state)
            else:
                run_distill(step, recipe, out, run, state, progress)
        except BaseException as exc:
            write_json(_failed_path(out, step), {
                "step": step.run_name, "error": f"{type(exc).__name__}: {exc}",
                "traceback": traceback.format_exc()[-4000:], "time": time.time()})
            raise
        _failed_path(out, step).unlink(missing_ok=True)
        return Outcome(step.run_name, "ran", time.perf_counter() - t0)


def step_dependencies(steps: list[Step]) -> dict[str, list[str]]:
    """What each step needs finished first: a pruned or int8 run its parent, a KD student its
    teacher (runs the recipe does not make, such as an `init` run, are inputs, not steps)."""
    names = {s.run_name for s in steps}
    return {s.run_name: [s.parent] if s.parent in names else [] for s in steps}


def run_recipe(recipe: Recipe, out: str | Path | None = None, progress: bool = True, *,
               executor: str = "sequential", jobs: int = 1, threads: int | None = None,
               address: str | None = None) -> PipelineResult:
    """Execute `recipe` into `out` (default runs/<recipe name>); finished steps are skipped.

    `executor` (pipeline.executors): "sequential" (in this process, in order; the first
    failure stops the sweep), "local" (`jobs` worker processes) or "ray" (a Ray cluster at
    `address`, or a local one with `jobs` workers). `threads`: torch threads per step (default:
    the cores shared between the jobs; sequential: torch's own). Profiling runs after all steps,
    one run at a time in this process (timings must not share cores with other jobs).
    """
    from audioprune.pipeline.executors import (
        Progress,
        default_threads,
        make_executor,
        run_graph,
    )

    setup_logging()
    t0 = time.perf_counter()
    out = Path(out) if out is not None else Path("runs") / recipe.name
    _check_data(recipe)
    folds = recipe_folds(recipe)
    steps = plan_steps(recipe, folds)
    result = PipelineResult(out, [out / s.run_name for s in steps], None)
    parallel = executor != "sequential" and (jobs > 1 or executor == "ray")
    if threads is None and parallel:
        threads = default_threads(jobs)
    gpus = 1.0 if recipe.device.startswith("cuda") else 0.0
    log.info("recipe %s: %d runs (%s) on %s%s -> %s%s", recipe.name, len(steps),
             ", ".join(f"{sum(s.kind == k for s in steps)} {k}" for k in ("train", "prune", "distill", "quantize")
                       if any(s.kind == k for s in steps)), recipe.dataset.name,
             f", folds {','.join(map(str, folds))}" if folds else "", out,
             f"; {executor} executor, {jobs} jobs x {threads} thread(s)" if parallel else "")
    by_name = {s.run_name: s for s in steps}
    done = [s.run_name for s in steps if step_state(out / s.run_name, fingerprint(s, recipe), s)
            == "done"]
    cuda = _cuda_devices(recipe) if parallel and executor == "local" else []
    counter = iter(range(10**9))

    def task(name: str) -> tuple:
        device = cuda[next(counter) % len(cuda)] if cuda else None
        return (by_name[name], recipe, out, progress and not parallel, threads, device, parallel)

    engine = make_executor(executor if parallel else "sequential", jobs, threads or 1, address,
                           gpus)
    profiling = recipe.profile is not None
    total = len(steps) * (2 if profiling else 1) + (1 if recipe.report is not None else 0)
    labels = {s.run_name: (i, f"{s.describe()} -> {out / s.run_name}")
              for i, s in enumerate(steps, start=1)}
    bar = Progress(labels, total, parallel, progress)
    try:
        graph = run_graph([s.run_name for s in steps], step_dependencies(steps), task,
                          execute_step, engine, on_done=bar, done=done, fail_fast=not parallel,
                          on_start=bar.start)
    finally:
        bar.close()
        engine.shutdown()
    for name, o in graph.outcomes.items():
        (result.ran if o.status == "ran" else result.skipped if o.status == "skipped" else
         []).append(f"{by_name[name].kind} {name}")
    if graph.failed or graph.blocked:
        lines = [f"{o.name}: {o.error}" for o in graph.failed]
        lines += [f"{n}: not run, a step it needs failed" for n in graph.blocked]
        raise UserError(f"recipe {recipe.name}: {len(graph.failed)} step(s) failed (their "
                        f"tracebacks: {out / SWEEP_DIR}/*.failed.json); the finished ones are "
                        f"kept, run it again to retry:\n  " + "\n  ".join(lines))
    order = [s.run_name for s in steps]
    result.ran.sort(key=lambda x: order.index(x.split(" ", 1)[1]))
    result.skipped.sort(key=lambda x: order.index(x.split(" ", 1)[1]))
    if profiling:
        _profile_all(recipe, result, len(steps), total)
    if recipe.report is not None:
        log.info("[%d/%d] report -> %s", total, total, out / "report")
        result.report = write_report(result.runs, out / "report", title=recipe.report.title or
                                     f"{recipe.name} on {recipe.dataset.name}",
                                     budget=recipe.report.budget)
    result.seconds = time.perf_counter() - t0
    return result


def sweep_status(recipe: Recipe, out: str | Path | None = None) -> list[dict[str, Any]]:
    """Each step's state without running anything: done, running (its lock is held by a live
    process), failed (with the error), partial (started, interrupted), new; and whether its run
    was profiled."""
    import fcntl

    out = Path(out) if out is not None else Path("runs") / recipe.name
    rows = []
    for step in plan_steps(recipe, recipe_folds(recipe)):
        run = out / step.run_name
        failed = _failed_path(out, step)
        state = "new"
        if (run / METRICS_JSON).is_file():
            state = "done"
        else:
            lock = _lock_path(out, step)
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


def _cuda_devices(recipe: Recipe) -> list[str]:
    """One GPU per job, round-robin, when the recipe trains on CUDA."""
    if not recipe.device.startswith("cuda"):
        return []
    import torch

    n = torch.cuda.device_count()
    return [f"cuda:{i}" for i in range(n)] if n else []


def _profile_all(recipe: Recipe, result: PipelineResult, offset: int, total: int) -> None:
    if not profile_available():
        log.warning("profiling skipped: audioprune.runs.profile is not available in this "
                    "install; the report shows no latency")
        return
    from audioprune.runs.profile import profile_run

    prof = recipe.profile
    assert prof is not None
    for i, run in enumerate(result.runs, start=offset + 1):
        if (run / PROFILE_JSON).is_file():
            log.info("[%d/%d] profile %s: done before, skipped", i, total, run)
            result.skipped.append(f"profile {run.name}")
            continue
        log.info("[%d/%d] profile %s (batch %s%s)", i, total, run,
                 "/".join(map(str, prof.batch_sizes)), ", eager + onnxruntime" if prof.onnx else "")
        profile_run(run, batch_sizes=tuple(prof.batch_sizes), threads=prof.threads, onnx=prof.onnx)
        result.ran.append(f"profile {run.name}")


def summary(result: PipelineResult) -> str:
    """What `audioprune run` and `demo` print at the end: the table and where everything is."""
    lines = []
    if result.report is not None:
        lines += ["", result.report.table.rstrip(), ""]
        if result.report.summary_table:
            lines += ["over folds and seeds (mean [95% CI]; * = the paired difference's interval "
                      "excludes 0):", "", result.report.summary_table.rstrip(), "",
                      f"summary: {result.report.summary_csv}"]
        lines += [f"report: {result.report.markdown}", f"table:  {result.report.csv}"]
        lines += [f"plot:   {p}" for p in result.report.plots]
    lines.append(f"runs:   {result.out}/  ({len(result.ran)} steps run, {len(result.skipped)} "
                 f"skipped as done before; {result.seconds:.0f} s)")
    return "\n".join(lines)
