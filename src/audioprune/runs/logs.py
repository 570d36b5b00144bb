"""Console and run-directory logging (log.txt), and the software versions a run records."""

from __future__ import annotations

import logging
import platform
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import torch

from audioprune import __version__
from audioprune.measure.latency import cpu_model
from audioprune.runs.run_dir import (
    LOG_FILE,
)


def setup_logging(is_main: bool = True) -> None:
    """Console logging for the CLI (rank 0 only under torchrun)."""
    root = logging.getLogger("audioprune")
    root.setLevel(logging.INFO)
    for h in [h for h in root.handlers if not isinstance(h, logging.FileHandler)]:
        root.removeHandler(h)
    if is_main:
        console = logging.StreamHandler()
        console.setFormatter(logging.Formatter("%(message)s"))
        root.addHandler(console)


@contextmanager
def run_log(run_dir: Path, is_main: bool = True) -> Iterator[None]:
    """Append everything logged under "audioprune" to run_dir/log.txt while the block runs."""
    root = logging.getLogger("audioprune")
    root.setLevel(logging.INFO)
    if not is_main:
        yield
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(run_dir / LOG_FILE)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
        handler.close()


def environment() -> dict[str, str | int]:
    """What a run's numbers depend on besides its code, data and seed: versions, the CPU and the
    thread count (both change floating-point rounding, which training amplifies)."""
    return {"audioprune": __version__, "torch": torch.__version__, "python": platform.python_version(),
            "cpu": cpu_model(), "threads": torch.get_num_threads()}
