"""PANNs CNN6 / CNN10 / CNN14 (Kong et al. 2020; qiuqiangkong/audioset_tagging_cnn,
pytorch/models.py).

Layout, as in PANNs:

- `bn0`: BatchNorm2d over the mel axis (the features are transposed so that mels are the channel
  axis, normalised, and transposed back), then SpecAugment (training only) -- in that order, as
  PANNs does, so the masks set normalised values to zero (the mean), not raw dB values.
- conv blocks: CNN10 / CNN14 use `ConvBlock` (two 3x3 convs, no bias, each followed by BN and ReLU)
  and CNN6 uses `ConvBlock5x5` (one 5x5 conv, BN, ReLU); each block ends with a 2x2 average pool
  (CNN14's sixth block does not pool: PANNs calls it with pool_size (1, 1)) and dropout 0.2.
  Widths: CNN6 and CNN10 64-128-256-512, CNN14 64-128-256-512-1024-2048.
- head: mean over mels, then max + mean over time, dropout 0.5, `fc1` (hidden = last width) with
  ReLU, then the classifier `fc_out` (PANNs' `fc_audioset`). We return LOGITS: the sigmoid (or
  softmax) belongs to the loss. PANNs applies a second dropout after fc1 only to the returned
  embedding, never to the classifier input; we return no embedding, so there is none here either.
- init: Xavier-uniform for convs and linears (bias 0), BN weight 1 / bias 0.

At 527 classes this gives 4,837,455 (CNN6), 5,219,279 (CNN10) and 80,753,615 (CNN14) parameters,
PANNs' published 4.84 M / 5.22 M / 80.75 M. Our log-mel front end holds only buffers, so
`count_params(model)` is the count "without the front end". (An older revision of the PANNs file
built CNN10 from ConvBlock5x5, which would give it CNN6's count; the published 5.22 M and the
current file use ConvBlock.)

Short inputs: PANNs pools with avg_pool2d(kernel (2, 2)), which collapses an axis of size 1 to
size 0 (e.g. few mel bands or a very short clip after several blocks). Here each axis is pooled
by 2 only while it is >= 2, and left alone once it is 1. For inputs where every axis stays >= 2
(e.g. 10 s at 32 kHz, 1001 frames x 64 mels, or the FSDD setting, 101 frames x 40 mels) this is
exactly PANNs' pooling. The kernel is chosen from the input's shape at run time, so a traced
export (ONNX) fixes it for the traced input size.

Module names are stable so pruned models can be rebuilt from per-layer widths: `bn0`,
`block{i}.conv1`, `block{i}.bn1`, `block{i}.conv2`, `block{i}.bn2`, ..., `fc1`, `fc_out`. With
`widths`, each conv (and fc1) takes its width from there, so the two convs of a block may differ.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from audioprune.audio.frontend import FrontEndConfig
from audioprune.models.base import AudioClassifier, resolve_width
from audioprune.models.registry import register_model

CNN6_WIDTHS = (64, 128, 256, 512)
CNN10_WIDTHS = (64, 128, 256, 512)
CNN14_WIDTHS = (64, 128, 256, 512, 1024, 2048)


def pool2x2_safe(x: torch.Tensor) -> torch.Tensor:
    """2x2 average pool over (frames, mels) that pools an axis only while it is >= 2.

    Identical to F.avg_pool2d(x, 2) when both axes are >= 2; an axis of size 1 stays 1 instead of
    collapsing to 0.
    """
    kt = 2 if x.shape[-2] >= 2 else 1
    km = 2 if x.shape[-1] >= 2 else 1
    if kt == 1 and km == 1:
        return x
    return F.avg_pool2d(x, kernel_size=(kt, km))


class ConvBlock(nn.Module):
    """`len(channels) - 1` convs (k x k, same padding, no bias), each with BN and ReLU, then an
    optional safe 2x2 average pool. Two 3x3 convs is PANNs' ConvBlock, one 5x5 its ConvBlock5x5.

    Layers are built by the owning model's `make_conv` / `make_norm`, so a twin (e.g. quaternion)
    model can swap the layer types and keep the names.
    """

    def __init__(self, channels: Sequence[int], kernel_size: int, pool: bool,
                 make_conv: Any, make_norm: Any) -> None:
        super().__init__()
        if len(channels) < 2:
            raise ValueError("a conv block needs an input width and at least one output width")
        self.num_convs = len(channels) - 1
        self.pool = pool
        for i in range(self.num_convs):
            self.add_module(f"conv{i + 1}", make_conv(channels[i], channels[i + 1], kernel_size))
            self.add_module(f"bn{i + 1}", make_norm(channels[i + 1]))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i in range(1, self.num_convs + 1):
            x = F.relu(getattr(self, f"bn{i}")(getattr(self, f"conv{i}")(x)))
        return pool2x2_safe(x) if self.pool else x


class PannsCNN(AudioClassifier):
    """PANNs-style CNN: bn0 over mels, conv blocks, max+mean pooled head, fc1, fc_out (logits).

    Architecture arguments (`base_widths`, `convs_per_block`, `kernel_size`, `pools`) are fixed by
    the registered functions; the rest are the user's knobs and go into model.json.
    """

    classifier_name = "fc_out"

    def __init__(self, num_classes: int, frontend: FrontEndConfig, widths: dict[str, int] | None,
                 *, base_widths: Sequence[int], convs_per_block: int, kernel_size: int,
                 pools: Sequence[bool], width: float = 1.0, width_multiple_of: int = 1,
                 in_channels: int | None = None, dropout: float = 0.2, head_dropout: float = 0.5,
                 spec_augment: dict[str, int] | None = None) -> None:
        super().__init__(num_classes, frontend, spec_augment)
        if len(pools) != len(base_widths):
            raise ValueError("need one pool flag per block")
        if width <= 0:
            raise ValueError(f"width multiplier must be > 0, got {width}")
        if width_multiple_of < 1:
            raise ValueError(f"width_multiple_of must be >= 1, got {width_multiple_of}")
        if in_channels is None:  # the front end's channel count (1 for log-mel)
            in_channels = frontend.num_channels
        if in_channels < 1:
            raise ValueError(f"in_channels must be >= 1, got {in_channels}")
        self._in_channels = in_channels
        self.dropout = dropout
        self.head_dropout = head_dropout
        self.bn0 = nn.BatchNorm2d(frontend.n_mels)

        self.block_names: list[str] = []
        c_in = in_channels
        for b, (base, pool) in enumerate(zip(base_widths, pools), start=1):
            chans = [c_in]
            for c in range(1, convs_per_block + 1):
                chans.append(resolve_width(f"block{b}.conv{c}", base, width, widths,
                                           width_multiple_of))
            name = f"block{b}"
            self.add_module(name, ConvBlock(chans, kernel_size, pool, self.make_conv,
                                            self.make_norm))
            self.block_names.append(name)
            c_in = chans[-1]

        hidden = resolve_width("fc1", base_widths[-1], width, widths, width_multiple_of)
        self.fc1 = self.make_linear(c_in, hidden)
        self.fc_out = nn.Linear(hidden, num_classes)
        self.init_weights()

    # Layer factories: a twin model (e.g. quaternion) overrides these and keeps the names.
    def make_conv(self, c_in: int, c_out: int, kernel_size: int) -> nn.Module:
        return nn.Conv2d(c_in, c_out, kernel_size, stride=1, padding=kernel_size // 2, bias=False)

    def make_norm(self, channels: int) -> nn.Module:
        return nn.BatchNorm2d(channels)

    def make_linear(self, c_in: int, c_out: int) -> nn.Module:
        return nn.Linear(c_in, c_out)

    def init_weights(self) -> None:
        """PANNs' init_layer / init_bn: Xavier-uniform weights, zero bias; BN weight 1, bias 0."""
        for mod in self.modules():
            if isinstance(mod, (nn.Conv2d, nn.Linear)):
                nn.init.xavier_uniform_(mod.weight)
                if mod.bias is not None:
                    nn.init.zeros_(mod.bias)
            elif isinstance(mod, nn.BatchNorm2d):
                nn.init.ones_(mod.weight)
                nn.init.zeros_(mod.bias)

    @property
    def in_channels(self) -> int:
        return self._in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # As the base class, except that SpecAugment runs inside `classify`, after bn0 (as PANNs).
        if x.ndim in (2, 3):  # waveform (batch, samples) or stereo (batch, 2, samples)
            x = self.features(x)
        elif x.ndim != 4:
            raise ValueError(f"expected a waveform (batch, samples) or features (batch, channels, "
                             f"frames, mels), got shape {tuple(x.shape)}")
        return self.classify(x)

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != self._in_channels or x.shape[3] != self.bn0.num_features:
            raise ValueError(f"expected features (batch, {self._in_channels}, frames, "
                             f"{self.bn0.num_features}), got shape {tuple(x.shape)}")
        x = self.bn0(x.transpose(1, 3)).transpose(1, 3)  # normalise each mel bin
        x = self.spec_augment(x)
        for name in self.block_names:
            x = F.dropout(getattr(self, name)(x), p=self.dropout, training=self.training)
        x = x.mean(dim=3)  # (B, C, frames)
        x = x.amax(dim=2) + x.mean(dim=2)
        x = F.dropout(x, p=self.head_dropout, training=self.training)
        x = F.relu(self.fc1(x))
        return self.fc_out(x)


def _build(num_classes: int, frontend: FrontEndConfig, widths: dict[str, int] | None,
           base_widths: Sequence[int], convs_per_block: int, kernel_size: int,
           pools: Sequence[bool], kwargs: dict[str, Any]) -> PannsCNN:
    return PannsCNN(num_classes, frontend, widths, base_widths=base_widths,
                    convs_per_block=convs_per_block, kernel_size=kernel_size, pools=pools, **kwargs)


@register_model("cnn6", "PANNs CNN6: 4 blocks of one 5x5 conv, 64-512 (4.84 M params at 527)")
def cnn6(num_classes: int, frontend: FrontEndConfig, widths: dict[str, int] | None = None,
         **kwargs: Any) -> PannsCNN:
    return _build(num_classes, frontend, widths, CNN6_WIDTHS, 1, 5, (True,) * 4, kwargs)


@register_model("cnn10", "PANNs CNN10: 4 blocks of two 3x3 convs, 64-512 (5.22 M params at 527)")
def cnn10(num_classes: int, frontend: FrontEndConfig, widths: dict[str, int] | None = None,
          **kwargs: Any) -> PannsCNN:
    return _build(num_classes, frontend, widths, CNN10_WIDTHS, 2, 3, (True,) * 4, kwargs)


@register_model("cnn14", "PANNs CNN14: 6 blocks of two 3x3 convs, 64-2048 (80.75 M params at 527)")
def cnn14(num_classes: int, frontend: FrontEndConfig, widths: dict[str, int] | None = None,
          **kwargs: Any) -> PannsCNN:
    # PANNs pools after blocks 1-5 only (block 6 uses pool_size (1, 1)).
    return _build(num_classes, frontend, widths, CNN14_WIDTHS, 2, 3, (True,) * 5 + (False,), kwargs)
