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
import time
from dataclasses import dataclass, field
from pathlib import Path

from audioprune.errors import UserError
from audioprune.pipeline.execute import execute_step
from audioprune.pipeline.fingerprint import fingerprint, step_state
from audioprune.pipeline.recipe import check_names
from audioprune.pipeline.schema import Recipe
from audioprune.pipeline.steps import STEP_KINDS, Step, plan_steps
from audioprune.pipeline.sweep import SWEEP_DIR
from audioprune.pipeline.units import data_spec, recipe_folds  # noqa: F401  (the runner's API)
from audioprune.report import Report, write_report
from audioprune.runs.logs import setup_logging
from audioprune.runs.run_dir import PROFILE_JSON

log = logging.getLogger("audioprune")


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


def profile_available() -> bool:
    try:
        from audioprune.runs.profile import profile_run  # noqa: F401
    except ImportError:
        return False
    return True


def step_dependencies(steps: list[Step]) -> dict[str, list[str]]:
    """What each step needs finished first: a pruned or int8 run its parent, a KD student its
    teacher (runs the recipe does not make, such as an `init` run, are inputs, not steps)."""
    names = {s.run_name for s in steps}
    return {s.run_name: [s.parent] if s.parent in names else [] for s in steps}


def run_recipe(recipe: Recipe, out: str | Path | None = None, progress: bool = True, *,
               executor: str = "sequential", jobs: int = 1, threads: int | None = None,
               address: str | None = None) -> PipelineResult:
    """Execute `recipe` into `out` (default: the recipe's `out`, or runs/<recipe name>); finished
    steps are skipped.

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
    out = Path(out) if out is not None else Path(recipe.out_dir)
    _check_data(recipe)
    folds = recipe_folds(recipe)
    steps = plan_steps(recipe, folds)
    result = PipelineResult(out, [out / s.run_name for s in steps], None)
    parallel = executor != "sequential" and (jobs > 1 or executor == "ray")
    if threads is None and parallel:
        threads = default_threads(jobs)
    gpus = 1.0 if recipe.device.startswith("cuda") else 0.0
    log.info("recipe %s: %d runs (%s) on %s%s -> %s%s", recipe.name, len(steps),
             ", ".join(f"{sum(s.kind == k for s in steps)} {k}" for k in STEP_KINDS
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
