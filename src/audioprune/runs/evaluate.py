"""Evaluate a run's model on its own test split or on another dataset with the same classes."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from audioprune.errors import UserError
from audioprune.fileio import write_json
from audioprune.runs.data import DataSpec, prepare_data
from audioprune.runs.logs import environment
from audioprune.runs.results import test_metrics
from audioprune.runs.run_dir import (
    CONFIG_JSON,
    load_model,
    read_run_json,
)
from audioprune.train.fit import TrainConfig

log = logging.getLogger("audioprune")


def evaluate_run(run_dir: Path, data: DataSpec | None = None, device: str = "cpu",
                 progress: bool = True) -> tuple[dict[str, Any], Path]:
    """Evaluate a run's model on its own test split (from config.json) or on `data`.

    The model's own front end (sample rate, clip length, standardisation) is always used. The
    result replaces metrics.json when it is the run's own data, else goes to
    eval-<dataset>-<split>.json beside it. Returns (metrics, path written).
    """
    run_dir = Path(run_dir)
    model, info = load_model(run_dir, device)
    own = data is None
    if data is None:
        cfg_path = run_dir / CONFIG_JSON
        if not cfg_path.is_file():
            raise UserError(f"{run_dir} has no {CONFIG_JSON}; pass `dataset` and `data_root`")
        try:
            data = DataSpec(**read_run_json(cfg_path)["data"])
        except (KeyError, TypeError) as exc:
            raise UserError(f"{cfg_path} names no usable data ({exc}); pass `dataset` and "
                            f"`data_root`") from None
    data = DataSpec(**{**data.__dict__, "frontend": model.frontend_cfg.to_dict()})
    bundle = prepare_data(data, progress=progress, training=False)
    if bundle.index.num_classes != model.num_classes:
        raise UserError(f"{run_dir} predicts {model.num_classes} classes but {data.dataset} has "
                        f"{bundle.index.num_classes}; evaluate on a dataset with the same classes")
    if bundle.index.class_names != info["class_names"]:
        log.warning("class names differ from the run's (%s...); scoring by class index",
                    ", ".join(info["class_names"][:3]))
    cfg = TrainConfig(device=device, progress=progress)
    metrics = test_metrics(model, bundle, cfg)
    metrics["environment"] = environment()
    metrics["data_options"] = data.options
    if own:
        old = read_run_json(run_dir / "metrics.json") if (run_dir / "metrics.json").is_file() else {}
        keep = {k: old[k] for k in ("train_seconds", "epochs_run", "best_epoch", "val", "history",
                                    "parent", "before_finetune", "pruning", "reduction",
                                    "distill") if k in old}
        metrics = {**metrics, **keep}
        path = run_dir / "metrics.json"
    else:
        # one plain file name inside the run directory, whatever the split is called
        name = re.sub(r"[^A-Za-z0-9._-]+", "-", f"{data.dataset}-{bundle.index.split_name}")
        path = run_dir / f"eval-{name.strip('.')}.json"
    write_json(path, metrics)
    return metrics, path
