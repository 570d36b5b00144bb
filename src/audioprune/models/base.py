"""The common shape of every model: front end inside, then a body that maps features to logits.

A model takes either a waveform (batch, samples) -- or (batch, 2, samples) for a stereo feature
stack -- which the front end turns into log-mels, or features already computed (batch, channels,
frames, mels); `FrontEndConfig.channels` picks the feature stack and so the channel count.
Models know nothing about pruning; they only accept per-layer `widths` so that a pruned model can
be rebuilt from model.json.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from audioprune.audio.augment import SpecAugment
from audioprune.audio.frontend import FrontEndConfig
from audioprune.audio.quaternion_input import build_frontend


class AudioClassifier(nn.Module):
    """Base class. Subclasses build their layers in __init__ and implement `classify`.

    `arch_kwargs` are the constructor arguments (besides num_classes, frontend, widths) needed to
    rebuild the model; `classifier_name` names the output layer, which is never pruned.
    """

    classifier_name: str = "fc_out"

    def __init__(self, num_classes: int, frontend: FrontEndConfig,
                 spec_augment: dict[str, int] | None = None) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = num_classes
        self.frontend_cfg = frontend
        self.frontend = build_frontend(frontend)  # LogMel, or a 4-channel stack
        self.spec_augment = SpecAugment(**spec_augment) if spec_augment else nn.Identity()
        self.arch_name = ""  # filled by create_model
        self.arch_kwargs: dict[str, Any] = {}

    @property
    def in_channels(self) -> int:
        """Feature channels the body expects: the front end's (1 for log-mel, 4 for the
        quaternion stacks)."""
        return self.frontend_cfg.num_channels

    def features(self, wave: torch.Tensor) -> torch.Tensor:
        """Waveform (B, samples) or (B, 2, samples) -> features (B, C, frames, mels).

        Always in fp32: under mixed-precision autocast the front end runs with autocast off
        (its mel projection would otherwise be a bf16 matmul of power spectra spanning 1e-10
        to 1e3, whose rounding the log then magnifies); the body gets fp32 features and
        autocast takes over again."""
        device = wave.device.type
        if device in ("cpu", "cuda", "mps", "xpu") and torch.is_autocast_enabled(device):
            with torch.autocast(device, enabled=False):
                return self.frontend(wave.float())
        return self.frontend(wave)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim in (2, 3):
            x = self.features(x)
        elif x.ndim != 4:
            raise ValueError(f"expected a waveform (batch, samples) or features (batch, channels, "
                             f"frames, mels), got shape {tuple(x.shape)}")
        return self.classify(self.spec_augment(x))

    def classify(self, feats: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def layer_widths(self) -> dict[str, int]:
        """Output width of every conv and linear layer except the classifier, read from the
        modules themselves (so a pruned model reports its real widths)."""
        widths: dict[str, int] = {}
        for name, mod in self.named_modules():
            if name == self.classifier_name or name.startswith("frontend"):
                continue
            out = getattr(mod, "out_channels", None) or getattr(mod, "out_features", None)
            if isinstance(mod, (nn.Conv1d, nn.Conv2d, nn.Linear)) or hasattr(mod, "quaternion"):
                if out is not None:
                    widths[name] = int(out)
        return widths

    def example_features(self, batch: int = 1) -> torch.Tensor:
        """Seeded random features (batch, C, frames, mels) of the model's clip length: what the
        body sees in use, e.g. to trace ``classify`` (a flatten maps channels to positions, so
        the length matters) or to count its MACs."""
        fe = self.frontend_cfg
        n = fe.clip_samples or fe.sample_rate
        device = next((p.device for p in self.parameters()), torch.device("cpu"))
        gen = torch.Generator().manual_seed(0)
        return torch.randn(batch, *self.feature_shape(n), generator=gen).to(device)

    def feature_shape(self, num_samples: int) -> tuple[int, int, int]:
        """(channels, frames, mels) of the features for a waveform of `num_samples`."""
        return (self.in_channels, self.frontend_cfg.num_frames(num_samples), self.frontend_cfg.n_mels)


def resolve_width(name: str, default: int, multiplier: float, widths: dict[str, int] | None,
                  multiple_of: int = 1) -> int:
    """Width of layer `name`: an explicit entry in `widths` wins (a pruned model being rebuilt),
    else `default * multiplier` rounded to a multiple of `multiple_of` (at least one)."""
    if widths and name in widths:
        return int(widths[name])
    w = int(round(default * multiplier / multiple_of)) * multiple_of
    return max(w, multiple_of)
