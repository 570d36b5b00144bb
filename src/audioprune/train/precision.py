"""Mixed-precision training: which autocast a precision means on a device, and its GradScaler.

    fp32  no autocast (the default, what every run before this option trained in)
    bf16  torch.autocast(dtype=bfloat16): convs, linears and matmuls in bf16, the rest in fp32;
          bf16 has fp32's exponent range, so no loss scaling. Runs on CPUs too (fast where the
          CPU has AVX512-BF16 or AMX, emulated and slower elsewhere: bench/bench_precision.py)
    fp16  torch.autocast(dtype=float16) with a GradScaler: fp16 gradients underflow without
          loss scaling. Meant for GPUs without bf16 (before Ampere); on a CPU it is slow.

What stays in fp32 whatever the precision: the weights and the optimizer state (autocast casts
copies), the loss (computed on the logits cast to fp32, outside autocast), the metrics (logits
are cast to fp32 before leaving the model's caller), the batch-norm running statistics (buffers
are never cast; nn.BatchNorm and QBatchNorm2d normalise in fp32) and the log-mel front end
(AudioClassifier.features turns autocast off around it: power spectra span 1e-10..1e3, beyond
what bf16's 8-bit mantissa keeps through the log).
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch

PRECISIONS = ("fp32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast_dtype(precision: str) -> torch.dtype | None:
    """The autocast dtype of `precision` (None for fp32)."""
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose from {', '.join(PRECISIONS)}")
    return _DTYPES.get(precision)


def autocast(device: str | torch.device, precision: str) -> contextlib.AbstractContextManager[Any]:
    """The context the forward pass runs in: torch.autocast for bf16 / fp16, nothing for fp32."""
    dtype = autocast_dtype(precision)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=dtype)


def grad_scaler(device: str | torch.device, precision: str) -> torch.amp.GradScaler:
    """A GradScaler, enabled for fp16 only (disabled, it passes losses and steps through)."""
    return torch.amp.GradScaler(torch.device(device).type, enabled=precision == "fp16")


def unsupported(device: str | torch.device, precision: str) -> str | None:
    """Why `precision` cannot train on `device` (None when it can)."""
    dtype = autocast_dtype(precision)
    if dtype is None:
        return None
    dev = torch.device(device)
    if dev.type == "cuda" and dtype == torch.bfloat16 and torch.cuda.is_available():
        index = dev.index if dev.index is not None else torch.cuda.current_device()
        if index < torch.cuda.device_count() and not torch.cuda.is_bf16_supported():
            return (f"{torch.cuda.get_device_name(index)} has no bf16 support (it needs "
                    f"compute capability 8.0, Ampere, or later); use fp16")
    return None
