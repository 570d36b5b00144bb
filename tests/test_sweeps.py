"""Parallel sweeps: the same recipe run one step at a time, with 2 local worker processes and on
a local Ray cluster gives identical runs; failures stay with their step; a killed driver leaves
nothing corrupted and a re-run redoes no finished step."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from audioprune.cli import main
from audioprune.pipeline.executors import Outcome, SequentialExecutor, run_graph
from audioprune.pipeline.recipe import parse_recipe
from audioprune.pipeline.runner import run_recipe
from audioprune.pipeline.sweep import sweep_status
from waiting import read_until, session_pids, wait_for_exit

SWEEP: dict[str, Any] = {
    "name": "sweep",
    "dataset": {"name": "synthetic", "split": "sizes:40,20,20",
                "frontend": {"n_mels": 40, "clip_seconds": 0.5}},
    "models": [{"name": "a", "arch": "dcase21net", "train": {"epochs": 2, "batch_size": 8}},
               {"name": "b", "arch": "dcase21net", "kwargs": {"width": 0.5},
                "train": {"epochs": 2, "batch_size": 8}}],
    "prune": {"criteria": ["wdc", "l1"], "ratios": [0.5], "layers": "C1-C2",
              "finetune": {"epochs": 1}},
    "profile": False,
}
RUNS = ["a", "b", "a-wdc-r50", "a-l1-r50", "b-wdc-r50", "b-l1-r50"]


def _metrics(out: Path) -> dict[str, dict[str, Any]]:
    keep = ("accuracy", "params", "macs", "history", "best_epoch")
    return {r: {k: json.loads((out / r / "metrics.json").read_text()).get(k) for k in keep}
            for r in RUNS}


def _strip_times(m: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    for run in m.values():
        for epoch in run["history"] or []:
            epoch.pop("seconds", None)
    return m


@pytest.fixture(scope="module")
def sequential(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    out = tmp_path_factory.mktemp("sweep") / "seq"
    t0 = time.perf_counter()
    result = run_recipe(parse_recipe(SWEEP), out, progress=False, threads=1)
    assert result.ran == ["train a", "train b", "prune a-wdc-r50", "prune a-l1-r50",
                          "prune b-wdc-r50", "prune b-l1-r50"]
    return out, time.perf_counter() - t0


def test_two_local_jobs_give_the_same_runs(sequential: tuple[Path, float], tmp_path: Path) -> None:
    out = tmp_path / "jobs2"
    result = run_recipe(parse_recipe(SWEEP), out, progress=False, executor="local", jobs=2,
                        threads=1)
    assert sorted(result.ran) == sorted(f"{'train' if '-' not in r else 'prune'} {r}" for r in RUNS)
    assert _strip_times(_metrics(out)) == _strip_times(_metrics(sequential[0]))
    assert [r["state"] for r in sweep_status(parse_recipe(SWEEP), out)] == ["done"] * 6
    again = run_recipe(parse_recipe(SWEEP), out, progress=False, executor="local", jobs=2)
    assert again.ran == [] and len(again.skipped) == 6


def test_a_local_ray_cluster_gives_the_same_runs(sequential: tuple[Path, float],
                                                 tmp_path: Path) -> None:
    ray = pytest.importorskip("ray")
    out = tmp_path / "ray"
    try:
        run_recipe(parse_recipe(SWEEP), out, progress=False, executor="ray", jobs=2, threads=1)
    finally:
        ray.shutdown()
    assert _strip_times(_metrics(out)) == _strip_times(_metrics(sequential[0]))


def test_a_local_ray_instance_runs_steps_at_the_drivers_priority() -> None:
    """Ray starts its workers at niceness 15 unless told otherwise; a local instance started by
    the Ray executor runs them at the driver's own priority, as the local executor does."""
    ray = pytest.importorskip("ray")
    from audioprune.pipeline.executors import RayExecutor

    if ray.is_initialized():
        ray.shutdown()
    try:
        RayExecutor(None, threads=1, gpus=0.0, jobs=1)
        worker_nice = ray.get(ray.remote(num_cpus=1)(lambda: os.nice(0)).remote())
    finally:
        ray.shutdown()
    assert worker_nice == os.nice(0)


def test_a_failed_step_blocks_only_what_needs_it(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture) -> None:
    """prune group 2 asks for fewer parameters than any pruning of C1 can give: its steps fail,
    every other step finishes; --status names the failure; the exit code is 2."""
    bad = {**SWEEP, "models": SWEEP["models"][:1],
           "prune": [{"criteria": ["l1"], "ratios": [0.5], "layers": "C1", "finetune": {"epochs": 1}},
                     {"criteria": ["l1"], "target_params": [10], "layers": "C1", "tag": "tiny"}]}
    path = tmp_path / "bad.yaml"


    path.write_text(yaml.safe_dump(bad))
    out = tmp_path / "out"
    assert main(["run", str(path), "--out", str(out), "--jobs", "2", "--threads-per-job", "1",
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "1 step(s) failed" in err and "a-tiny-l1-params10" in err and "cannot be met" in err
    assert (out / "a-l1-r50" / "metrics.json").is_file()
    assert main(["run", str(path), "--out", str(out), "--status"]) == 0
    status = capsys.readouterr().out
    assert "done     train    a " in status and "failed   prune    a-tiny-l1-params10" in status
    assert "2 done, 1 failed of 3 steps" in status


def test_the_scheduler_keeps_dependencies_and_blocks_dependents() -> None:
    order: list[str] = []

    def fn(name: str) -> Outcome:
        order.append(name)
        if name == "p1":
            raise RuntimeError("boom")
        return Outcome(name, "ran")

    deps = {"t": [], "p1": ["t"], "q1": ["p1"], "p2": ["t"]}
    result = run_graph(["t", "p1", "q1", "p2"], deps, lambda n: (n,), fn, SequentialExecutor())
    assert order == ["t", "p1", "p2"] and result.blocked == ["q1"]
    assert [o.name for o in result.failed] == ["p1"] and "boom" in result.failed[0].error
    with pytest.raises(RuntimeError, match="boom"):
        run_graph(["t", "p1", "q1", "p2"], deps, lambda n: (n,), fn, SequentialExecutor(),
                  fail_fast=True)


def test_a_killed_driver_corrupts_nothing_and_redoes_no_finished_step(
        sequential: tuple[Path, float], tmp_path: Path) -> None:
    """The driver is SIGKILLed once `a` and a pruned run have finished (read from its progress
    lines as it prints them); its workers die with it (every process of its session ends, and
    none finishes a step after the kill); a re-run skips exactly the finished steps, leaves them
    untouched and ends with the runs of an uninterrupted sweep."""
    if not hasattr(os, "pidfd_open"):
        pytest.skip("workers die with their driver on Linux only (PR_SET_PDEATHSIG)")
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(SWEEP))
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "audioprune", "run", str(path), "--out", str(out), "--jobs", "2",
           "--threads-per-job", "1", "--no-progress"]
    driver = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              start_new_session=True)
    a_done = f"-> {out / 'a'}: done in "

    def a_and_a_pruned_run_done(lines: list[str]) -> bool:  # "[3/6] prune a with ...: done in"
        return (any(a_done in line for line in lines)
                and any("] prune " in line and ": done in " in line for line in lines))

    try:
        read_until(driver, a_and_a_pruned_run_done, timeout=600)
        workers = [p for p in session_pids(driver.pid) if p != driver.pid]
    finally:
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait()
        driver.stdout.close()
    finished = {r: (out / r / "metrics.json").stat().st_mtime_ns for r in RUNS
                if (out / r / "metrics.json").is_file()}
    assert "a" in finished and len(finished) < len(RUNS)
    assert len(workers) >= 2  # the two workers (and multiprocessing's resource tracker)
    assert wait_for_exit(workers, timeout=120) == []  # they die with the driver
    assert {r for r in RUNS if (out / r / "metrics.json").is_file()} == set(finished)
    states = {r["step"]: r["state"] for r in sweep_status(parse_recipe(SWEEP), out)}
    assert "running" not in states.values(), states  # every step lock was released
    result = run_recipe(parse_recipe(SWEEP), out, progress=False, executor="local", jobs=2,
                        threads=1)
    assert {s.split(" ")[1] for s in result.skipped} == set(finished)
    for run, mtime in finished.items():  # finished runs were not touched
        assert (out / run / "metrics.json").stat().st_mtime_ns == mtime
    assert _strip_times(_metrics(out)) == _strip_times(_metrics(sequential[0]))
