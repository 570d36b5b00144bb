"""`audioprune demo`: the main job, end to end on data that needs no download.

For now (before the pruning and reporting stages land) it trains a small CNN on the built-in
synthetic dataset, evaluates it and prints the run's accuracy and costs.
"""

from __future__ import annotations

import time
from pathlib import Path

from audioprune.train.experiment import DataSpec, setup_logging, train_run
from audioprune.train.fit import TrainConfig


def run_demo(out: Path, dataset: str = "synthetic", data_root: str | None = None,
             epochs: int | None = None, progress: bool = True) -> dict:
    out = Path(out)
    run = out / f"{dataset}-dcase21net"
    setup_logging()
    spec = DataSpec(dataset=dataset, data_root=data_root,
                    frontend={"n_mels": 40} if dataset == "synthetic" else {})
    cfg = TrainConfig(epochs=epochs or 12, batch_size=32, lr=3e-3, seed=0, progress=progress)
    t0 = time.perf_counter()
    if (run / "config.json").exists():
        from audioprune.train.experiment import resume_run
        metrics = resume_run(run, progress=progress, epochs=cfg.epochs)
    else:
        metrics = train_run("dcase21net", {}, spec, cfg, run)
    print()
    print(f"{'model':12s} {'accuracy':>9s} {'params':>9s} {'MACs':>12s} {'size (B)':>10s}")
    print(f"{'dcase21net':12s} {metrics['accuracy']:9.4f} {metrics['params']:9,d} "
          f"{metrics['macs']:12,d} {metrics['size_bytes']:10,d}")
    print(f"\nrun directory: {run}  ({time.perf_counter() - t0:.0f} s)")
    return metrics
