"""Read PANNs' released checkpoints (Kong et al. 2020) into audioprune's CNN6 / CNN10 / CNN14.

Widths come from the checkpoint's tensors, so a narrower or pruned model saved in PANNs' format
imports as well; the layer set and kernel sizes must be the variant's.

PANNs publishes `Cnn14_mAP=0.431.pth`, `Cnn10_mAP=0.380.pth`, `Cnn6_mAP=0.343.pth`,
`Cnn14_16k_mAP=0.438.pth`, ...: `torch.save` dicts with the state dict under "model". They are
pickles, so they are read with ``torch.load(..., weights_only=True)`` only - tensors and plain
containers (and numpy arrays, as data); anything that would need to run code to unpickle is
refused and nothing of it is executed.

Keys. PANNs' `conv_block{i}.conv{1,2}` / `conv_block{i}.bn{1,2}` become our `block{i}.conv{1,2}` /
`block{i}.bn{1,2}`, `bn0` and `fc1` keep their names, `fc_audioset` becomes our `fc_out`. Its
front end (torchlibrosa's `spectrogram_extractor.stft.conv_real/conv_imag` DFT kernels and
`logmel_extractor.melW`) holds no learned weights; instead of copying it we CHECK it against the
front end the variant says it was trained with (a Hann-window DFT of n_fft points, librosa's mel
bank for its rate, mels and band): a checkpoint of another variant or front end is refused with
the key and the difference named. Shapes are checked key by key before anything is loaded.

Front end. The imported model uses `log_mode="clamp"` (10 log10(max(power, 1e-10)), torchlibrosa's
power_to_db with ref 1, amin 1e-10, top_db None), centre padding with reflection, a periodic Hann
window: exactly PANNs' features (the equivalence tests compare the clip-wise outputs with PANNs'
own Cnn14 on real recordings).
"""

from __future__ import annotations

import csv
import math
import pickle
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import librosa
import numpy as np
import torch

from audioprune.audio.frontend import FrontEndConfig
from audioprune.errors import UserError
from audioprune.models.base import AudioClassifier
from audioprune.models.registry import create_model

__all__ = ["PANNS_VARIANTS", "PannsVariant", "audioset_class_names", "load_panns",
           "map_panns_state", "read_checkpoint"]


@dataclass(frozen=True)
class PannsVariant:
    """A released PANNs model: our architecture and the front end it was trained with."""

    arch: str
    frontend: FrontEndConfig
    checkpoint: str  # the released file's name, for messages


def _frontend(sample_rate: int, n_fft: int, hop: int, fmax: float) -> FrontEndConfig:
    return FrontEndConfig(sample_rate=sample_rate, n_fft=n_fft, hop_length=hop, n_mels=64,
                          fmin=50.0, fmax=fmax, clip_seconds=10.0, log_mode="clamp")


PANNS_VARIANTS: dict[str, PannsVariant] = {
    "cnn14": PannsVariant("cnn14", _frontend(32000, 1024, 320, 14000.0), "Cnn14_mAP=0.431.pth"),
    "cnn10": PannsVariant("cnn10", _frontend(32000, 1024, 320, 14000.0), "Cnn10_mAP=0.380.pth"),
    "cnn6": PannsVariant("cnn6", _frontend(32000, 1024, 320, 14000.0), "Cnn6_mAP=0.343.pth"),
    "cnn14-16k": PannsVariant("cnn14", _frontend(16000, 512, 160, 8000.0), "Cnn14_16k_mAP=0.438.pth"),
    "cnn14-8k": PannsVariant("cnn14", _frontend(8000, 256, 80, 4000.0), "Cnn14_8k_mAP=0.416.pth"),
}

_BLOCK = re.compile(r"^conv_block(\d+)\.(conv|bn)(\d)\.(.+)$")
_FRONT_END_KEYS = ("spectrogram_extractor.stft.conv_real.weight",
                   "spectrogram_extractor.stft.conv_imag.weight", "logmel_extractor.melW")


def audioset_class_names() -> list[str]:
    """The 527 AudioSet class names in PANNs' order (shipped with the package: CC BY 4.0,
    Google's AudioSet ontology; see audioset_labels.NOTICE.txt)."""
    text = resources.files("audioprune.models").joinpath("audioset_labels.csv").read_text()
    rows = list(csv.DictReader(text.splitlines()))
    return [r["display_name"] for r in sorted(rows, key=lambda r: int(r["index"]))]


def read_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """The state dict of a PANNs checkpoint (or of a plain state-dict file), read without running
    any code: ``torch.load(weights_only=True)``; numpy arrays are accepted as data."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist")
    try:
        with torch.serialization.safe_globals(_numpy_globals()):
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, ValueError, EOFError, AttributeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{path} is not a checkpoint audioprune can read safely: it needs more "
                        f"than tensors and plain containers to unpickle ({first}). audioprune "
                        f"never runs code from a checkpoint; convert it to a state dict of "
                        f"tensors (or safetensors) where you trust it") from None
    state = obj.get("model", obj) if isinstance(obj, dict) else None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"{path}: expected PANNs' {{'model': state_dict}} (or a state dict of "
                        f"tensors), found {type(obj).__name__} with keys "
                        f"{sorted(obj)[:8] if isinstance(obj, dict) else '-'}")
    return dict(state)


def _numpy_globals() -> list[Any]:
    """numpy's array reconstruction, allowed as data (no code path runs user code)."""
    out: list[Any] = [np.ndarray, np.dtype]
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        try:
            out.append(getattr(__import__(mod, fromlist=["_reconstruct"]), "_reconstruct"))
        except (ImportError, AttributeError):
            pass
    out += [type(np.dtype(t)) for t in ("float32", "float64", "int64", "int32", "uint8", "bool")]
    return out


def map_panns_state(state: dict[str, torch.Tensor], variant: str) -> dict[str, torch.Tensor]:
    """PANNs' keys -> ours (see the module docs); the front-end buffers are checked and dropped."""
    v = PANNS_VARIANTS[variant]
    check_front_end(state, v)
    out: dict[str, torch.Tensor] = {}
    unknown = []
    for key, value in state.items():
        if key in _FRONT_END_KEYS:
            continue
        m = _BLOCK.match(key)
        if m:
            out[f"block{m.group(1)}.{m.group(2)}{m.group(3)}.{m.group(4)}"] = value
        elif key.startswith(("bn0.", "fc1.")):
            out[key] = value
        elif key.startswith("fc_audioset."):
            out["fc_out." + key[len("fc_audioset."):]] = value
        else:
            unknown.append(key)
    if unknown:
        raise UserError(f"the checkpoint holds keys PANNs' {v.arch} does not have: "
                        f"{', '.join(unknown[:6])}{' ...' if len(unknown) > 6 else ''}; is it "
                        f"another model? (--model {variant})")
    return out


def _dft_kernels(n_fft: int) -> tuple[np.ndarray, np.ndarray]:
    """torchlibrosa's STFT as a conv: real and imaginary DFT rows times a periodic Hann window,
    shape (n_fft // 2 + 1, 1, n_fft)."""
    window = librosa.filters.get_window("hann", n_fft, fftbins=True)
    n = np.arange(n_fft)
    k = np.arange(n_fft // 2 + 1)[:, None]
    angle = 2 * math.pi * k * n / n_fft
    return (np.cos(angle) * window)[:, None, :], (-np.sin(angle) * window)[:, None, :]


def check_front_end(state: dict[str, torch.Tensor], v: PannsVariant) -> None:
    """The checkpoint's torchlibrosa buffers must be the front end of variant `v`."""
    fe = v.frontend
    real, imag = _dft_kernels(fe.n_fft)
    mel = librosa.filters.mel(sr=fe.sample_rate, n_fft=fe.n_fft, n_mels=fe.n_mels, fmin=fe.fmin,
                              fmax=fe.fmax).T
    setting = (f"{fe.sample_rate} Hz, window {fe.n_fft}, {fe.n_mels} mels, "
               f"{fe.fmin:g}-{fe.fmax:g} Hz")
    for key, expected in zip(_FRONT_END_KEYS, (real, imag, mel)):
        if key not in state:
            continue  # a state dict saved without the front end: nothing to compare
        got = state[key].detach().double().numpy()
        if got.shape != expected.shape:
            raise UserError(f"checkpoint key {key} has shape {tuple(got.shape)}, but "
                            f"{v.checkpoint}'s front end ({setting}) has {expected.shape}: "
                            f"is it another variant?")
        diff = float(np.abs(got - expected).max())
        if diff > 1e-4:
            raise UserError(f"checkpoint key {key} differs from {v.checkpoint}'s front end "
                            f"({setting}) by up to {diff:.3g}: trained with another front end?")


def load_panns(path: str | Path, variant: str) -> tuple[AudioClassifier, list[str]]:
    """Our model of `variant` with a PANNs checkpoint's weights, and its class names."""
    if variant not in PANNS_VARIANTS:
        raise UserError(f"unknown PANNs model {variant!r}; choose one of "
                        f"{', '.join(PANNS_VARIANTS)}")
    v = PANNS_VARIANTS[variant]
    state = map_panns_state(read_checkpoint(path), variant)
    if "fc_out.weight" not in state:
        raise UserError(f"{path}: no fc_audioset.weight (the classifier); is it a PANNs "
                        f"{v.arch} checkpoint?")
    num_classes = int(state["fc_out.weight"].shape[0])
    # widths from the checkpoint itself, so a checkpoint of a narrower (or pruned) model in PANNs'
    # format imports too; kernel sizes and the layer set still have to be PANNs' own
    widths = {k[: -len(".weight")]: int(t.shape[0]) for k, t in state.items()
              if re.match(r"^(block\d+\.conv\d|fc1)\.weight$", k)}
    try:
        model = create_model(v.arch, num_classes, frontend=v.frontend, widths=widths)
    except (ValueError, RuntimeError) as exc:
        raise UserError(f"{path}: its layer widths do not build PANNs' {v.arch} ({exc})") from None
    ours = model.state_dict()
    body = {k: t for k, t in ours.items() if not k.startswith("frontend.")}
    for key, tensor in state.items():
        if key in ours and tuple(tensor.shape) != tuple(ours[key].shape):
            raise UserError(f"checkpoint key {_panns_name(key)} has shape {tuple(tensor.shape)}; "
                            f"PANNs' {v.arch} has {tuple(ours[key].shape)} there: another model? "
                            f"(--model {variant})")
    missing = sorted(set(body) - set(state))
    extra = sorted(set(state) - set(body))
    if missing or extra:
        names = [_panns_name(k) for k in (missing or extra)[:4]]
        raise UserError(f"{path} {'lacks' if missing else 'has extra'} "
                        f"{len(missing or extra)} weight(s) for PANNs' {v.arch}, e.g. "
                        f"{', '.join(names)}: is it another model? (--model {variant})")
    model.load_state_dict(state, strict=False)
    names = audioset_class_names() if num_classes == 527 else \
        [f"class_{i}" for i in range(num_classes)]
    return model.eval(), names


def _panns_name(key: str) -> str:
    """Our key as PANNs names it, for messages."""
    m = re.match(r"^block(\d+)\.(conv|bn)(\d)\.(.+)$", key)
    if m:
        return f"conv_block{m.group(1)}.{m.group(2)}{m.group(3)}.{m.group(4)}"
    return key.replace("fc_out.", "fc_audioset.")
