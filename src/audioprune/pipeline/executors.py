"""Where a recipe's steps run: one after another, N at a time on this machine, or on a Ray cluster.

The steps form a graph (steps.dependencies: a pruned run needs its parent, a KD student its
teacher, an int8 copy its fp32 run). `run_graph` submits every step whose inputs are finished to
an executor, and as each one ends submits what it unblocked; a failed step blocks only what
depends on it. The executors are existing engines, not ours:

  sequential    in this process, in recipe order (what `audioprune run` always did)
  local (jobs)  concurrent.futures.ProcessPoolExecutor with N worker processes (spawned: no
                forked torch state); a worker that dies (killed, out of memory) breaks the pool,
                which is rebuilt and the unfinished steps resubmitted (they resume from their
                checkpoints). Workers die with the driver (PR_SET_PDEATHSIG on Linux), so a
                killed sweep leaves no orphan writing into its runs.
  ray           Ray core tasks (`num_cpus` = threads per job, `num_gpus` = 1 when the recipe
                trains on CUDA), retried by Ray when a worker dies (`max_retries`); every step
                writes into the shared run directory, so the cluster's nodes must share it.

Every step runs through `execute` (pipeline.execute.execute_step) wherever it runs: it takes an
exclusive lock on its run directory (`.lock`, fcntl: released when the process dies), so two
drivers never write the same run, and it sets torch's thread count to `threads` - the same
count gives the same metrics whatever the executor (runs are seeded).
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from audioprune.errors import UserError

log = logging.getLogger("audioprune")

__all__ = ["EXECUTORS", "GraphResult", "make_executor", "run_graph"]

EXECUTORS = ("sequential", "local", "ray")


@dataclass
class Outcome:
    """What one step did: ran, was found done, or failed (with the error)."""

    name: str
    status: str  # "ran" | "skipped" | "failed"
    seconds: float = 0.0
    error: str | None = None


@dataclass
class GraphResult:
    outcomes: dict[str, Outcome] = field(default_factory=dict)
    blocked: list[str] = field(default_factory=list)  # not run: something they need failed

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes.values() if o.status == "failed"]


# ------------------------------------------------------------------------------ executors


class SequentialExecutor:
    """Runs each submitted call at once, in this process (a finished future)."""

    jobs = 1

    def submit(self, fn: Callable[..., Outcome], *args: Any) -> cf.Future:
        future: cf.Future = cf.Future()
        try:
            future.set_result(fn(*args))
        except BaseException as exc:  # noqa: BLE001 - handed to the scheduler like any outcome
            if isinstance(exc, KeyboardInterrupt):
                raise
            future.set_exception(exc)
        return future

    def restart(self) -> None:  # nothing to rebuild
        pass

    def shutdown(self) -> None:
        pass


def _die_with_parent() -> None:
    """Worker initializer: ask Linux to kill this worker when the driver dies."""
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: orphans finish their step; the locks hold
        pass


class LocalExecutor:
    """N worker processes on this machine (concurrent.futures)."""

    def __init__(self, jobs: int) -> None:
        self.jobs = jobs
        self._pool = self._new_pool()

    def _new_pool(self) -> cf.ProcessPoolExecutor:
        import multiprocessing

        return cf.ProcessPoolExecutor(max_workers=self.jobs, initializer=_die_with_parent,
                                      mp_context=multiprocessing.get_context("spawn"))

    def submit(self, fn: Callable[..., Outcome], *args: Any) -> cf.Future:
        return self._pool.submit(fn, *args)

    def restart(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._pool = self._new_pool()

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class RayExecutor:
    """Ray core tasks; Ray retries a task whose worker died."""

    def __init__(self, address: str | None, threads: int, gpus: float, jobs: int | None) -> None:
        from audioprune.extras import require

        ray = require("ray", "the Ray executor")
        self._ray = ray
        if not ray.is_initialized():
            kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                      "configure_logging": False}
            if address:
                kwargs["address"] = address
            else:
                # A local instance is ours: its workers run at this process's priority, as the
                # local executor's do. Ray's default (niceness 15) starves every step behind
                # any other job on the machine - a 1-epoch tutorial sweep took 7 minutes of
                # wall time for 17 s of CPU beside two trainings (RAY_worker_niceness=N keeps
                # a choice of your own).
                os.environ.setdefault("RAY_worker_niceness", "0")
                if jobs:
                    kwargs["num_cpus"] = jobs * threads
            ray.init(**kwargs)
        self.jobs = max(1, int(ray.cluster_resources().get("CPU", 1) // threads))
        self._options = {"num_cpus": threads, "num_gpus": gpus, "max_retries": 3}
        self._tasks: dict[Any, Any] = {}

    def submit(self, fn: Callable[..., Outcome], *args: Any) -> cf.Future:
        if fn not in self._tasks:
            self._tasks[fn] = self._ray.remote(fn).options(**self._options)
        return self._tasks[fn].remote(*args).future()

    def restart(self) -> None:  # Ray retries dead workers itself
        pass

    def shutdown(self) -> None:
        pass


def make_executor(name: str, jobs: int = 1, threads: int = 1, address: str | None = None,
                  gpus: float = 0.0) -> Any:
    if name not in EXECUTORS:
        raise UserError(f"unknown `executor` {name!r}; choose from {', '.join(EXECUTORS)}")
    if jobs < 1:
        raise UserError(f"`jobs` must be at least 1, got {jobs}")
    if name == "ray":
        return RayExecutor(address, threads, gpus, jobs if jobs > 1 else None)
    if name == "local" and jobs > 1:
        return LocalExecutor(jobs)
    return SequentialExecutor()


def default_threads(jobs: int) -> int:
    """Cores shared evenly between the jobs (at least one thread each)."""
    return max(1, (os.cpu_count() or 1) // max(1, jobs))


# ------------------------------------------------------------------------------ scheduling


def run_graph(names: Sequence[str], deps: dict[str, list[str]], task: Callable[[str], tuple],
              fn: Callable[..., Outcome], executor: Any,
              on_done: Callable[[Outcome, int, int], None] | None = None,
              done: Sequence[str] = (), fail_fast: bool = False,
              on_start: Callable[[str], None] | None = None) -> GraphResult:
    """Run every step of `names` (in that order of preference) once all of `deps[name]` have
    finished, through `executor`: `fn(*task(name))` returns its Outcome. `done`: steps already
    finished (not submitted). A step whose dependency failed is not run (`blocked`); with
    `fail_fast` the first failure is raised instead. A broken worker pool is rebuilt and its
    steps resubmitted (at most 3 times per step)."""
    result = GraphResult()
    for name in done:
        result.outcomes[name] = Outcome(name, "skipped")
        if on_done is not None:
            on_done(result.outcomes[name], len(result.outcomes), len(names))
    names = [n for n in names if n not in result.outcomes]
    pending = list(names)
    running: dict[cf.Future, str] = {}
    tries: dict[str, int] = {}
    total = len(names) + len(done)

    def finished(name: str) -> bool:
        o = result.outcomes.get(name)
        return o is not None and o.status != "failed"

    def submit_ready() -> None:
        for name in list(pending):
            needs = deps.get(name, [])
            if any(d in result.blocked or (d in result.outcomes and not finished(d))
                   for d in needs):
                pending.remove(name)
                result.blocked.append(name)
                continue
            if all(finished(d) for d in needs) and len(running) < max(1, executor.jobs):
                pending.remove(name)
                tries[name] = tries.get(name, 0) + 1
                if on_start is not None:
                    on_start(name)
                running[executor.submit(fn, *task(name))] = name

    submit_ready()
    while running:
        done, _ = cf.wait(list(running), return_when=cf.FIRST_COMPLETED)
        broken = False
        for future in done:
            name = running.pop(future)
            try:
                outcome = future.result()
            except cf.process.BrokenProcessPool:
                broken = True
                if tries[name] < 3:
                    log.warning("the worker running %s died; running it again", name)
                    pending.insert(0, name)
                    continue
                outcome = Outcome(name, "failed", error="its worker died 3 times")
            except Exception as exc:  # noqa: BLE001 - a step's error is that step's outcome
                if fail_fast:
                    raise
                outcome = Outcome(name, "failed", error=f"{type(exc).__name__}: {exc}")
            result.outcomes[name] = outcome
            if on_done is not None:
                on_done(outcome, len(result.outcomes), total)
        if broken:
            for future, name in list(running.items()):  # every future of a broken pool fails
                running.pop(future)
                pending.insert(0, name)
            executor.restart()
        submit_ready()
    result.blocked += [n for n in pending if n not in result.blocked]
    return result


class Progress:
    """What the sweep prints. One after another: "[i/N] what -> where" as each step starts (N
    counts the profiles and the report too), "done before, skipped" for finished ones. In
    parallel: a line per finished step with the elapsed and estimated remaining time, and an
    overall bar."""

    def __init__(self, labels: dict[str, tuple[int, str]], total: int, parallel: bool,
                 bar: bool) -> None:
        self.t0 = time.perf_counter()
        self.labels, self.total, self.parallel = labels, total, parallel
        self.bar = None
        if bar and parallel and labels:
            from audioprune.progress import progress_bar

            self.bar = progress_bar(total=len(labels), unit="step", desc="sweep",
                                    dynamic_ncols=True)

    def start(self, name: str) -> None:
        if not self.parallel:
            i, label = self.labels[name]
            log.info("[%d/%d] %s", i, self.total, label)

    def __call__(self, outcome: Outcome, done: int, total: int) -> None:
        i, label = self.labels[outcome.name]
        if not self.parallel:
            if outcome.status == "skipped":
                log.info("[%d/%d] %s: done before, skipped", i, self.total, label)
            return
        elapsed = time.perf_counter() - self.t0
        rest = elapsed / done * (total - done) if done else 0.0
        what = {"ran": f"done in {outcome.seconds:.0f} s", "skipped": "done before, skipped",
                "failed": f"FAILED: {outcome.error}"}[outcome.status]
        log.info("[%d/%d] %s: %s (elapsed %s, about %s left)", done, total, label, what,
                 _clock(elapsed), _clock(rest))
        if self.bar is not None:
            self.bar.update(1)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s"
