"""`audioprune distill`: a fresh student trained with a teacher run's knowledge, into a run directory.

``distill_run(teacher, model_name, model_kwargs, data, train, out)`` mirrors ``train_run``: the
run directory is a normal run (model.safetensors, model.json, config.json, log.txt, checkpoint/;
metrics.json with the same keys as a trained run) plus the ``distill`` block (runs/kd.py).

Data default to the teacher's (its config.json: dataset, data root, split options, front-end
overrides); the student's log-mel standardisation is estimated from its training split, as
``train`` does. The teacher is loaded and its logits cached BEFORE the student is seeded and
built, so a student distilled with seed s starts from the same weights and sees the same batches
in the same order as ``audioprune train`` with seed s: KD-versus-labels comparisons are paired.

Resumable like ``train_run``: ``resume=True`` (or ``resume_distill(out)``) continues from the
last epoch checkpoint with the saved settings; the cached teacher logits are found again.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from audioprune.distill.config import DistillConfig
from audioprune.errors import UserError
from audioprune.fileio import read_json, read_tensors, remove_stale_temps, write_json
from audioprune.models.registry import check_model_args, create_model
from audioprune.runs.data import DataSpec, prepare_data, standardised_frontend
from audioprune.runs.kd import Distiller
from audioprune.runs.logs import environment, run_log
from audioprune.runs.results import test_metrics
from audioprune.runs.run_dir import (
    CONFIG_JSON,
    MODEL_WEIGHTS,
    load_model,
    read_model_info,
    save_model,
    write_metrics,
)
from audioprune.train.checkpoint import CKPT_DIR
from audioprune.train.distributed import DistContext, barrier
from audioprune.train.fit import TrainConfig

log = logging.getLogger("audioprune")


def _check_out(out: Path, resume: bool) -> None:
    """As train_run: --resume needs a distill run; a new run needs a fresh --out (or one that
    stopped before its first epoch, which simply starts again)."""
    if resume:
        if not (out / CONFIG_JSON).is_file():
            raise UserError(f"`resume` {out}: no {CONFIG_JSON} there; is it a distill run?")
        command = read_json(out / CONFIG_JSON).get("command")
        if command != "distill":
            raise UserError(f"`resume` {out}: it is a {command!r} run, not a distill run")
    elif (out / CONFIG_JSON).exists():
        if (out / MODEL_WEIGHTS).exists() or (out / CKPT_DIR).exists():
            raise UserError(f"{out} already holds a run; choose another `out`, or continue it "
                            f"with `resume` {out}")
        log.info("%s: a run that stopped before its first epoch; starting it again", out)


def distill_run(teacher: Path, model_name: str, model_kwargs: dict[str, Any],
                data: DataSpec | None, train: TrainConfig, out: Path, loss: str | None = None,
                temperature: float | None = None, alpha: float | None = None,
                teacher_mode: str = "auto", resume: bool = False,
                ctx: DistContext = DistContext()) -> dict[str, Any]:
    """Train a fresh `model_name` student from teacher run `teacher` into `out`; return its
    metrics.json. `loss` None = the task's default recipe (hinton | bce-soft); `temperature` /
    `alpha` None = the recipe's published defaults; `data` None = the teacher's data."""
    from audioprune.runs.parents import parent_data_spec

    teacher, out = Path(teacher), Path(out)
    read_model_info(teacher)  # a clear error when it is not a run directory
    if teacher.resolve() == out.resolve():
        raise UserError("`out` must differ from the teacher run")
    cfg = DistillConfig(str(teacher.resolve()), loss, temperature, alpha, teacher_mode).validate()
    if train.validate().epochs < 1:
        raise UserError(f"`epochs` must be at least 1 to train, got {train.epochs}")
    check_model_args(model_name, model_kwargs)
    data = parent_data_spec(teacher, override=data)
    data.frontend_config()  # a bad --frontend fails before anything is written
    _check_out(out, resume)
    if resume and ctx.is_main:  # half-written temp files of a killed process
        for tmp in remove_stale_temps(out):
            log.info("removed %s, left by an interrupted write", tmp)
    config = {"command": "distill", "teacher": cfg.teacher, "model": model_name,
              "model_kwargs": model_kwargs, "data": data.__dict__, "train": train.to_dict(),
              "distill": cfg.to_dict(), "environment": environment()}
    if ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / CONFIG_JSON, config)
    with run_log(out, ctx.is_main):
        return _distill(cfg, model_name, model_kwargs, data, train, out, resume, ctx)


def _distill(cfg: DistillConfig, model_name: str, model_kwargs: dict[str, Any], data: DataSpec,
             train: TrainConfig, out: Path, resume: bool, ctx: DistContext) -> dict[str, Any]:
    bundle = prepare_data(data, train.seed, progress=train.progress and ctx.is_main)
    log.info("%s", bundle.index.describe())
    log.info("data list sha256 %s", bundle.data_list_sha256)
    fe = standardised_frontend(data, bundle, train.seed)
    kd = Distiller(cfg, data, bundle, train, ctx)
    torch.manual_seed(train.seed)  # as train_run: the same student weights for the same seed
    try:
        model = create_model(model_name, bundle.index.num_classes, frontend=fe, **model_kwargs)
    except ValueError as exc:  # e.g. --model-arg dropout=2
        raise UserError(f"`model` {model_name} with {model_kwargs or 'no options'}: {exc}") from None
    summary = kd.fit(model, bundle.train, bundle.val, train, out, resume=resume, ctx=ctx)
    if ctx.is_main:  # the best epoch's weights become the run's model
        model.load_state_dict(read_tensors(out / MODEL_WEIGHTS), strict=False)
        save_model(out, model, bundle.index.class_names, bundle.index.task,
                   {"dataset": data.dataset, "teacher": cfg.teacher})
    barrier(ctx)
    best, _ = load_model(out, train.device)
    metrics = test_metrics(best, bundle, train, ctx)
    metrics.update({"train_seconds": round(summary["train_seconds"], 2),
                    "epochs_run": summary["epoch"], "best_epoch": summary["best_epoch"] + 1,
                    "val": summary["best_val"], "history": summary["history"],
                    "environment": environment(), "data_options": data.options,
                    "distill": kd.describe(summary["train_seconds"])})
    if ctx.is_main:
        write_metrics(out, metrics)
    return metrics


def resume_distill(out: Path, ctx: DistContext = DistContext(), **overrides: Any) -> dict[str, Any]:
    """Continue a stopped `distill_run` from its last epoch checkpoint with its saved settings;
    `overrides` (None = keep) replace TrainConfig fields, e.g. epochs."""
    out = Path(out)
    _check_out(out, resume=True)
    saved = read_json(out / CONFIG_JSON)
    train = TrainConfig(**{**saved["train"], **{k: v for k, v in overrides.items() if v is not None}})
    d = DistillConfig.from_dict(saved["distill"])
    return distill_run(Path(d.teacher), saved["model"], saved["model_kwargs"],
                       DataSpec(**saved["data"]), train, out, d.loss, d.temperature, d.alpha,
                       d.teacher_mode, resume=True, ctx=ctx)
