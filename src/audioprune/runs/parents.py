"""What a derived run (pruned, distilled, quantized) inherits from its parent run: the data it
was trained on and its training settings, as fine-tuning defaults (learning rate / 10)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from audioprune.errors import ArgumentError
from audioprune.runs.data import DataSpec
from audioprune.runs.run_dir import CONFIG_JSON, read_model_info, read_run_json
from audioprune.train.fit import TrainConfig

DEFAULT_FINETUNE_EPOCHS = 10
LR_DIVISOR = 10.0  # fine-tuning starts from trained weights: the parent's rate would undo them


def parent_config(parent: Path) -> dict[str, Any]:
    path = Path(parent) / CONFIG_JSON
    return read_run_json(path) if path.is_file() else {}


def parent_data_spec(parent: Path, override: DataSpec | None = None,
                     options: Mapping[str, Any] | None = None, **fields: Any) -> DataSpec:
    """The parent's DataSpec (from its config.json), with `override` replacing it wholesale or
    `options` / `fields` (e.g. data_root, cache_dir) replacing single entries."""
    read_model_info(parent)  # a clear error when `parent` is not a run directory
    if override is not None:
        return override
    saved = parent_config(parent).get("data")
    if not saved:
        raise ArgumentError(f"{parent} has no {CONFIG_JSON} naming its data; pass `dataset` and "
                            f"`data_root`")
    spec = DataSpec(**saved)
    if options:
        spec.options = {**spec.options, **options}
    for key, value in fields.items():
        if value is not None:
            setattr(spec, key, value)
    return spec


def finetune_config(parent: Path, epochs: int | None = None, **overrides: Any) -> TrainConfig:
    """The parent's TrainConfig with lr / LR_DIVISOR and `epochs` (default 10); explicit
    `overrides` (None = keep) win."""
    saved = dict(parent_config(parent).get("train") or {})
    base = TrainConfig(**{k: v for k, v in saved.items() if k in TrainConfig.__dataclass_fields__})
    base.lr = base.lr / LR_DIVISOR
    base.epochs = DEFAULT_FINETUNE_EPOCHS if epochs is None else int(epochs)
    for key, value in overrides.items():
        if value is not None:
            setattr(base, key, value)
    if base.epochs < 0:
        raise ArgumentError(f"`finetune_epochs` must be >= 0, got {base.epochs}")
    return base
