"""What the peer benchmarks share: where results go, the machine they ran on, round-robin timing.

Round-robin timing: on a shared machine the load changes while a benchmark runs, so variants are
never timed one after the other in long blocks. Each round times every variant in turn (the order
rotates from round to round), and a variant's latency is the median over rounds; a ratio to the
reference is the median of the per-round ratios, both timed within the same round, so a load
change hits numerator and denominator alike. Both wall time and process CPU time are kept: at one
thread, CPU time is what the kernels took, without the time spent waiting for a core.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import statistics
import time
from collections.abc import Callable, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any

import torch

import audioprune as ap
from audioprune.fileio import write_json

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
QUICK_RESULTS = RESULTS / "quick"
FSDD = Path(os.environ.get("FSDD_ROOT", ROOT.parent / "shared" / "datasets" / "fsdd"))


def fsdd_available(root: Path = FSDD) -> bool:
    return (root / "recordings").is_dir()


def load_average() -> float | None:
    return round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None


def machine() -> dict[str, Any]:
    """The CPU, cores, library versions, date and the current load: a timing means nothing
    without them."""
    info: dict[str, Any] = {
        "cpu": ap.cpu_model(), "cpu_count": os.cpu_count(), "platform": platform.platform(),
        "python": platform.python_version(), "torch": torch.__version__,
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "load_average_1min": load_average(),
    }
    for package in ("onnxruntime", "torch-pruning", "networkx"):
        try:
            info[package.replace("-", "_")] = metadata.version(package)
        except metadata.PackageNotFoundError:
            pass
    return info


def save(path: Path, result: Mapping[str, Any]) -> Path:
    """Write a result JSON atomically (audioprune.fileio) and return its path."""
    write_json(path, dict(result))
    return path


def calls_for(fn: Callable[[], Any], budget_s: float, lo: int = 1, hi: int = 200) -> int:
    """How many calls of `fn` fill about `budget_s` (one call is made to find out)."""
    t0 = time.perf_counter()
    fn()
    one = time.perf_counter() - t0
    return max(lo, min(hi, int(budget_s / max(one, 1e-6))))


class RoundRobin:
    """Per-round median ms per call (wall and process CPU) of each variant."""

    def __init__(self, names: list[str]) -> None:
        self.wall: dict[str, list[float]] = {n: [] for n in names}
        self.cpu: dict[str, list[float]] = {n: [] for n in names}

    def ms(self, name: str, cpu: bool = False) -> float:
        return round(statistics.median((self.cpu if cpu else self.wall)[name]), 4)

    def spread(self, name: str) -> tuple[float, float]:
        """10th and 90th percentile of the per-round wall medians (how noisy the machine was)."""
        values = sorted(self.wall[name])
        if len(values) < 2:
            return values[0], values[0]
        q = statistics.quantiles(values, n=10, method="inclusive")
        return round(q[0], 4), round(q[-1], 4)

    def ratio(self, name: str, ref: str, cpu: bool = False) -> float:
        t = self.cpu if cpu else self.wall
        return round(statistics.median(a / b for a, b in zip(t[name], t[ref])), 4)

    def row(self, name: str, ref: str) -> dict[str, Any]:
        p10, p90 = self.spread(name)
        return {"ms": self.ms(name), "p10_ms": p10, "p90_ms": p90, "cpu_ms": self.ms(name, True),
                "ratio": self.ratio(name, ref), "cpu_ratio": self.ratio(name, ref, True),
                "rounds": len(self.wall[name])}


def round_robin(fns: Mapping[str, Callable[[], Any]], rounds: int = 7, budget_s: float = 0.15,
                warmup: int = 2) -> RoundRobin:
    """Time every fn in `rounds` interleaved rounds after `warmup` calls each. Within a round a
    variant makes enough calls to fill about `budget_s` (sized on the slowest variant, so every
    variant makes the same number of calls) and its median per-call time is kept."""
    names = list(fns)
    for fn in fns.values():
        for _ in range(warmup):
            fn()
    calls = min(calls_for(fn, budget_s) for fn in fns.values())
    times = RoundRobin(names)
    for r in range(rounds):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            wall, cpu = [], []
            for _ in range(calls):
                w0, c0 = time.perf_counter(), time.process_time()
                fns[name]()
                cpu.append(time.process_time() - c0)
                wall.append(time.perf_counter() - w0)
            times.wall[name].append(1e3 * statistics.median(wall))
            times.cpu[name].append(1e3 * statistics.median(cpu))
    return times


def table(headers: list[str], rows: list[list[Any]]) -> str:
    """A Markdown table (also readable as plain text)."""
    cells = [[str(c) for c in r] for r in rows]
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in cells]
    return "\n".join(out)
