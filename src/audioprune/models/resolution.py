"""Resolution as a compression axis: a trained model reading coarser features, its weights kept.

An audio CNN's MACs scale with the frames and mel bins its convolutions slide over as much as
with its widths: a hop `time` times longer gives about 1/`time` of the frames, `freq` times the
mel bins about `freq` of the bins, and every convolution's MACs shrink with them. A convolution's
weights do not depend on the map's size, so they are kept as they are; what does depend on it is
adapted, by architecture:

* PANNs CNNs (cnn6/10/14) and their quaternion twins: `bn0` normalises each mel bin; its
  statistics and affine parameters are interpolated linearly from the old bins' centres to the
  new ones (a bin's statistics vary slowly with frequency). Time enters only global pooling.
* dcase21net and qdcase21net: after the fixed max pools the classifier's fc1 reads conv3's
  channels x (n_mels // 20) mel positions. With fewer positions, each new position takes the
  fc1 columns of the old positions it covers, summed in proportion to the overlap: a max pool
  over a wider band returns roughly the larger of the values the old positions saw, so the sum
  of their weights keeps the layer's output at the scale the next layers expect. Time again
  only enters a max over all frames.

Nothing else is touched, so the coarsened model is the parent at another resolution; a short
fine-tune then recovers most of what the coarser input loses (audioprune.runs.prune does it as
part of a plan). The sample rate is not an axis here: at a fixed hop in seconds it changes only
the STFT (not counted in the body's MACs), not the frames or mels the body sees.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from audioprune.errors import ArgumentError
from audioprune.models.base import AudioClassifier
from audioprune.models.registry import model_config, model_from_config

__all__ = ["RESOLUTION_ARCHS", "coarsen", "coarsened_frontend"]

_PANNS = ("cnn6", "cnn10", "cnn14", "qcnn6", "qcnn10", "qcnn14")
_DCASE = ("dcase21net", "qdcase21net")
RESOLUTION_ARCHS = _PANNS + _DCASE
DCASE_MEL_POOL = 20  # dcase21net pools the mel axis by 5 then 4


def coarsened_frontend(frontend: Any, time: float, freq: float) -> dict[str, Any]:
    """The front-end settings with the hop `time` times longer and `freq` times the mel bins."""
    if not (isinstance(time, (int, float)) and time >= 1):
        raise ArgumentError(f"`time` must be >= 1 (the hop grows by it), got {time!r}")
    if not (isinstance(freq, (int, float)) and 0 < freq <= 1):
        raise ArgumentError(f"`freq` must be in (0, 1] (the mel bins shrink by it), got {freq!r}")
    hop = int(round(frontend.hop_length * time))
    n_mels = max(1, int(round(frontend.n_mels * freq)))
    return {**frontend.to_dict(), "hop_length": hop, "n_mels": n_mels}


def coarsen(model: AudioClassifier, time: float = 1.0, freq: float = 1.0) -> AudioClassifier:
    """A new model that reads features with a `time` times longer hop and `freq` times the mel
    bins, with `model`'s weights (see the module doc); `model` is left as it is. Supported for
    RESOLUTION_ARCHS; for other models, build the coarser model yourself (a function of the hop
    and the mel count) and hand it to ap.prune."""
    arch = getattr(model, "arch_name", "")
    if arch not in RESOLUTION_ARCHS:
        raise ArgumentError(f"`model`: coarsening the front end is supported for "
                            f"{', '.join(RESOLUTION_ARCHS)}, not {arch or type(model).__name__}; "
                            f"build the coarser model from its hop and mel count instead")
    config = model_config(model)
    config["frontend"] = coarsened_frontend(model.frontend_cfg, time, freq)
    if arch in _DCASE and config["frontend"]["n_mels"] < DCASE_MEL_POOL:
        raise ArgumentError(f"`freq` {freq}: {arch} needs at least {DCASE_MEL_POOL} mel bins, "
                            f"{model.frontend_cfg.n_mels} x {freq} leaves "
                            f"{config['frontend']['n_mels']}")
    new = model_from_config(config)
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("frontend.")}
    adapted = {}
    for key, target in new.state_dict().items():
        if key.startswith("frontend.") or key not in state:
            continue
        value = state[key]
        if value.shape == target.shape:
            adapted[key] = value.clone()
        elif key.startswith("bn0.") and value.ndim == 1:
            adapted[key] = _interpolate(value, target.shape[0])
        elif arch in _DCASE and key.startswith("fc1."):
            adapted[key] = _merge_positions(value, target.shape, model.frontend_cfg.n_mels,
                                            config["frontend"]["n_mels"])
        else:
            raise ArgumentError(f"`model` {arch}: {key} has shape {tuple(value.shape)} at the old "
                                f"resolution and {tuple(target.shape)} at the new one; no rule "
                                f"adapts it")
    missing, unexpected = new.load_state_dict(adapted, strict=False)
    left = [k for k in missing if not k.startswith("frontend.")]
    if left or unexpected:
        raise RuntimeError(f"coarsening {arch} left {left[:3]} unset")
    new.train(model.training)
    return new.to(next((p.device for p in model.parameters()), torch.device("cpu")))


def _interpolate(values: torch.Tensor, n: int) -> torch.Tensor:
    """Per-bin values at the centres of `n` evenly spread bins over the same band."""
    old = values.shape[0]
    if n == old:
        return values.clone()
    centres = (np.arange(n) + 0.5) * old / n - 0.5  # new bin centres in old-bin coordinates
    out = np.interp(centres, np.arange(old), values.detach().cpu().double().numpy())
    return torch.as_tensor(out, dtype=values.dtype)


def _overlap(old: int, new: int) -> np.ndarray:
    """(new, old): the share of old position p that new position q covers (rows sum to the
    number of old positions each new one takes; columns sum to 1)."""
    m = np.zeros((new, old))
    for q in range(new):
        lo, hi = q * old / new, (q + 1) * old / new
        for p in range(old):
            m[q, p] = max(0.0, min(hi, p + 1) - max(lo, p))
    return m


def _merge_positions(weight: torch.Tensor, shape: torch.Size, old_mels: int,
                     new_mels: int) -> torch.Tensor:
    """fc1's weight (or bias) for fewer mel positions after the pools (see the module doc)."""
    if weight.ndim == 1:
        return weight.clone()
    old_p, new_p = old_mels // DCASE_MEL_POOL, new_mels // DCASE_MEL_POOL
    out, features = weight.shape
    if features % old_p or shape[0] != out or shape[1] * old_p != features * new_p:
        raise ArgumentError(f"fc1's {features} inputs are not channels x {old_p} mel positions")
    channels = features // old_p
    w = weight.detach().reshape(out, channels, old_p).double()
    mix = torch.as_tensor(_overlap(old_p, new_p), dtype=torch.float64)  # (new_p, old_p)
    merged = torch.einsum("ocp,qp->ocq", w, mix)
    return merged.reshape(out, channels * new_p).to(weight.dtype)

