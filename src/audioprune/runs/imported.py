"""Run directories for models trained elsewhere: `audioprune import panns CHECKPOINT --out RUN`.

The run is a normal run directory (model.safetensors + model.json + metrics.json + config.json),
so evaluate, predict, train --init, prune, distill, profile and report take it like any other.
Its metrics.json holds what was counted here (parameters, MACs per example, size) and where the
weights came from (`source`: the file, its sha256, the variant) - and no accuracy or mAP: nothing
was evaluated (`mAP` is null; the checkpoint's own published figure, when its file name says it,
is quoted under `source.published` as PANNs' number, not ours).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from audioprune.errors import UserError
from audioprune.fileio import file_sha256, write_json
from audioprune.models.panns_checkpoint import PANNS_VARIANTS, load_panns
from audioprune.runs.logs import environment
from audioprune.runs.results import cost_metrics
from audioprune.runs.run_dir import CONFIG_JSON, save_model, write_metrics

__all__ = ["import_panns_run"]


def import_panns_run(checkpoint: str | Path, variant: str, out: str | Path) -> dict[str, Any]:
    """Write run directory `out` holding PANNs checkpoint `checkpoint` as audioprune's `variant`
    (cnn6, cnn10, cnn14, cnn14-16k, cnn14-8k); returns its metrics.json."""
    checkpoint, out = Path(checkpoint), Path(out)
    if (out / CONFIG_JSON).exists() or (out / "metrics.json").exists():
        raise UserError(f"{out} already holds a run; choose another `out`")
    model, class_names = load_panns(checkpoint, variant)
    v = PANNS_VARIANTS[variant]
    task = "multi-label"
    source: dict[str, Any] = {"name": "panns", "variant": variant, "checkpoint": str(checkpoint.resolve()),
                              "sha256": file_sha256(checkpoint), "arch": v.arch}
    published = re.search(r"mAP=(0\.\d+)", checkpoint.name)
    if published:
        source["published"] = {"mAP": float(published.group(1)), "what": "PANNs' AudioSet "
                               "evaluation mAP from the checkpoint's file name; not measured here"}
    extra = {"dataset": "audioset", "source": source}
    out.mkdir(parents=True, exist_ok=True)
    save_model(out, model, class_names, task, extra)
    metrics = {"task": task, "mAP": None, **cost_metrics(model), "dataset": "audioset",
               "split": "imported", "num_classes": model.num_classes, "class_names": class_names,
               "source": source, "train_seconds": 0.0, "environment": environment()}
    write_json(out / CONFIG_JSON, {"command": "import", "model": v.arch, "model_kwargs": {},
                                   "source": source, "environment": environment()})
    write_metrics(out, metrics)
    return metrics
