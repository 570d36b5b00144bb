"""One training run: dataset -> cached audio -> model -> fit -> test metrics -> run directory.

The CLI, the demo and the recipes all go through `train_run`, so a run directory always looks the
same (model.safetensors, model.json, metrics.json, config.json, log.txt, checkpoint/)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from audioprune import __version__
from audioprune.errors import UserError
from audioprune.fileio import read_tensors, remove_stale_temps, write_json
from audioprune.models.base import AudioClassifier
from audioprune.models.registry import check_model_args, create_model
from audioprune.runs.data import DataSpec, prepare_data, standardised_frontend
from audioprune.runs.logs import environment, run_log
from audioprune.runs.results import test_metrics
from audioprune.runs.run_dir import (
    CONFIG_JSON,
    MODEL_WEIGHTS,
    load_model,
    read_model_info,
    read_run_json,
    save_model,
    write_metrics,
)
from audioprune.runs.transfer import freeze_layers, init_frontend, init_model
from audioprune.train.checkpoint import CKPT_DIR
from audioprune.train.distributed import DistContext, barrier
from audioprune.train.fit import TrainConfig, fit

log = logging.getLogger("audioprune")


def train_run(model_name: str, model_kwargs: dict[str, Any], data: DataSpec, cfg: TrainConfig,
              out: Path, resume: bool = False, ctx: DistContext = DistContext()) -> dict[str, Any]:
    """Train `model_name` on `data` into run directory `out` and return its metrics.json."""
    out = Path(out)
    if cfg.validate().epochs < 1:
        raise UserError(f"`epochs` must be at least 1 to train, got {cfg.epochs}")
    if cfg.init:
        info = read_model_info(cfg.init)  # a clear error when it is not a run
        if model_name and model_name != info["arch"]:
            raise UserError(f"`init` {cfg.init} holds a {info['arch']}, not a {model_name}; "
                            f"drop `model` (it comes from the run)")
        model_name, model_kwargs = info["arch"], dict(info.get("kwargs") or {})
    check_model_args(model_name, model_kwargs)  # bad --model, --width, --frontend fail here,
    data.frontend_config()  # before anything is written
    config = {"command": "train", "model": model_name, "model_kwargs": model_kwargs,
              "data": data.__dict__, "train": cfg.to_dict(), "environment": environment()}
    if resume:
        if not (out / CONFIG_JSON).is_file():
            raise UserError(f"`resume` {out}: no {CONFIG_JSON} there; is it a training run?")
        if ctx.is_main:  # half-written temp files of the killed process
            for tmp in remove_stale_temps(out):
                log.info("removed %s, left by an interrupted write", tmp)
    elif (out / CONFIG_JSON).exists():
        if (out / MODEL_WEIGHTS).exists() or (out / CKPT_DIR).exists():
            raise UserError(f"{out} already holds a run; choose another `out`, or continue it "
                            f"with `resume` {out}")
        log.info("%s: a run that stopped before its first epoch; starting it again", out)
    if ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / CONFIG_JSON, config)
    with run_log(out, ctx.is_main):
        return _train(model_name, model_kwargs, data, cfg, out, resume, ctx)


def _train(model_name: str, model_kwargs: dict[str, Any], data: DataSpec, cfg: TrainConfig,
           out: Path, resume: bool, ctx: DistContext) -> dict[str, Any]:
    init_info = read_model_info(cfg.init) if cfg.init else None
    if init_info is not None:  # the pretrained model keeps its front end (clip length aside)
        data = DataSpec(**{**data.__dict__, "frontend": init_frontend(init_info, data, cfg.init)})
    bundle = prepare_data(data, cfg.seed, progress=cfg.progress and ctx.is_main)
    log.info("%s", bundle.index.describe())
    log.info("data list sha256 %s", bundle.data_list_sha256)
    fe = standardised_frontend(data, bundle, cfg.seed)
    torch.manual_seed(cfg.seed)
    init_block = None
    if init_info is not None:
        model, init_block = init_model(Path(cfg.init), init_info, bundle.index.num_classes, fe)
    else:
        try:
            model = create_model(model_name, bundle.index.num_classes, frontend=fe, **model_kwargs)
        except ValueError as exc:  # e.g. --model-arg dropout=2
            raise UserError(f"`model` {model_name} with {model_kwargs or 'no options'}: {exc}") from None
    if cfg.freeze:
        frozen = freeze_layers(model, cfg.freeze)
        log.info("frozen: %s", ", ".join(frozen))
        if init_block is not None:
            init_block["frozen"] = frozen
    summary = fit(model, bundle.train, bundle.val, cfg, out, resume=resume, ctx=ctx)
    extra = {"dataset": data.dataset}
    if ctx.is_main:  # the best epoch's weights become the run's model
        save_model(out, _best(model, out), bundle.index.class_names, bundle.index.task, extra)
    barrier(ctx)  # the other ranks read what rank 0 just wrote
    best, _ = load_model(out, cfg.device)
    metrics = test_metrics(best, bundle, cfg, ctx)
    metrics.update({"train_seconds": round(summary["train_seconds"], 2), "epochs_run": summary["epoch"],
                    "best_epoch": summary["best_epoch"] + 1, "val": summary["best_val"],
                    "history": summary["history"], "environment": environment(),
                    "data_options": data.options})
    if init_block is not None:
        metrics["init"] = {**init_block, "body_lr_scale": cfg.body_lr_scale}
    if ctx.is_main:
        write_metrics(out, metrics)
    return metrics


def _best(model: AudioClassifier, out: Path) -> AudioClassifier:
    """Load the best-epoch weights fit() wrote into `model` before model.json is written."""
    model.load_state_dict(read_tensors(out / MODEL_WEIGHTS), strict=False)
    return model


def resume_run(out: Path, ctx: DistContext = DistContext(), **overrides: Any) -> dict[str, Any]:
    """Continue a stopped `train_run` from its last epoch checkpoint with its saved settings."""
    cfg_path = Path(out) / CONFIG_JSON
    if not cfg_path.is_file():
        raise UserError(f"`resume` {out}: {cfg_path} not found; is it a training run directory?")
    saved = read_run_json(cfg_path)
    if saved.get("command", "train") != "train":
        raise UserError(f"`resume` {out}: it is a {saved.get('command')!r} run; continue it with "
                        f"`audioprune {saved.get('command')} `resume` {out}`")
    try:
        train_cfg = TrainConfig(**{**saved["train"], **overrides})
        data = DataSpec(**saved["data"])
        model, model_kwargs = saved["model"], dict(saved["model_kwargs"])
    except (KeyError, TypeError) as exc:
        raise UserError(f"`resume` {out}: {cfg_path} lacks or has unknown settings ({exc}); it was "
                        f"written by another audioprune version (this is {__version__})") from None
    return train_run(model, model_kwargs, data, train_cfg, Path(out), resume=True, ctx=ctx)
