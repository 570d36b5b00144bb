"""Parameters and MACs counted at the operator level.

MACs come from torch.utils.flop_counter.FlopCounterMode, which sees every aten convolution and
matmul actually executed, so custom layers (quaternion convs assemble a real kernel and call one
convolution) are counted right; Torch-Pruning's counter would count custom modules as zero.
FlopCounterMode reports FLOPs = 2 x MACs for conv/matmul, so MACs = FLOPs / 2.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from audioprune.models.base import AudioClassifier


def count_params(model: nn.Module, include_frontend: bool = False) -> int:
    """Learnable parameters. The log-mel front end holds only buffers, so it adds nothing."""
    return sum(p.numel() for name, p in model.named_parameters()
               if include_frontend or not name.startswith("frontend."))


def count_keras_params(model: nn.Module) -> int:
    """Parameters plus BatchNorm running mean/variance, the way Keras' summary counts them."""
    stats = sum(b.numel() for name, b in model.named_buffers()
                if name.endswith("running_mean") or name.endswith("running_var"))
    return count_params(model) + stats


# torch 2.13 has no FLOP rule for the CPU attention kernel, so attention score matmuls would be
# missed on CPU (a transformer's count falls by 2*T^2*D per layer); count it as the generic SDPA.
_EXTRA_RULES = {
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu:
        lambda q, k, v, *a, out_shape=None, **kw: sdpa_flop_count(q, k, v),
}


def _macs(fn, *args: torch.Tensor) -> int:
    with FlopCounterMode(display=False, custom_mapping=_EXTRA_RULES) as counter:
        fn(*args)
    return int(counter.get_total_flops()) // 2


@torch.no_grad()
def count_macs(model: AudioClassifier, num_samples: int | None = None) -> dict[str, int]:
    """MACs for ONE example of `num_samples` samples (default: the front end's clip length).

    Returns {"model": body MACs from features to logits, "frontend": STFT + mel projection}.
    The body count is what `metrics.json` reports as `macs`.
    """
    num_samples = num_samples or model.frontend_cfg.clip_samples or model.frontend_cfg.sample_rate
    was_training = model.training
    model.eval()
    try:
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        wave = torch.zeros(1, num_samples, device=device)
        feats = torch.zeros(1, *model.feature_shape(num_samples), device=device)
        body = _macs(model.classify, feats)
        front = _macs(model.features, wave)
    finally:
        model.train(was_training)
    return {"model": body, "frontend": front}


def size_bytes(model: nn.Module, bytes_per_param: int = 4) -> int:
    """Storage of the learnable parameters and persistent buffers at `bytes_per_param` each."""
    n = count_params(model) + sum(b.numel() for name, b in model.named_buffers()
                                  if not name.startswith("frontend.") and b.is_floating_point())
    return n * bytes_per_param
