"""Tag or classify audio files with a run's model: `audioprune predict RUN FILE...`.

Any run works - imported (PANNs), trained, pruned, distilled, quaternion: the model takes the
waveform at its own sample rate (files are resampled with soxr) through its own front end.

Length. A model is trained on clips of a fixed length (`clip_seconds`, e.g. 10 s for PANNs, 1 s
for FSDD models). A shorter file is zero-padded to it, centred, exactly as evaluation does. A
longer file is cut into windows of that length with a hop of half a window (`hop_seconds`), the
last window ending at the file's end, and the windows' class probabilities are POOLED: by their
mean (default: a label present throughout scores high, a brief event scores by its share) or
their max (`pool="max"`: a label scores as high as in its best window - what one wants for
short events in long recordings). Models trained on full-length clips (`clip_seconds` None) get
the whole file at once.

Scores: sigmoid per class for multi-label runs (AudioSet tagging), softmax for single-label
ones. Files that cannot be decoded are reported by name and skipped; a directory is refused
(pass its files).

Which model runs: a quantized run (`audioprune quantize`, model.json `precision: int8`) runs
its int8 model, model.int8.onnx, in ONNX Runtime on the features of the PyTorch front end -
what it deploys and what its metrics.json measured - never the fp32 weights it keeps beside
it; every other run its PyTorch model. :func:`model_description` says which, in words.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from audioprune.audio.clip import fit_length
from audioprune.audio.io import load_audio
from audioprune.errors import ArgumentError, AudioDecodeError, UserError
from audioprune.measure.quantize import INT8_ONNX
from audioprune.runs.run_dir import MODEL_WEIGHTS, load_model, read_model_info

__all__ = ["Prediction", "model_description", "predict_files", "predict_wave", "window_starts"]

POOLS = ("mean", "max")


@dataclass
class Prediction:
    """One file's result: its top classes (label, score), length and number of windows."""

    file: str
    seconds: float
    windows: int
    top: list[tuple[str, float]] = field(default_factory=list)
    scores: np.ndarray | None = None  # every class, for callers that want them

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "seconds": round(self.seconds, 3), "windows": self.windows,
                "top": [{"label": label, "score": round(score, 6)} for label, score in self.top]}


def window_starts(n: int, window: int, hop: int) -> list[int]:
    """Start samples of windows of `window` samples every `hop` over `n` samples, the last one
    ending exactly at n (so the file's end is always seen); [0] when n <= window."""
    if n <= window:
        return [0]
    starts = list(range(0, n - window + 1, hop))
    if starts[-1] != n - window:
        starts.append(n - window)
    return starts


def model_description(run: str | Path) -> str:
    """Which model `predict_files` runs for `run`, in words."""
    info = read_model_info(run)
    if info.get("precision") == "int8":
        return f"the int8 model {info.get('onnx') or INT8_ONNX} in ONNX Runtime"
    return f"the fp32 model {MODEL_WEIGHTS} in PyTorch"


def _int8_logits(run: Path, model: torch.nn.Module, info: dict[str, Any]
                 ) -> Callable[[torch.Tensor], torch.Tensor]:
    """waveforms -> logits through the PyTorch front end and the run's int8 ONNX model."""
    from audioprune.measure.latency import default_threads, ort_session

    path = run / (info.get("onnx") or INT8_ONNX)
    if not path.is_file():
        raise UserError(f"{path} not found: {run / 'model.json'} says the run is int8; restore "
                        f"the file or quantize the parent run again")
    session = ort_session(path.read_bytes(), default_threads())
    name = session.get_inputs()[0].name

    def logits(wave: torch.Tensor) -> torch.Tensor:
        feats = model.features(wave).float().cpu().numpy()  # type: ignore[operator]
        return torch.from_numpy(session.run(None, {name: feats})[0])
    return logits


@torch.no_grad()
def predict_wave(model: Callable[[torch.Tensor], torch.Tensor], wave: np.ndarray, task: str,
                 window: int | None, hop: int | None = None, pool: str = "mean",
                 batch_size: int = 16, device: torch.device | str | None = None
                 ) -> tuple[np.ndarray, int]:
    """Class probabilities of one waveform ((samples,) or (channels, samples)) pooled over its
    windows, and the number of windows. `model`: a module, or any waveforms -> logits callable
    (with `device`, where its inputs go)."""
    if pool not in POOLS:
        raise ArgumentError(f"unknown `pool` {pool!r}; choose from {', '.join(POOLS)}")
    n = wave.shape[-1]
    if window is None:
        chunks = [wave]
    elif n <= window:
        chunks = [fit_length(wave, window, "centre")]
    else:
        hop = hop or max(window // 2, 1)
        chunks = [wave[..., s:s + window] for s in window_starts(n, window, hop)]
    if device is None:
        params = model.parameters() if isinstance(model, torch.nn.Module) else iter(())
        device = next((p.device for p in params), torch.device("cpu"))
    probs = []
    for i in range(0, len(chunks), batch_size):
        x = torch.from_numpy(np.stack(chunks[i:i + batch_size])).to(device)
        logits = model(x).float()
        probs.append((torch.sigmoid(logits) if task == "multi-label"
                      else torch.softmax(logits, dim=-1)).cpu().numpy())
    p = np.concatenate(probs)
    return (p.mean(axis=0) if pool == "mean" else p.max(axis=0)), len(chunks)


def predict_files(run: str | Path, files: list[str | Path], top_k: int = 5, pool: str = "mean",
                  hop_seconds: float | None = None, device: str = "cpu"
                  ) -> tuple[list[Prediction], list[tuple[str, str]]]:
    """Predictions for `files` with the model of run directory `run`, and the files skipped
    (name, why)."""
    if top_k < 1:
        raise ArgumentError(f"`top_k` must be at least 1, got {top_k}")
    if hop_seconds is not None and hop_seconds <= 0:
        raise ArgumentError(f"`hop_seconds` must be positive, got {hop_seconds}")
    for f in files:
        if Path(f).is_dir():
            raise UserError(f"{f} is a directory; pass its audio files (e.g. {Path(f) / '*.wav'})")
    run = Path(run)
    model, info = load_model(run, device)
    model.eval()
    classify: Callable[[torch.Tensor], torch.Tensor] = model
    if info.get("precision") == "int8":
        classify = _int8_logits(run, model, info)
    fe = model.frontend_cfg
    labels, task = info["class_names"], info["task"]
    window = fe.clip_samples
    hop = int(round(hop_seconds * fe.sample_rate)) if hop_seconds else None
    stereo = fe.channels == "stereo"
    done, skipped = [], []
    for f in files:
        if not Path(f).is_file():
            skipped.append((str(f), f"{f}: {'a broken link' if Path(f).is_symlink() else 'no such file'}"))
            continue
        try:
            wave = load_audio(f, fe.sample_rate, mono=not stereo)
        except AudioDecodeError as exc:
            skipped.append((str(f), str(exc)))
            continue
        if stereo and wave.shape[0] == 1:
            wave = np.repeat(wave, 2, axis=0)
        scores, n_windows = predict_wave(classify, wave, task, window, hop, pool,
                                         device=torch.device(device))
        order = np.argsort(-scores, kind="stable")[: min(top_k, len(labels))]
        done.append(Prediction(str(f), wave.shape[-1] / fe.sample_rate, n_windows,
                               [(labels[i], float(scores[i])) for i in order], scores))
    return done, skipped
