"""The training loop: Adam, cosine or step schedule, early stopping on validation, best weights
kept, a resumable checkpoint every epoch, DDP when run under torchrun.

Every epoch re-seeds the global RNG from (seed, epoch, rank), and data order/crops derive from
(seed, epoch, index): so a resumed run continues exactly as an uninterrupted one would.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader
from tqdm import tqdm

from audioprune.audio.augment import mixup
from audioprune.data.loader import ClipDataset, ShardedShuffleSampler
from audioprune.errors import TrainingDiverged, UserError
from audioprune.fileio import write_tensors
from audioprune.train.checkpoint import MODEL_WEIGHTS, load_checkpoint, model_state, save_checkpoint
from audioprune.train.distributed import (
    DistContext,
    barrier,
    broadcast_float,
    gather_objects,
    sum_over_ranks,
)
from audioprune.train.metrics import headline, multi_label_metrics, single_label_metrics

log = logging.getLogger("audioprune.train")

# loss(logits, targets, example_indices) -> scalar; targets are soft (float) after mixup
LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass
class TrainConfig:
    epochs: int = 30
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.0
    schedule: str = "cosine"  # cosine | step | none
    step_size: int = 10
    gamma: float = 0.1
    patience: int = 0  # stop after this many epochs without validation gain; 0 = never
    mixup: float = 0.0  # Beta(alpha, alpha); 0 disables
    seed: int = 0
    device: str = "cpu"
    num_workers: int = 0
    eval_batch_size: int = 64
    progress: bool = True
    # transfer learning: start from a run's weights (train --init), keep some layers fixed
    # (module names or glob patterns), and train the body at lr * body_lr_scale (the classifier,
    # new or not, at lr)
    init: str | None = None
    freeze: list[str] | None = None
    body_lr_scale: float = 1.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def validate(self) -> "TrainConfig":
        """A UserError naming the first setting that cannot work (before any data is read)."""
        def need(ok: bool, attr: str, rule: str) -> None:
            if not ok:
                raise UserError(f"`{attr}` {rule}, got {getattr(self, attr)!r}")

        def number(v: Any) -> bool:
            return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

        def count(v: Any) -> bool:
            return isinstance(v, int) and not isinstance(v, bool)

        need(count(self.epochs) and self.epochs >= 0, "epochs", "must be >= 0")
        need(count(self.batch_size) and self.batch_size >= 1, "batch_size", "must be at least 1")
        need(count(self.eval_batch_size) and self.eval_batch_size >= 1, "eval_batch_size",
             "must be at least 1")
        need(number(self.lr) and self.lr > 0, "lr", "must be a positive number")
        need(number(self.weight_decay) and self.weight_decay >= 0, "weight_decay", "must be >= 0")
        need(number(self.mixup) and self.mixup >= 0, "mixup", "must be >= 0 (0 = off)")
        need(count(self.num_workers) and self.num_workers >= 0, "num_workers", "must be >= 0")
        need(count(self.patience) and self.patience >= 0, "patience", "must be >= 0 (0 = off)")
        need(count(self.step_size) and self.step_size >= 1, "step_size", "must be at least 1")
        need(number(self.gamma) and self.gamma > 0, "gamma", "must be positive")
        need(self.schedule in ("cosine", "step", "none"), "schedule", "must be cosine, step or none")
        need(number(self.body_lr_scale) and self.body_lr_scale > 0, "body_lr_scale",
             "must be a positive number")
        need(self.freeze is None or (isinstance(self.freeze, list) and
                                     all(isinstance(p, str) for p in self.freeze)),
             "freeze", "must be a list of layer names or patterns")
        try:
            device = torch.device(self.device)
        except (RuntimeError, ValueError, TypeError):
            raise UserError(f"`device` {self.device!r} is not a device; use cpu, cuda or cuda:N") from None
        if device.type == "cuda" and not torch.cuda.is_available():
            raise UserError(f"`device` {self.device}: no CUDA GPU is visible to this torch "
                            f"({torch.__version__}); use `device` cpu")
        if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
            raise UserError(f"`device` {self.device}: only {torch.cuda.device_count()} GPU(s) visible")
        if device.type == "mps" and not torch.backends.mps.is_available():
            raise UserError(f"`device` {self.device}: MPS is not available here; use `device` cpu")
        if device.type not in ("cpu", "cuda", "mps"):
            raise UserError(f"`device` {self.device}: audioprune trains on cpu, cuda or mps")
        return self


def default_loss(task: str) -> LossFn:
    if task == "single-label":
        return lambda logits, y, idx: F.cross_entropy(logits, y)
    return lambda logits, y, idx: F.binary_cross_entropy_with_logits(logits, y)


def _seed_epoch(seed: int, epoch: int, rank: int) -> None:
    torch.manual_seed(seed * 1_000_003 + epoch * 101 + rank)


def make_scheduler(opt: torch.optim.Optimizer, cfg: TrainConfig) -> Any:
    if cfg.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(cfg.epochs, 1))
    if cfg.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=cfg.step_size, gamma=cfg.gamma)
    if cfg.schedule == "none":
        return None
    raise ValueError(f"unknown schedule {cfg.schedule!r}; use cosine, step or none")


@torch.no_grad()
def predict(model: nn.Module, dataset: ClipDataset, batch_size: int, device: str,
            ctx: DistContext = DistContext(), progress: bool = False,
            desc: str = "evaluating") -> np.ndarray:
    """Logits for every clip of `dataset`, in order; sharded across ranks and gathered."""
    model.eval()
    bs = 1 if dataset.mode == "full" else batch_size
    sampler = ShardedShuffleSampler(len(dataset), 0, ctx.rank, ctx.world, shuffle=False)
    indices = list(sampler)
    loader = DataLoader(torch.utils.data.Subset(dataset, indices), batch_size=bs, shuffle=False)
    outs = []
    for wave, _ in tqdm(loader, desc=desc, leave=False, disable=not progress, unit="batch"):
        outs.append(model(wave.to(device)).float().cpu())
    logits = torch.cat(outs).numpy() if outs else np.zeros((0, dataset.num_classes), np.float32)
    if not ctx.enabled:
        return logits
    merged = np.zeros((len(dataset), dataset.num_classes), np.float32)
    for idx, part in gather_objects(ctx, (indices, logits)):  # type: ignore[misc]
        merged[idx] = part
    return merged


def score(dataset: ClipDataset, logits: np.ndarray) -> dict[str, Any]:
    if dataset.task == "single-label":
        targets = np.array([c.targets[0] for c in dataset.clips])
        groups = [c.group for c in dataset.clips]
        return single_label_metrics(logits, targets, dataset.num_classes, groups)
    targets = np.stack([dataset.target(c).numpy() for c in dataset.clips])
    return multi_label_metrics(logits, targets)


def evaluate(model: nn.Module, dataset: ClipDataset, cfg: TrainConfig,
             ctx: DistContext = DistContext(), desc: str = "evaluating") -> dict[str, Any]:
    logits = predict(model, dataset, cfg.eval_batch_size, cfg.device, ctx, cfg.progress, desc)
    return score(dataset, logits)


class _Indexed(torch.utils.data.Dataset):
    """Adds the example index to each item, for losses that look things up (cached KD logits)."""

    def __init__(self, ds: ClipDataset) -> None:
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        wave, y = self.ds[i]
        return wave, y, i


def param_groups(model: nn.Module, cfg: TrainConfig) -> list[dict[str, Any]]:
    """The trainable parameters: the classifier (`model.classifier_name`) at lr, the rest at
    lr * body_lr_scale; frozen parameters (requires_grad False) are left out. Without a body
    scale, one group in parameter order (as before transfer learning existed: checkpoints of
    older runs resume into it)."""
    if cfg.body_lr_scale == 1.0:
        return [{"params": [p for p in model.parameters() if p.requires_grad]}]
    head_name = getattr(model, "classifier_name", None)
    head = getattr(model, head_name, None) if head_name else None
    head_params = {id(p) for p in head.parameters()} if isinstance(head, nn.Module) else set()
    body = [p for p in model.parameters() if p.requires_grad and id(p) not in head_params]
    heads = [p for p in model.parameters() if p.requires_grad and id(p) in head_params]
    groups = [{"params": body, "lr": cfg.lr * cfg.body_lr_scale}]
    if heads:
        groups.append({"params": heads, "lr": cfg.lr})
    return [g for g in groups if g["params"]] or [{"params": [], "lr": cfg.lr}]


def keep_frozen_norms(model: nn.Module) -> None:
    """Batch norms whose parameters are all frozen keep their running statistics too (eval
    mode while the rest trains): a frozen layer is frozen."""
    for m in model.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            params = list(m.parameters(recurse=False))
            if params and not any(p.requires_grad for p in params):
                m.eval()


def fit(model: nn.Module, train: ClipDataset, val: ClipDataset | None, cfg: TrainConfig,
        run_dir: Path, resume: bool = False, loss_fn: LossFn | None = None,
        ctx: DistContext = DistContext()) -> dict[str, Any]:
    """Train `model` in place; leave the best-validation weights in it and in run_dir/model.safetensors.

    Returns a summary: epochs run, best epoch and validation metrics, history, wall time.
    """
    device = cfg.validate().device
    model.to(device)
    loss_fn = loss_fn or default_loss(train.task)
    net: nn.Module = model
    if ctx.enabled:
        net = nn.parallel.DistributedDataParallel(
            nn.SyncBatchNorm.convert_sync_batchnorm(model) if device.startswith("cuda") else model,
            device_ids=[ctx.local_rank] if device.startswith("cuda") else None)
    opt = torch.optim.Adam(param_groups(model, cfg), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = make_scheduler(opt, cfg)
    if cfg.batch_size % ctx.world:
        raise UserError(f"`batch_size` {cfg.batch_size} must divide by the {ctx.world} processes")
    local_bs = cfg.batch_size // ctx.world
    sampler = ShardedShuffleSampler(len(train), cfg.seed, ctx.rank, ctx.world)
    loader = DataLoader(_Indexed(train), batch_size=local_bs, sampler=sampler,
                        num_workers=cfg.num_workers, drop_last=False,
                        persistent_workers=cfg.num_workers > 0)

    state: dict[str, Any] = {"epoch": 0, "best": -math.inf, "best_epoch": -1, "bad_epochs": 0,
                             "history": [], "train_seconds": 0.0, "best_val": None}
    if resume:
        saved = load_checkpoint(run_dir, model, opt, sched)
        state.update({k: saved[k] for k in state if k in saved})
        log.info("resumed from epoch %d", state["epoch"])

    for epoch in range(state["epoch"], cfg.epochs):
        if cfg.patience and state["bad_epochs"] >= cfg.patience:
            break
        t0 = time.perf_counter()
        _seed_epoch(cfg.seed, epoch, ctx.rank)
        sampler.set_epoch(epoch)
        train.set_epoch(epoch)
        net.train()
        keep_frozen_norms(model)
        total, count = 0.0, 0
        bar = tqdm(loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False, unit="batch",
                   disable=not (cfg.progress and ctx.is_main))
        for wave, y, idx in bar:
            wave, y = wave.to(device), y.to(device)
            if cfg.mixup > 0:
                if y.dtype == torch.long:
                    y = F.one_hot(y, train.num_classes).float()
                wave, y = mixup(wave, y, cfg.mixup)
            loss = loss_fn(net(wave), y, idx)
            if not torch.isfinite(loss):
                raise TrainingDiverged(f"non-finite loss at epoch {epoch + 1}; lower `lr` (the "
                                       f"input features are finite: bad audio is skipped on loading)")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(wave)
            count += len(wave)
            bar.set_postfix(loss=f"{total / max(count, 1):.4f}")
        if sched is not None:
            sched.step()
        total, count = sum_over_ranks(ctx, total, count)
        train_loss = total / max(count, 1)
        val_metrics = evaluate(model, val, cfg, ctx, "validating") if val is not None and len(val) else None
        value = headline(val_metrics)[1] if val_metrics else -train_loss
        value = broadcast_float(ctx, value)
        improved = value > state["best"]
        if improved:
            state.update(best=value, best_epoch=epoch, bad_epochs=0,
                         best_val={k: v for k, v in (val_metrics or {}).items()
                                   if k != "confusion_matrix"})
            if ctx.is_main:
                write_tensors(run_dir / MODEL_WEIGHTS, model_state(model))
        else:
            state["bad_epochs"] += 1
        state["train_seconds"] += time.perf_counter() - t0
        entry = {"epoch": epoch + 1, "train_loss": round(train_loss, 6),
                 "lr": opt.param_groups[0]["lr"], "seconds": round(time.perf_counter() - t0, 2)}
        if val_metrics:
            name, number = headline(val_metrics)
            entry[f"val_{name}"] = round(number, 6)
        state["history"].append(entry)
        state["epoch"] = epoch + 1
        if ctx.is_main:
            save_checkpoint(run_dir, model, opt, sched, state)
            log.info("epoch %d/%d  loss %.4f  %s  %.1fs%s", epoch + 1, cfg.epochs, train_loss,
                     " ".join(f"{k} {v:.4f}" for k, v in entry.items() if k.startswith("val_")),
                     entry["seconds"], "  *best" if improved else "")
        barrier(ctx)
    return {k: state[k] for k in ("epoch", "best_epoch", "best_val", "history", "train_seconds")}
