"""What a run's metrics.json holds: the test split's metrics and the model's costs, and the
headline block one run quotes of another (a pruned model's parent, a student's teacher)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from audioprune.fileio import read_json
from audioprune.measure.counting import count_macs, count_params, size_bytes
from audioprune.models.base import AudioClassifier
from audioprune.runs.data import DataBundle
from audioprune.runs.run_dir import (
    METRICS_JSON,
)
from audioprune.train.distributed import DistContext
from audioprune.train.fit import TrainConfig, evaluate


def cost_metrics(model: AudioClassifier) -> dict[str, Any]:
    """params, MACs per example (body; front end separately) and fp32 size: the cost half of
    every metrics.json."""
    macs = count_macs(model)
    return {"params": count_params(model), "macs": macs["model"], "macs_frontend": macs["frontend"],
            "size_bytes": size_bytes(model)}


def test_metrics(model: AudioClassifier, bundle: DataBundle, cfg: TrainConfig,
                 ctx: DistContext = DistContext()) -> dict[str, Any]:
    """metrics.json content: task, accuracy|mAP (+ the rest) on the test split, and the costs."""
    m = evaluate(model, bundle.test, cfg, ctx, "testing")
    return {"task": bundle.index.task, **m, **cost_metrics(model),
            "dataset": bundle.index.name, "split": bundle.index.split_name,
            **({"fold": bundle.index.fold[0], "folds": bundle.index.fold[1]}
               if bundle.index.fold else {}),
            "num_classes": bundle.index.num_classes, "class_names": bundle.index.class_names,
            "data_files": sum(len(v) for v in bundle.index.splits.values()),
            **({"missing_files": list(bundle.index.missing)} if bundle.index.missing else {}),
            **({"untrained_classes": bundle.untrained} if bundle.untrained else {}),
            "data_list_sha256": bundle.data_list_sha256}


def headline_block(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The headline numbers of a metrics.json (metric, examples, costs), as other runs quote them."""
    keys = ("accuracy", "uar", "mAP", "macro_f1", "num_examples", "params", "macs", "size_bytes")
    return {k: metrics[k] for k in keys if k in metrics}


def source_run_block(run: Path, model: AudioClassifier, bundle: DataBundle, cfg: TrainConfig,
                     who: str) -> dict[str, Any]:
    """The headline numbers of the run a model was derived from (a pruned model's parent, a
    student's teacher) on the derived run's test split: taken from its metrics.json when that
    was measured on the same split, else evaluated here (`who` says by what). Its
    `train_seconds` travels along, so the total compute stays known if the run is deleted."""
    path = Path(run) / METRICS_JSON
    saved = read_json(path) if path.is_file() else {}
    same = (saved.get("dataset") == bundle.index.name
            and saved.get("split") == bundle.index.split_name
            and saved.get("num_examples") == len(bundle.test.clips))
    metrics = saved if same else test_metrics(model, bundle, cfg)
    block = headline_block(metrics)
    if same and saved.get("train_seconds") is not None:
        block["train_seconds"] = saved["train_seconds"]
    block["source"] = str(path) if same else f"evaluated by {who} on this test split"
    return {"run": str(Path(run).resolve()), "arch": model.arch_name, **block,
            "dataset": bundle.index.name, "split": bundle.index.split_name}
