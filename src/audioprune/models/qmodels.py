"""Quaternion twins of the reference models: `qdcase21net`, `qcnn6`, `qcnn10`, `qcnn14`.

Each twin is its real model (Dcase21Net, PannsCNN) with the layer factories swapped: every conv
is a `QConv2d`, the hidden linear layer `fc1` is a `QLinear`, the batch norms are `QBatchNorm2d`
and the classifier `fc_out` stays real. Module names are the real twin's (`conv1`, `bn1`, ...,
`block{i}.conv{c}`, `fc1`, `fc_out`), so `layer_widths`, model.json and `--layers` patterns work
the same. Widths are REAL channel counts and multiples of 4 (a width multiplier rounds to a
multiple of 4; an explicit `widths` entry that is not one is rejected by the layer).

Input: 4 feature channels, the 4 components of the first conv's input quaternions. A front end
with `channels="mono"` (every dataset's default) is switched to `"deltas"` (log-mel and its 1st,
2nd, 3rd deltas, the QCNN authors' recipe); any other 4-channel stack is kept (see
`audio/quaternion_input.py`). model.json records the stack in its front-end settings.

Options (all recorded in model.json when given):

- `bn_mode`: "real" (default) is the plain per-real-channel BatchNorm2d the QCNN authors trained
  (their public code uses nn.BatchNorm2d in the quaternion blocks); "quaternion" is the
  SpeechBrain-style whitening-free quaternion BN (one gamma and one variance per quaternion).
- `input_norm` (default False, the authors' layout): True adds an affine-free per-channel
  BatchNorm2d on the 4 input channels (0 parameters, 8 running statistics) that brings the deltas
  -- 15-300x smaller than the standardised log-mel -- to unit scale. It did not help: on FSDD
  (official split, seed 0, 5 epochs) qdcase21net reached 48.0 % test accuracy with it and
  66.3 % without it (dcase21net: 93.3 %), so it is off unless asked for.
- `init`: "glorot" (default, as the authors' QuaternionConv) or "he" for the quaternion layers.

Parameter counts: the authors' QCNN14 has 21,012,431 parameters at 527 classes; `qcnn14` with
the defaults has exactly that (see tests/test_qmodels.py for the arithmetic), about 1/4 of CNN14's
80,753,615: quaternion convs and fc1 hold a quarter of the weights, while the first conv
(4 input channels instead of 1: the same count), the per-channel BN, bn0, the biases and the real
classifier do not shrink.

Inference: `fuse_quaternion(model)` (audioprune.nn.fuse) turns a twin into the same model class
built from nn.Conv2d / nn.Linear / nn.BatchNorm2d with the Hamilton kernels precomputed; its
parameter count is the real-conv count (what the fused network stores), while the run's reported
`params` are the quaternion ones (what is learned and stored in model.safetensors). MACs are
equal. `fuse_for_inference(model, fold_bn=True)` also folds each conv's BN into it. A fused
model is for inference and export only: its state dict holds real kernels, so save the quaternion
model as the run (model.json rebuilds the quaternion layers).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import torch
from torch import nn

from audioprune.audio.frontend import FrontEndConfig
from audioprune.models.base import AudioClassifier
from audioprune.models.dcase21net import Dcase21Net
from audioprune.models.panns import CNN6_WIDTHS, CNN10_WIDTHS, CNN14_WIDTHS, PannsCNN
from audioprune.models.registry import register_model
from audioprune.nn.fuse import fold_batchnorm, fuse_quaternion
from audioprune.nn.quaternion import InitCriterion, QBatchNorm2d, QConv2d, QLinear

__all__ = ["QDcase21Net", "QPannsCNN", "conv_bn_pairs", "fuse_for_inference",
           "quaternion_frontend"]

BnMode = Literal["real", "quaternion"]
_BN_MODES = ("real", "quaternion")


def quaternion_frontend(frontend: FrontEndConfig) -> FrontEndConfig:
    """The 4-channel front end a quaternion model reads: "mono" becomes "deltas"."""
    return frontend.replace(channels="deltas") if frontend.channels == "mono" else frontend


def _check_options(kwargs: dict[str, Any], bn_mode: str) -> None:
    if bn_mode not in _BN_MODES:
        raise ValueError(f"bn_mode must be 'real' or 'quaternion', got {bn_mode!r}")
    if "in_channels" in kwargs:
        raise ValueError("quaternion models take their 4 input channels from the front end; "
                         "choose the feature stack with FrontEndConfig.channels, not in_channels")
    multiple = kwargs.get("width_multiple_of", 4)
    if multiple < 4 or multiple % 4:
        raise ValueError(f"width_multiple_of must be a multiple of 4 for a quaternion model "
                         f"(4 real channels per quaternion), got {multiple}")


def _input_norm(enabled: bool, channels: int) -> nn.Module:
    # affine-free: 0 parameters; running statistics are saved with the weights
    return nn.BatchNorm2d(channels, affine=False) if enabled else nn.Identity()


def _check_input(model: AudioClassifier, x: torch.Tensor) -> None:
    if x.ndim != 4 or x.shape[1] != model.in_channels:
        raise ValueError(f"expected features (batch, {model.in_channels}, frames, mels), "
                         f"got shape {tuple(x.shape)}")


class _QuaternionTwin:
    """Set-up and input checks shared by every quaternion twin; mixed in before the real model
    class, whose __init__ builds the layers through the make_conv/make_norm/make_linear hooks."""

    def __init__(self, num_classes: int, frontend: FrontEndConfig, widths: dict[str, int] | None,
                 *, bn_mode: BnMode = "real", input_norm: bool = False,
                 init: InitCriterion = "glorot", **kwargs: Any) -> None:
        _check_options(kwargs, bn_mode)
        frontend = quaternion_frontend(frontend)
        # read by the layer factories during the real twin's __init__
        self.bn_mode, self.qinit = bn_mode, init
        kwargs.setdefault("width_multiple_of", 4)
        super().__init__(num_classes, frontend, widths,  # type: ignore[call-arg]
                         in_channels=frontend.num_channels, **kwargs)
        self.input_norm = _input_norm(input_norm, frontend.num_channels)

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(self, x)  # type: ignore[arg-type]
        return super().classify(self.input_norm(x))  # type: ignore[misc]


class QPannsCNN(_QuaternionTwin, PannsCNN):
    """PANNs CNN6 / CNN10 / CNN14 layout with quaternion convs, QBatchNorm2d and quaternion fc1.

    bn0 (over mels, shared by the 4 channels, as the authors' QCNN14) and the classifier fc_out
    stay real.
    """

    def make_conv(self, c_in: int, c_out: int, kernel_size: int) -> nn.Module:
        return QConv2d(c_in, c_out, kernel_size, stride=1, padding=kernel_size // 2, bias=False,
                       init=self.qinit)

    def make_norm(self, channels: int) -> nn.Module:
        return QBatchNorm2d(channels, mode=self.bn_mode)

    def make_linear(self, c_in: int, c_out: int) -> nn.Module:
        return QLinear(c_in, c_out, init=self.qinit)


class QDcase21Net(_QuaternionTwin, Dcase21Net):
    """DCASE 2021 Task 1A baseline layout with quaternion convs (with bias, as Keras' Conv2D),
    QBatchNorm2d (eps 1e-3) and a quaternion Dense-100 (`fc1`); `fc_out` stays real."""

    def make_conv(self, c_in: int, c_out: int, kernel_size: int) -> nn.Module:
        return QConv2d(c_in, c_out, kernel_size, padding=kernel_size // 2, bias=True,
                       init=self.qinit)

    def make_norm(self, channels: int) -> nn.Module:
        return QBatchNorm2d(channels, mode=self.bn_mode, eps=1e-3)

    def make_linear(self, n_in: int, n_out: int) -> nn.Module:
        # The flattened (channels, mel) features keep the quaternion layout: channel q + c*O,
        # mel m is feature (q*M + m) + c*(O*M), i.e. component c of quaternion q*M + m.
        return QLinear(n_in, n_out, init=self.qinit)


# ------------------------------------------------------------------ inference helpers
def conv_bn_pairs(model: nn.Module) -> list[tuple[str, str]]:
    """(conv, bn) module names where the BN directly follows the conv, for `fold_batchnorm`:
    `block{i}.conv{c}` -> `block{i}.bn{c}` (PANNs layouts) and `conv{n}` -> `bn{n}` (DCASE)."""
    names = dict(model.named_modules())
    pairs = []
    for name in names:
        head, _, leaf = name.rpartition(".")
        if leaf.startswith("conv") and leaf[4:].isdigit():
            bn = f"{head}.bn{leaf[4:]}" if head else f"bn{leaf[4:]}"
            if bn in names:
                pairs.append((name, bn))
    return pairs


def fuse_for_inference(model: AudioClassifier, fold_bn: bool = False) -> AudioClassifier:
    """Eval-mode copy made of real layers only (`fuse_quaternion`); with `fold_bn`, each conv's
    batch norm is folded into the conv too (an inference-only export: no more training)."""
    if fold_bn:
        return fold_batchnorm(model, conv_bn_pairs(model))  # type: ignore[return-value]
    return fuse_quaternion(model).eval()  # type: ignore[return-value]


# ------------------------------------------------------------------ registry
def _panns(num_classes: int, frontend: FrontEndConfig, widths: dict[str, int] | None,
           base_widths: Sequence[int], convs_per_block: int, kernel_size: int,
           pools: Sequence[bool], kwargs: dict[str, Any]) -> QPannsCNN:
    return QPannsCNN(num_classes, frontend, widths, base_widths=base_widths,
                     convs_per_block=convs_per_block, kernel_size=kernel_size, pools=pools,
                     **kwargs)


@register_model("qdcase21net", "Quaternion DCASE21 baseline: QConv 7x7 x3, quaternion Dense-100")
def qdcase21net(num_classes: int, frontend: FrontEndConfig, widths: dict[str, int] | None = None,
                **kwargs: Any) -> QDcase21Net:
    return QDcase21Net(num_classes, frontend, widths, **kwargs)


@register_model("qcnn6", "Quaternion PANNs CNN6: 4 blocks of one 5x5 QConv, 64-512")
def qcnn6(num_classes: int, frontend: FrontEndConfig, widths: dict[str, int] | None = None,
          **kwargs: Any) -> QPannsCNN:
    return _panns(num_classes, frontend, widths, CNN6_WIDTHS, 1, 5, (True,) * 4, kwargs)


@register_model("qcnn10", "Quaternion PANNs CNN10: 4 blocks of two 3x3 QConvs, 64-512")
def qcnn10(num_classes: int, frontend: FrontEndConfig, widths: dict[str, int] | None = None,
           **kwargs: Any) -> QPannsCNN:
    return _panns(num_classes, frontend, widths, CNN10_WIDTHS, 2, 3, (True,) * 4, kwargs)


@register_model("qcnn14", "Quaternion PANNs CNN14 (QCNN14): 6 blocks of two 3x3 QConvs, 64-2048 "
                          "(21.01 M params at 527)")
def qcnn14(num_classes: int, frontend: FrontEndConfig, widths: dict[str, int] | None = None,
           **kwargs: Any) -> QPannsCNN:
    return _panns(num_classes, frontend, widths, CNN14_WIDTHS, 2, 3, (True,) * 5 + (False,),
                  kwargs)
