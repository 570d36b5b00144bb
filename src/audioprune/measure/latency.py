"""Wall-clock latency of a model in PyTorch eager and in ONNX Runtime, with the threads stated.

A measurement is: warm-up calls (the first calls pay for allocation, kernel selection and ORT's
lazy initialisation), then N timed calls, each timed alone with `time.perf_counter`; we report
the median and the 10th / 90th percentiles in milliseconds (the median resists the odd slow
call on a shared machine; p10-p90 shows how noisy the machine was). N adapts to the model: it is
`budget_s` divided by the time of one warmed-up call, kept within [min_repeats, max_repeats], so
a tiny CNN gets many repetitions and CNN14 at batch 32 a few, and a profile stays short.

Threads are set explicitly for both runtimes (`torch.set_num_threads`, ORT's intra-op pool; ORT's
inter-op pool is 1 and execution sequential) and restored afterwards: a latency without its
thread count is not comparable to anything.
"""

from __future__ import annotations

import math
import os
import platform
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter
from typing import Any

import numpy as np
import torch

from audioprune.extras import require

__all__ = ["Timing", "cpu_model", "default_threads", "eager_latency", "ort_latency", "ort_session",
           "time_call", "torch_threads"]


@dataclass(frozen=True)
class Timing:
    """How many calls to make: `repeats=None` adapts N to `budget_s` (see the module doc)."""

    repeats: int | None = None
    warmup: int = 3
    budget_s: float = 0.25
    min_repeats: int = 5
    max_repeats: int = 200

    def __post_init__(self) -> None:
        if self.repeats is not None and self.repeats < 1:
            raise ValueError(f"repeats must be >= 1, got {self.repeats}")
        if self.warmup < 1:
            raise ValueError(f"warmup must be >= 1 (the first call is never timed), got "
                             f"{self.warmup}")
        if not 1 <= self.min_repeats <= self.max_repeats:
            raise ValueError("need 1 <= min_repeats <= max_repeats")


def cpu_model() -> str:
    """The CPU's model name (Linux's /proc/cpuinfo, else what `platform` knows): a latency means
    nothing without the machine, and two CPUs' kernels round differently, so the same seed
    trains to other weights on another CPU."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def default_threads() -> int:
    """torch's intra-op thread count (OMP_NUM_THREADS or the core count), at most the cores."""
    return max(1, min(torch.get_num_threads(), os.cpu_count() or 1))


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """Run the block with `threads` intra-op threads, then restore the previous setting."""
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def time_call(fn: Callable[[], Any], timing: Timing = Timing()) -> dict[str, float | int]:
    """Warm `fn` up, time it N times; {"median", "p10", "p90"} in ms, "repeats", "warmup".

    Warm-up makes `timing.warmup` calls, or fewer (at least one) once they have taken
    `budget_s`: a model that needs seconds per call is warm after one.
    """
    last, spent, warm = 0.0, 0.0, 0
    while warm < timing.warmup and (warm == 0 or spent < timing.budget_s):
        t0 = perf_counter()
        fn()
        last = perf_counter() - t0
        spent += last
        warm += 1
    n = timing.repeats
    if n is None:
        n = math.ceil(timing.budget_s / max(last, 1e-6))
        n = min(max(n, timing.min_repeats), timing.max_repeats)
    times = np.empty(n)
    for i in range(n):
        t0 = perf_counter()
        fn()
        times[i] = perf_counter() - t0
    ms = times * 1e3
    p10, median, p90 = np.percentile(ms, [10, 50, 90])
    return {"median": round(float(median), 4), "p10": round(float(p10), 4),
            "p90": round(float(p90), 4), "repeats": int(n), "warmup": warm}


@torch.inference_mode()
def eager_latency(fn: Callable[[torch.Tensor], torch.Tensor], example: torch.Tensor,
                  batch_sizes: tuple[int, ...], threads: int,
                  timing: Timing = Timing()) -> dict[str, dict[str, float | int]]:
    """`fn` (a model in eval mode, or its `classify`) on `example` (one item, batch axis 1)
    repeated to each batch size: {"b1": stats, "b32": stats, ...}."""
    out = {}
    with torch_threads(threads):
        for b in batch_sizes:
            x = example.expand(b, *example.shape[1:]).contiguous()
            out[f"b{b}"] = time_call(lambda: fn(x), timing)
    return out


def ort_session(model: bytes | str | os.PathLike[str], threads: int) -> Any:
    """An ONNX Runtime CPU session with `threads` intra-op threads, one inter-op thread."""
    ort = require("onnxruntime", "timing ONNX Runtime")

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3  # errors only
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, sess_options=opts, providers=["CPUExecutionProvider"])


def ort_latency(session: Any, example: np.ndarray, batch_sizes: tuple[int, ...],
                timing: Timing = Timing()) -> dict[str, dict[str, float | int]]:
    """`session` (from `ort_session`, which fixed its threads) on `example` (batch axis 1)
    repeated to each batch size: {"b1": stats, ...}."""
    name = session.get_inputs()[0].name
    out = {}
    for b in batch_sizes:
        x = np.ascontiguousarray(np.broadcast_to(example, (b, *example.shape[1:])),
                                 dtype=np.float32)
        out[f"b{b}"] = time_call(lambda: session.run(None, {name: x}), timing)
    return out
