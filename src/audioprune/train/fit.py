"""The training loop: Adam, cosine or step schedule, early stopping on validation, best weights
kept, a resumable checkpoint every epoch, DDP when run under torchrun.

Every epoch re-seeds the global RNG from (seed, epoch, rank), and data order/crops derive from
(seed, epoch, index): so a resumed run continues exactly as an uninterrupted one would. The
epoch travels with every index to the DataLoader's workers (persistent workers hold their own
copy of the dataset, which set_epoch in this process would not reach).

Speed options (TrainConfig): `precision` bf16 / fp16 (autocast, a GradScaler for fp16; loss,
metrics, batch-norm statistics and the front end stay fp32: train/precision.py), `channels_last`
(NHWC weights and feature maps) and `compile` (torch.compile of the training forward); on a
GPU batches are copied from pinned memory without blocking. bench/bench_precision.py and
bench/bench_memory_format.py measure what each buys on a machine.

Defaults, from those measurements (2-core AVX512-BF16 CPU, round-robin, ratio to the default's
step time; bench/results/precision.json, memory_format.json): bf16 took 0.77x (dcase21net) and
0.63x (cnn14 x0.25) of fp32's training step - but stays opt-in, since where a CPU or GPU lacks
bf16 units it is slower, and it changes results within the fold interval only
(tests/test_mixed_precision.py). channels_last took 0.93x and 0.80x (0.86-0.96x and
0.81-0.92x in three other runs): it wins on this CPU, yet stays off by default so that a
recipe's runs keep the rounding their earlier runs had (the option is not fingerprinted) and
because on GPUs in fp32 NHWC can be slower (bench/gpu_check.py measures it in bf16, where it
usually pays): turn it on for CPU training. compile took 0.88x and 0.80x, after 60-80 s of
compiling per model on a cold inductor cache (seconds on a warm one; again after every pruning
round): off, it pays only for long runs.
"""

from __future__ import annotations

import logging
import math
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Sampler

from audioprune.audio.augment import mixup
from audioprune.data.loader import BalancedClassSampler, ClipDataset, ShardedShuffleSampler
from audioprune.errors import TrainingDiverged, UserError
from audioprune.fileio import write_tensors
from audioprune.progress import progress_bar
from audioprune.train.checkpoint import MODEL_WEIGHTS, load_checkpoint, model_state, save_checkpoint
from audioprune.train.distributed import (
    DistContext,
    barrier,
    broadcast_float,
    gather_objects,
    sum_over_ranks,
)
from audioprune.train.metrics import headline, multi_label_metrics, single_label_metrics
from audioprune.train.precision import PRECISIONS, autocast, grad_scaler, unsupported

log = logging.getLogger("audioprune.train")

# loss(logits, targets, example_indices) -> scalar; targets are soft (float) after mixup
LossFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]

SAMPLERS = ("shuffle", "balanced")


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
    # speed: autocast precision (fp32 | bf16 | fp16, train/precision.py), NHWC memory layout,
    # torch.compile of the training forward (evaluation stays eager)
    precision: str = "fp32"
    channels_last: bool = False
    compile: bool = False
    # how the training split is drawn: shuffle (a permutation per epoch) or balanced (PANNs'
    # class-balanced draws for long-tailed sets such as AudioSet; data/loader.py)
    sampler: str = "shuffle"

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
        need(self.precision in PRECISIONS, "precision", "must be fp32, bf16 or fp16")
        need(isinstance(self.channels_last, bool), "channels_last", "must be true or false")
        need(isinstance(self.compile, bool), "compile", "must be true or false")
        need(self.sampler in SAMPLERS, "sampler", "must be shuffle or balanced")
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
        why = unsupported(device, self.precision)
        if why:
            raise UserError(f"`precision` {self.precision} on `device` {self.device}: {why}")
        if self.compile and device.type == "cpu" and not any(
                shutil.which(c) for c in ("g++", "c++", "clang++")):
            raise UserError("`compile` on cpu: torch.compile's inductor builds C++ kernels and "
                            "no C++ compiler (g++, c++ or clang++) is on PATH; install one or "
                            "train without `compile`")
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
            desc: str = "evaluating", num_workers: int = 0) -> np.ndarray:
    """Logits (fp32) for every clip of `dataset`, in order; sharded across ranks and gathered.
    `num_workers` DataLoader processes read the clips; on a GPU from pinned memory."""
    model.eval()
    bs = 1 if dataset.mode == "full" else batch_size
    sampler = ShardedShuffleSampler(len(dataset), 0, ctx.rank, ctx.world, shuffle=False)
    indices = list(sampler)
    pin = _pinned(device)
    loader = DataLoader(torch.utils.data.Subset(dataset, indices), batch_size=bs, shuffle=False,
                        num_workers=num_workers, pin_memory=pin)
    outs = []
    for wave, _ in progress_bar(loader, desc=desc, leave=False, enabled=progress, unit="batch"):
        outs.append(model(wave.to(device, non_blocking=pin)).float().cpu())
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
    logits = predict(model, dataset, cfg.eval_batch_size, cfg.device, ctx, cfg.progress, desc,
                     num_workers=cfg.num_workers)
    return score(dataset, logits)


def _pinned(device: str | torch.device) -> bool:
    """Batches go through pinned memory (and non-blocking copies) on CUDA devices only."""
    return torch.device(device).type == "cuda"


class _Indexed(torch.utils.data.Dataset):
    """Adds the example index to each item, for losses that look things up (cached KD logits).
    Items are asked for as (epoch, index) (`_WithEpoch`): the dataset's random crops follow
    the epoch in whichever process reads them."""

    def __init__(self, ds: ClipDataset) -> None:
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, key: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor, int]:
        epoch, i = key
        if self.ds.epoch != epoch:
            self.ds.set_epoch(epoch)
        wave, y = self.ds[i]
        return wave, y, i


class _WithEpoch(Sampler[tuple[int, int]]):
    """A sampler's indices tagged with its epoch. DataLoader workers (persistent ones above
    all) hold a copy of the dataset made when they started; the epoch reaches them this way."""

    def __init__(self, sampler: ShardedShuffleSampler | BalancedClassSampler) -> None:
        self.sampler = sampler

    def __iter__(self) -> Any:
        epoch = self.sampler.epoch
        return ((epoch, i) for i in self.sampler)

    def __len__(self) -> int:
        return len(self.sampler)


def train_sampler(train: ClipDataset, cfg: TrainConfig,
                  ctx: DistContext = DistContext()) -> ShardedShuffleSampler | BalancedClassSampler:
    """The training split's sampler: a seeded shuffle, or PANNs' class-balanced draws."""
    if cfg.sampler == "balanced":
        return BalancedClassSampler([c.targets for c in train.clips], train.num_classes,
                                    cfg.seed, ctx.rank, ctx.world)
    return ShardedShuffleSampler(len(train), cfg.seed, ctx.rank, ctx.world)


def train_step(net: nn.Module, opt: torch.optim.Optimizer, scaler: torch.amp.GradScaler,
               loss_fn: LossFn, wave: torch.Tensor, y: torch.Tensor, idx: torch.Tensor,
               cfg: TrainConfig, epoch: int = 0) -> torch.Tensor:
    """One optimisation step: the forward under `cfg.precision`'s autocast, the loss in fp32
    on fp32 logits (outside autocast), the backward scaled for fp16; returns the detached loss.
    TrainingDiverged when the loss is not finite (`epoch`, counted from 0, names where)."""
    with autocast(cfg.device, cfg.precision):
        logits = net(wave)
    loss = loss_fn(logits.float(), y, idx)
    if not torch.isfinite(loss):
        hint = (", or train in `precision` bf16 or fp32 (fp16 overflows beyond 65504)"
                if cfg.precision == "fp16" else "")
        raise TrainingDiverged(f"non-finite loss at epoch {epoch + 1}; lower `lr`{hint} (the "
                               f"input features are finite: bad audio is skipped on loading)")
    opt.zero_grad(set_to_none=True)
    scaler.scale(loss).backward()
    scaler.step(opt)
    scaler.update()
    return loss.detach()


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


# before_epoch(epoch index) -> True when it changed the model's parameters (pruned it)
BeforeEpoch = Callable[[int], bool]


def fit(model: nn.Module, train: ClipDataset, val: ClipDataset | None, cfg: TrainConfig,
        run_dir: Path, resume: bool = False, loss_fn: LossFn | None = None,
        ctx: DistContext = DistContext(), *, before_epoch: BeforeEpoch | None = None,
        best_from: int = 0, extra_state: Callable[[], dict[str, Any]] | None = None
        ) -> dict[str, Any]:
    """Train `model` in place; leave the best-validation weights in it and in run_dir/model.safetensors.

    Returns a summary: epochs run, best epoch and validation metrics, history, wall time.

    Progressive pruning (audioprune.runs.prune) hooks in here: `before_epoch(epoch)` runs at the
    start of every epoch and returns True when it removed parameters, and the optimizer is then
    rebuilt over the new ones (Adam's moments of the removed filters go with them) while the
    learning-rate schedule goes on where it was; only epochs from `best_from` on can become the
    best (earlier ones have other shapes); `extra_state()` is saved with every checkpoint
    (read back by `checkpoint_extra`), so a resume can rebuild the model's shape first.
    """
    device = cfg.validate().device
    model.to(device)
    _memory_format(model, cfg)
    loss_fn = loss_fn or default_loss(train.task)
    net = _training_net(model, cfg, ctx)
    opt = torch.optim.Adam(param_groups(model, cfg), lr=cfg.lr, weight_decay=cfg.weight_decay)
    sched = make_scheduler(opt, cfg)
    scaler = grad_scaler(device, cfg.precision)
    if cfg.batch_size % ctx.world:
        raise UserError(f"`batch_size` {cfg.batch_size} must divide by the {ctx.world} processes")
    local_bs = cfg.batch_size // ctx.world
    sampler = train_sampler(train, cfg, ctx)
    pin = _pinned(device)
    loader = DataLoader(_Indexed(train), batch_size=local_bs, sampler=_WithEpoch(sampler),
                        num_workers=cfg.num_workers, drop_last=False, pin_memory=pin,
                        persistent_workers=cfg.num_workers > 0)

    state: dict[str, Any] = {"epoch": 0, "best": -math.inf, "best_epoch": -1, "bad_epochs": 0,
                             "history": [], "train_seconds": 0.0, "best_val": None}
    if resume:
        saved = load_checkpoint(run_dir, model, opt, sched)
        state.update({k: saved[k] for k in state if k in saved})
        if scaler.is_enabled() and isinstance(saved.get("grad_scaler"), dict):
            scaler.load_state_dict(saved["grad_scaler"])
        log.info("resumed from epoch %d", state["epoch"])
    if cfg.precision != "fp32" or cfg.channels_last or cfg.compile:
        log.info("training in %s%s%s", cfg.precision, ", channels_last" if cfg.channels_last
                 else "", ", torch.compile" if cfg.compile else "")

    for epoch in range(state["epoch"], cfg.epochs):
        if cfg.patience and state["bad_epochs"] >= cfg.patience and epoch >= best_from:
            break
        t0 = time.perf_counter()
        if before_epoch is not None and before_epoch(epoch):
            if ctx.enabled:
                raise UserError("progressive pruning changes the model while it trains; run it "
                                "in one process (not under torchrun)")
            opt, sched = _rebuilt(model, cfg, opt, sched)
            _memory_format(model, cfg)  # the pruned layers' new tensors
            net = _training_net(model, cfg, ctx)  # compiled again for the new shapes
        _seed_epoch(cfg.seed, epoch, ctx.rank)
        sampler.set_epoch(epoch)
        train.set_epoch(epoch)
        net.train()
        keep_frozen_norms(model)
        total, count = 0.0, 0
        show = cfg.progress and ctx.is_main
        bar = progress_bar(loader, desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False,
                           unit="batch", enabled=show)
        for wave, y, idx in bar:
            wave, y = wave.to(device, non_blocking=pin), y.to(device, non_blocking=pin)
            if cfg.mixup > 0:
                if y.dtype == torch.long:
                    y = F.one_hot(y, train.num_classes).float()
                wave, y = mixup(wave, y, cfg.mixup)
            loss = train_step(net, opt, scaler, loss_fn, wave, y, idx, cfg, epoch)
            total += float(loss) * len(wave)  # train_step's finiteness check synchronised
            count += len(wave)
            if show:
                bar.set_postfix(loss=f"{total / max(count, 1):.4f}")
        if sched is not None:
            sched.step()
        total, count = sum_over_ranks(ctx, total, count)
        train_loss = total / max(count, 1)
        val_metrics = evaluate(model, val, cfg, ctx, "validating") if val is not None and len(val) else None
        value = headline(val_metrics)[1] if val_metrics else -train_loss
        value = broadcast_float(ctx, value)
        improved = value > state["best"] and epoch >= best_from
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
            save_checkpoint(run_dir, model, opt, sched,
                            {**state, **({"extra": extra_state()} if extra_state else {}),
                             **({"grad_scaler": scaler.state_dict()} if scaler.is_enabled()
                                else {})})
            log.info("epoch %d/%d  loss %.4f  %s  %.1fs%s", epoch + 1, cfg.epochs, train_loss,
                     " ".join(f"{k} {v:.4f}" for k, v in entry.items() if k.startswith("val_")),
                     entry["seconds"], "  *best" if improved else "")
        barrier(ctx)
    if cfg.channels_last:  # the model leaves as it came: plain contiguous weights
        model.to(memory_format=torch.contiguous_format)
    return {k: state[k] for k in ("epoch", "best_epoch", "best_val", "history", "train_seconds")}


def _memory_format(model: nn.Module, cfg: TrainConfig) -> None:
    """channels_last: 4-d weights (and so the feature maps convs produce) in NHWC."""
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)


def _training_net(model: nn.Module, cfg: TrainConfig, ctx: DistContext) -> nn.Module:
    """What the training forward calls: the model, in DDP under torchrun (SyncBatchNorm on
    GPUs), compiled with `compile`. Evaluation calls the model itself, eagerly."""
    device = cfg.device
    net: nn.Module = model
    if ctx.enabled:
        net = nn.parallel.DistributedDataParallel(
            nn.SyncBatchNorm.convert_sync_batchnorm(model) if device.startswith("cuda") else model,
            device_ids=[ctx.local_rank] if device.startswith("cuda") else None)
    if cfg.compile:
        torch._dynamo.reset()  # a pruned model: its old graphs are of no use
        net = torch.compile(net)  # type: ignore[assignment]
    return net


def _rebuilt(model: nn.Module, cfg: TrainConfig, opt: torch.optim.Optimizer,
             sched: Any) -> tuple[torch.optim.Optimizer, Any]:
    """A new optimizer over the model's parameters as they are now, at the learning rates the
    old one had reached, and the schedule continued from where it was."""
    lrs = [g["lr"] for g in opt.param_groups]
    new = torch.optim.Adam(param_groups(model, cfg), lr=cfg.lr, weight_decay=cfg.weight_decay)
    new_sched = make_scheduler(new, cfg)
    if sched is not None and new_sched is not None:
        new_sched.load_state_dict(sched.state_dict())
    for group, lr in zip(new.param_groups, lrs):
        group["lr"] = lr
    return new, new_sched
