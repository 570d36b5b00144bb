"""A small AST-style patch Transformer (after Gong, Chung, Glass 2021, "AST: Audio Spectrogram
Transformer"), sized as a reference student / baseline rather than AST's ViT-B.

- input normalisation: `bn0`, a BatchNorm2d over the mel axis as in the PANNs models (AST
  normalises with dataset mean/std; a BN learns the same thing and travels with the weights),
  then SpecAugment (training only);
- `patch_embed`: Conv2d with kernel `patch_size` (16) and stride `patch_stride` (16 = no overlap;
  AST's 10 gives overlapping patches) over the (frames, mels) plane; inputs smaller than one patch
  are zero-padded (after bn0, i.e. at the mean) up to one patch;
- a learnable positional embedding `pos_embed` of shape (1, D, grid_t, grid_m) sized for the
  front end's clip (10 s when the front end keeps full length). Shorter inputs use its first
  `grid_t` time positions (a 1 s clip sees the positions of the first second of a 10 s clip);
  longer inputs, or another mel grid, interpolate it bilinearly;
- a CLS token, `depth` pre-norm encoder layers (torch.nn.TransformerEncoderLayer, batch_first,
  norm_first, GELU), a final LayerNorm `norm` and the classifier `fc_out` on the CLS output.

Defaults: embed dim 192, 3 heads, depth 4, MLP ratio 4 -> 1,978,831 parameters at 527 classes
with the default 32 kHz / 64-mel front end (1,879,050 at 10 classes), of which 47,616 are the
positional embedding for a 62 x 4 patch grid.

Per-layer widths for rebuilding: `patch_embed` (the embed dim, shared by the whole residual
stream) and `blocks.{i}.linear1` (each layer's MLP hidden width). `layer_widths()` also reports
`blocks.{i}.self_attn.out_proj` and `blocks.{i}.linear2`, whose width is the embed dim; these must
agree with `patch_embed` when given.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from audioprune.audio.frontend import FrontEndConfig
from audioprune.models.base import AudioClassifier, resolve_width
from audioprune.models.registry import register_model


class _EncoderLayer(nn.TransformerEncoderLayer):
    """torch's pre-norm encoder layer, always on its Python path.

    In eval mode under no_grad torch would otherwise switch to fused native kernels
    (`_transformer_encoder_layer_fwd`, or `_native_multi_head_attention` when the head count is
    even), whose matmuls FlopCounterMode cannot see: the MAC count would silently drop. The
    layer's modules, names and parameters are unchanged; this is exactly its norm_first math.
    """

    def forward(self, src: torch.Tensor, src_mask: torch.Tensor | None = None,
                src_key_padding_mask: torch.Tensor | None = None,
                is_causal: bool = False) -> torch.Tensor:
        x = src
        x = x + self._sa_block(self.norm1(x), src_mask, src_key_padding_mask, is_causal=is_causal)
        return x + self._ff_block(self.norm2(x))

    def _sa_block(self, x: torch.Tensor, attn_mask: torch.Tensor | None,
                  key_padding_mask: torch.Tensor | None, is_causal: bool = False) -> torch.Tensor:
        # MultiheadAttention takes its fused fast path only when `query is key is value`; passing
        # the keys/values as a distinct view of the same tensor keeps it on the counted path
        # (same projections and MACs: q and kv are projected by two matmuls instead of one).
        kv = x.view_as(x)
        out = self.self_attn(x, kv, kv, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
                             need_weights=False, is_causal=is_causal)[0]
        return self.dropout1(out)


class ASTTiny(AudioClassifier):
    classifier_name = "fc_out"

    def __init__(self, num_classes: int, frontend: FrontEndConfig, widths: dict[str, int] | None,
                 width: float = 1.0, embed_dim: int = 192, depth: int = 4, num_heads: int = 3,
                 mlp_ratio: float = 4.0, patch_size: int = 16, patch_stride: int | None = None,
                 dropout: float = 0.1, in_channels: int = 1,
                 spec_augment: dict[str, int] | None = None) -> None:
        super().__init__(num_classes, frontend, spec_augment)
        stride = patch_stride or patch_size
        if not 1 <= stride <= patch_size:
            raise ValueError(f"patch_stride must be in [1, patch_size={patch_size}], got {stride}")
        if depth < 1 or num_heads < 1 or in_channels < 1:
            raise ValueError("depth, num_heads and in_channels must be >= 1")
        if width <= 0:
            raise ValueError(f"width multiplier must be > 0, got {width}")
        dim = resolve_width("patch_embed", embed_dim, width, widths, multiple_of=num_heads)
        if dim % num_heads:
            raise ValueError(f"embed dim {dim} is not divisible by num_heads={num_heads}")
        for name, w in (widths or {}).items():
            if (name.endswith(".self_attn.out_proj") or name.endswith(".linear2")) and w != dim:
                raise ValueError(f"{name} has width {w} but the embed dim is {dim}: the residual "
                                 f"stream must keep one width (set 'patch_embed')")
        self._in_channels = in_channels
        self.patch_size, self.patch_stride = patch_size, stride

        self.bn0 = nn.BatchNorm2d(frontend.n_mels)
        self.patch_embed = nn.Conv2d(in_channels, dim, kernel_size=patch_size, stride=stride)
        max_samples = frontend.clip_samples or int(round(10.0 * frontend.sample_rate))
        self.grid = (self._grid_len(frontend.num_frames(max_samples)),
                     self._grid_len(frontend.n_mels))
        self.pos_embed = nn.Parameter(torch.zeros(1, dim, *self.grid))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_drop = nn.Dropout(dropout)
        layers = []
        for i in range(depth):
            key = f"blocks.{i}.linear1"
            hidden = (int(widths[key]) if widths and key in widths
                      else max(1, int(round(mlp_ratio * dim))))
            layers.append(_EncoderLayer(dim, num_heads, dim_feedforward=hidden, dropout=dropout,
                                        activation="gelu", batch_first=True, norm_first=True))
        self.blocks = nn.ModuleList(layers)
        self.norm = nn.LayerNorm(dim)
        self.fc_out = nn.Linear(dim, num_classes)
        self.init_weights()

    def _grid_len(self, n: int) -> int:
        return (max(n, self.patch_size) - self.patch_size) // self.patch_stride + 1

    def init_weights(self) -> None:
        """ViT-style: truncated normal (std 0.02) for tokens, positions and linears, zero biases;
        attention in-projections keep torch's Xavier init."""
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        for mod in self.modules():
            if isinstance(mod, nn.Linear):
                nn.init.trunc_normal_(mod.weight, std=0.02)
                if mod.bias is not None:
                    nn.init.zeros_(mod.bias)

    @property
    def in_channels(self) -> int:
        return self._in_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # As the base class, except that SpecAugment runs inside `classify`, after bn0.
        if x.ndim == 2:
            x = self.features(x)
        elif x.ndim != 4:
            raise ValueError(f"expected a waveform (batch, samples) or features (batch, channels, "
                             f"frames, mels), got shape {tuple(x.shape)}")
        return self.classify(x)

    def _positions(self, grid_t: int, grid_m: int) -> torch.Tensor:
        pos = self.pos_embed
        if grid_m != pos.shape[3]:
            pos = F.interpolate(pos, size=(pos.shape[2], grid_m), mode="bilinear",
                                align_corners=False)
        if grid_t <= pos.shape[2]:
            pos = pos[:, :, :grid_t]
        else:
            pos = F.interpolate(pos, size=(grid_t, grid_m), mode="bilinear", align_corners=False)
        return pos.flatten(2).transpose(1, 2)  # (1, grid_t * grid_m, D)

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != self._in_channels or x.shape[3] != self.bn0.num_features:
            raise ValueError(f"expected features (batch, {self._in_channels}, frames, "
                             f"{self.bn0.num_features}), got shape {tuple(x.shape)}")
        x = self.bn0(x.transpose(1, 3)).transpose(1, 3)
        x = self.spec_augment(x)
        pad_t = max(0, self.patch_size - x.shape[2])
        pad_m = max(0, self.patch_size - x.shape[3])
        if pad_t or pad_m:
            x = F.pad(x, (0, pad_m, 0, pad_t))
        x = self.patch_embed(x)  # (B, D, grid_t, grid_m)
        tokens = x.flatten(2).transpose(1, 2) + self._positions(x.shape[2], x.shape[3])
        cls = self.cls_token.expand(x.shape[0], -1, -1)
        tokens = self.pos_drop(torch.cat([cls, tokens], dim=1))
        for block in self.blocks:
            tokens = block(tokens)
        return self.fc_out(self.norm(tokens[:, 0]))


@register_model("ast-tiny", "Small AST-style patch Transformer (dim 192, 3 heads, depth 4, ~2 M)")
def ast_tiny(num_classes: int, frontend: FrontEndConfig, widths: dict[str, int] | None = None,
             **kwargs: Any) -> ASTTiny:
    return ASTTiny(num_classes, frontend, widths, **kwargs)
