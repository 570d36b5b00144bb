"""One run's distillation set-up: a teacher run + a loss recipe -> the loss fit() trains with.

Shared by `distill_run` (a fresh student) and `prune_run --distill-from` (a pruned model
fine-tuned with KD), so both record the same `distill` block in metrics.json:

  teacher              the teacher run: path, architecture, accuracy|mAP, params, MACs, size
                       (its own metrics.json when it describes the same test split, else
                       evaluated here on the student's test split)
  loss, formula        the recipe name and its formula; temperature, alpha as used
  teacher_mode         "cached" or "online", and teacher_mode_reason (why; see teacher.py)
  teacher_seconds      wall time spent computing teacher logits (cache build, or the teacher's
                       forward passes during training; ~0 on a cache hit)
  total_seconds        training time + the cache build: the compute that produced the model
  cache                cached mode: the cache file and whether it was a hit
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from audioprune.data.cache import default_cache_dir
from audioprune.data.loader import ClipDataset
from audioprune.distill.config import DistillConfig
from audioprune.distill.losses import resolve_recipe
from audioprune.distill.teacher import (
    CachedTeacher,
    OnlineTeacher,
    TeacherCache,
    cache_key,
    cached_teacher,
    choose_mode,
)
from audioprune.errors import UserError
from audioprune.fileio import file_sha256
from audioprune.models.base import AudioClassifier
from audioprune.runs.data import DataBundle, DataSpec
from audioprune.runs.results import source_run_block
from audioprune.runs.run_dir import MODEL_WEIGHTS, load_model, read_model_info
from audioprune.train.distributed import DistContext
from audioprune.train.fit import TrainConfig, fit

log = logging.getLogger("audioprune")


class Distiller:
    """Loads the teacher, checks it fits the data, picks the loss and the teacher mode."""

    def __init__(self, cfg: DistillConfig, data: DataSpec, bundle: DataBundle, train: TrainConfig,
                 ctx: DistContext = DistContext()) -> None:
        cfg.validate()
        self.cfg = cfg
        run = Path(cfg.teacher)
        self.teacher, info = load_model(run, train.device)
        index = bundle.index
        if self.teacher.num_classes != index.num_classes:
            raise UserError(f"teacher {run} predicts {self.teacher.num_classes} classes but "
                            f"{index.name} has {index.num_classes}; distil from a teacher "
                            f"trained on the same classes")
        if info["class_names"] != index.class_names:
            log.warning("the teacher's class names differ from the data's (%s...); matching "
                        "classes by index", ", ".join(info["class_names"][:3]))
        t_rate, s_rate = self.teacher.frontend_cfg.sample_rate, bundle.frontend.sample_rate
        if t_rate != s_rate:
            raise UserError(f"teacher {run} reads {t_rate} Hz audio but the student's data is "
                            f"loaded at {s_rate} Hz; pass `frontend` sample_rate={t_rate}")
        self.recipe = resolve_recipe(cfg.loss, index.task)
        self.loss = self.recipe.build(cfg.temperature, cfg.alpha)
        self.alpha = self.recipe.alpha if cfg.alpha is None else float(cfg.alpha)
        self.mode, self.reason = choose_mode(cfg.teacher_mode, bundle.train, train.mixup)
        log.info("distillation from %s (%s): loss %s = %s, T=%g, alpha=%g", run, info["arch"],
                 self.recipe.name, self.recipe.formula, self.loss.temperature, self.alpha)
        log.info("teacher mode %s: %s", self.mode, self.reason)
        self.teacher_metrics = source_run_block(run, self.teacher, bundle, train, "distill")
        self.source: CachedTeacher | OnlineTeacher
        if self.mode == "cached":
            key = cache_key(teacher_identity(run), bundle.train, index.name, index.split_name,
                            data.data_root, data.options)
            root = Path(data.cache_dir) if data.cache_dir else default_cache_dir()
            self.source = cached_teacher(self.teacher, TeacherCache(root, key), bundle.train,
                                         train.eval_batch_size, train.device, ctx,
                                         train.progress and ctx.is_main)
        else:
            self.source = OnlineTeacher(self.teacher)

    def loss_fn(self, logits: torch.Tensor, y: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        """fit's loss: the recipe on (student logits, the teacher's logits for idx, targets)."""
        return self.loss(logits, self.source(idx).to(logits.device), y)

    def fit(self, model: AudioClassifier, train: ClipDataset, val: ClipDataset | None,
            cfg: TrainConfig, run_dir: Path, resume: bool = False,
            ctx: DistContext = DistContext(), **hooks: Any) -> dict[str, Any]:
        """audioprune.train.fit.fit with the distillation loss (and the online teacher hooked);
        `hooks` are fit's (before_epoch, best_from, extra_state: progressive pruning)."""
        with self.source.attach(model):
            return fit(model, train, val, cfg, run_dir, resume=resume, loss_fn=self.loss_fn,
                       ctx=ctx, **hooks)

    def describe(self, train_seconds: float) -> dict[str, Any]:
        """The `distill` block of metrics.json. `total_seconds` is the wall time that produced
        the student: training (which includes an online teacher's forward passes) plus the
        cache build of a cached teacher."""
        extra = self.source.seconds if self.mode == "cached" else 0.0
        return {"teacher": self.teacher_metrics, "loss": self.recipe.name,
                "formula": self.recipe.formula, "temperature": self.loss.temperature,
                "alpha": self.alpha, "teacher_mode": self.mode, "teacher_mode_reason": self.reason,
                "teacher_seconds": round(self.source.seconds, 2),
                "total_seconds": round(train_seconds + extra, 2), **self.source.describe()}


def teacher_identity(run: Path) -> dict[str, Any]:
    """What in a teacher run determines its logits: weights hash, architecture, front end."""
    info = read_model_info(run)
    return {"weights_sha256": file_sha256(Path(run) / MODEL_WEIGHTS), "arch": info["arch"],
            "kwargs": info.get("kwargs", {}), "widths": info.get("widths", {}),
            "num_classes": info["num_classes"], "frontend": info["frontend"]}
