"""The baseline a pruning method must beat: its pruned architecture trained from scratch.

"Rethinking the value of network pruning" (Liu et al., ICLR 2019): if the small architecture a
method finds trains as well from a fresh initialisation, the method bought an architecture, not
inherited weights. ``scratch_run(pruned, out, epochs)`` builds the pruned run's architecture -
the same model, its pruned widths, its front end (a coarsened one too) and standardisation -
with new seeded weights and trains it for `epochs` epochs at the parent's learning rate (not
the fine-tune's tenth: nothing is inherited), with labels only or (`distill`) with knowledge
distillation from the pruned run's unpruned parent. The run is an ordinary train or distill
run (audioprune.runs.train / .distill), so reports compare it like any other method.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from audioprune.errors import UserError
from audioprune.runs.data import DataSpec
from audioprune.runs.distill import distill_run
from audioprune.runs.parents import parent_config, parent_data_spec
from audioprune.runs.run_dir import CONFIG_JSON, read_model_info, read_run_json, write_metrics
from audioprune.runs.train import train_run
from audioprune.train.fit import TrainConfig

__all__ = ["scratch_config", "scratch_run"]


def scratch_config(pruned: Path, epochs: int, **overrides: Any) -> TrainConfig:
    """The parent's training settings at its own learning rate, for `epochs` epochs."""
    config = read_run_json(Path(pruned) / CONFIG_JSON)
    parent = Path(config["parent"])
    saved = dict(parent_config(parent).get("train") or {})
    cfg = TrainConfig(**{k: v for k, v in saved.items() if k in TrainConfig.__dataclass_fields__})
    cfg.epochs = int(epochs)
    cfg.init = None
    for key, value in overrides.items():
        if value is not None:
            setattr(cfg, key, value)
    return cfg


def scratch_run(pruned: Path, out: Path, train: TrainConfig, data: DataSpec | None = None,
                distill: bool = False, resume: bool = False) -> dict[str, Any]:
    """Train prune run `pruned`'s architecture from scratch into `out` (see the module doc);
    returns its metrics.json, which names the pruned run it copies (`scratch_of`)."""
    pruned = Path(pruned)
    config_path = pruned / CONFIG_JSON
    if not config_path.is_file() or read_run_json(config_path).get("command") != "prune":
        raise UserError(f"`pruned` {pruned} is not a prune run (its {CONFIG_JSON} says so)")
    info = read_model_info(pruned)
    parent = Path(read_run_json(config_path)["parent"])
    data = data or parent_data_spec(parent)
    # the pruned model's front end, standardisation included: the same input as the method's
    data = DataSpec(**{**data.__dict__, "frontend": dict(info["frontend"])})
    kwargs = {**dict(info.get("kwargs") or {}), "widths": dict(info["widths"])}
    if distill:
        metrics = distill_run(parent, info["arch"], kwargs, data, train, Path(out), resume=resume)
    else:
        metrics = train_run(info["arch"], kwargs, data, train, Path(out), resume=resume)
    metrics["scratch_of"] = {"run": str(pruned.resolve()), "widths": info["widths"],
                             "distill": distill}
    write_metrics(out, metrics)
    return metrics
