"""The run directory contract (DESIGN.md): model.safetensors + model.json + metrics.json + a log.

model.json holds the architecture with per-layer widths, the front-end settings and the class
names: enough to rebuild a pruned model without pickle. Loading never unpickles anything.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from audioprune import __version__
from audioprune.errors import UserError
from audioprune.fileio import read_json, read_tensors, write_json, write_tensors
from audioprune.models.base import AudioClassifier
from audioprune.models.registry import model_config, model_from_config

# fit() leaves the best epoch's weights where a run directory keeps its model
from audioprune.train.checkpoint import MODEL_WEIGHTS, model_state

MODEL_JSON = "model.json"
METRICS_JSON = "metrics.json"
CONFIG_JSON = "config.json"
LOG_FILE = "log.txt"
PROFILE_JSON = "profile.json"  # audioprune profile (runs/profile.py)
FORMAT = "audioprune-model"
FORMAT_VERSION = 1


def save_model(run_dir: str | Path, model: AudioClassifier, class_names: list[str], task: str,
               extra: dict[str, Any] | None = None, weights_name: str = MODEL_WEIGHTS) -> None:
    """Write weights then model.json, each atomically (weights first: a json always has weights)."""
    run_dir = Path(run_dir)
    if len(class_names) != model.num_classes:
        raise ValueError(f"{len(class_names)} class names for a {model.num_classes}-class model")
    write_tensors(run_dir / weights_name, model_state(model), metadata={"format": FORMAT})
    info = {"format": FORMAT, "format_version": FORMAT_VERSION, "audioprune_version": __version__,
            **model_config(model), "class_names": list(class_names), "task": task, **(extra or {})}
    write_json(run_dir / MODEL_JSON, info)


def read_model_info(run_dir: str | Path) -> dict[str, Any]:
    run_dir = Path(run_dir)
    path = run_dir / MODEL_JSON
    if not run_dir.is_dir():
        raise UserError(f"run directory {run_dir} does not exist; pass a directory written by "
                        f"`audioprune train` (or prune/distill)")
    if not path.is_file():
        raise UserError(f"{path} not found: {run_dir} is not an audioprune run directory")
    try:
        info = read_json(path)
    except ValueError as exc:
        raise UserError(f"{path} is not valid JSON ({exc})") from exc
    if info.get("format") != FORMAT or info.get("format_version") != FORMAT_VERSION:
        raise UserError(f"{path}: unsupported model format {info.get('format')!r} version "
                        f"{info.get('format_version')!r}; this audioprune ({__version__}) reads "
                        f"{FORMAT} version {FORMAT_VERSION}")
    return info


def load_model(run_dir: str | Path, device: str | torch.device = "cpu",
               weights_name: str = MODEL_WEIGHTS) -> tuple[AudioClassifier, dict[str, Any]]:
    """Rebuild the model from model.json and load its safetensors weights (no pickle)."""
    run_dir = Path(run_dir)
    info = read_model_info(run_dir)
    weights = run_dir / weights_name
    if not weights.is_file():
        raise UserError(f"{weights} not found; the run may not have finished an epoch yet")
    model = model_from_config(info)
    try:
        state = read_tensors(weights)
    except Exception as exc:
        raise UserError(f"{weights} is not a readable safetensors file ({exc}); audioprune never "
                        f"loads pickled checkpoints") from exc
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith("frontend.")]
    if missing or unexpected:
        raise UserError(f"{weights} does not match {run_dir / MODEL_JSON}: missing {missing[:5]}, "
                        f"unexpected {unexpected[:5]}")
    return model.to(device), info


def fp32_run(run_dir: str | Path, action: str) -> None:
    """A UserError naming the fp32 parent when `run_dir` is an int8 run (`audioprune quantize`
    writes model.int8.onnx and keeps its parent's fp32 weights in model.safetensors only so
    that PyTorch can still read the front end): `action` would silently use those weights."""
    run_dir = Path(run_dir)
    info = read_model_info(run_dir)
    if info.get("precision") != "int8":
        return
    config = run_dir / CONFIG_JSON
    parent = read_run_json(config).get("parent") if config.is_file() else None
    source = f"its fp32 parent {parent}" if parent else "the fp32 run it was quantized from"
    raise UserError(f"{run_dir} is an int8 run ({info.get('onnx', 'model.int8.onnx')} by "
                    f"`audioprune quantize`); {action} needs fp32 weights: {action} {source} "
                    f"instead, and quantize the result")


def read_run_json(path: str | Path) -> dict[str, Any]:
    """A run's JSON file (config.json, metrics.json, ...) as a dict; a UserError naming it when
    it is not readable JSON holding an object (hand-edited, or from another tool)."""
    path = Path(path)
    try:
        obj = read_json(path)
    except (OSError, ValueError) as exc:
        raise UserError(f"{path} is not readable JSON ({exc}); restore it or start a new run") from None
    if not isinstance(obj, dict):
        raise UserError(f"{path} holds a JSON {type(obj).__name__}, not an object; restore it or "
                        f"start a new run")
    return obj


def write_metrics(run_dir: str | Path, metrics: dict[str, Any]) -> None:
    write_json(Path(run_dir) / METRICS_JSON, metrics)


def read_metrics(run_dir: str | Path) -> dict[str, Any]:
    path = Path(run_dir) / METRICS_JSON
    if not path.is_file():
        raise UserError(f"{path} not found; evaluate the run first (`audioprune evaluate {run_dir}`)")
    return read_json(path)
