"""Shared fixtures: the real FSDD recordings (read-only, from ../shared/datasets/fsdd) and small
FSDD-layout trees made of links to them, so tests use real speech but stay fast."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

FSDD = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "fsdd"
BENCH = Path(__file__).resolve().parents[1] / "bench"


def bench_module(name: str):
    """A bench/ script imported as a module (bench/ is not a package)."""
    sys.path.insert(0, str(BENCH))
    try:
        return __import__(name)
    finally:
        sys.path.remove(str(BENCH))


# One intra-op thread in this process and in every child process (CLI runs, sweep workers), set
# at import so that module- and session-scoped fixtures run with it too: on a busy machine two
# OpenMP threads per process wait on each other at every op (the same small training steps took
# 4-5x the wall time and 5-7x the CPU of one thread under a load of 3 on 2 cores). Tests that time
# or compare thread counts set theirs explicitly.
os.environ["OMP_NUM_THREADS"] = os.environ["MKL_NUM_THREADS"] = "1"
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _deterministic() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)  # again: a test before may have changed it


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUDIOPRUNE_CACHE", str(tmp_path_factory.getbasetemp() / "audio-cache"))


@pytest.fixture(scope="session")
def fsdd_root() -> Path:
    if not (FSDD / "recordings").is_dir():
        pytest.skip(f"real FSDD recordings not found at {FSDD}")
    return FSDD


def make_fsdd_subset(dest: Path, speakers: tuple[str, ...], indices: range) -> Path:
    """An FSDD tree holding links to the real recordings of `speakers` x 10 digits x `indices`."""
    rec = dest / "recordings"
    rec.mkdir(parents=True)
    for spk in speakers:
        for digit in range(10):
            for idx in indices:
                name = f"{digit}_{spk}_{idx}.flac"
                (rec / name).symlink_to(FSDD / "recordings" / name)
    return dest


@pytest.fixture(scope="session")
def fsdd_small(fsdd_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 speakers x 10 digits x indices 0-11: 240 real clips (official split: 100 test)."""
    return make_fsdd_subset(tmp_path_factory.mktemp("fsdd_small"), ("george", "jackson"), range(12))
