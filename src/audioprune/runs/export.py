"""`audioprune export RUN`: a run's model to ONNX, its parity checked on the run's own test clips."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import torch

from audioprune.audio.clip import fit_length
from audioprune.errors import UserError
from audioprune.fileio import atomic_write, read_json
from audioprune.measure.onnx_export import (
    DEFAULT_OPSET,
    PARITY_TOL,
    check_parity,
    clip_samples,
    export_onnx,
)
from audioprune.models.base import AudioClassifier
from audioprune.runs.run_dir import CONFIG_JSON, load_model


def _data_spec(run_dir: Path, data_root: str | None) -> Any:
    from audioprune.runs.data import DataSpec

    path = run_dir / CONFIG_JSON
    saved = read_json(path).get("data") if path.is_file() else None
    if not saved:
        raise UserError(f"{path} names no dataset")
    known = {f.name for f in fields(DataSpec)}
    spec = DataSpec(**{k: v for k, v in saved.items() if k in known})
    if data_root is not None:
        spec.data_root = data_root
    return spec


def sample_inputs(run_dir: str | Path, model: AudioClassifier, n: int = 8,
                  data_root: str | None = None) -> tuple[torch.Tensor, str]:
    """Up to `n` waveforms (n, samples) from the run's test split (from its config.json; the
    first clips, centre-cropped as in evaluation) and where they came from. When the data
    cannot be read, `n` seeded noise clips and the reason."""
    from audioprune.data.cache import AudioSource
    from audioprune.data.registry import load_dataset

    num_samples = clip_samples(model)
    try:
        spec = _data_spec(Path(run_dir), data_root)
        index = load_dataset(spec.dataset, spec.data_root, **spec.options)
        source = AudioSource(index, model.frontend_cfg.sample_rate)
        clips = index.splits["test"][:n]
        if not clips:
            raise UserError(f"{index.describe()}: empty test split")
        waves = [fit_length(source.get(c), num_samples, "centre") for c in clips]
        where = f"{len(waves)} clips of {index.name} [{index.split_name}] test"
        return torch.from_numpy(np.stack(waves).astype(np.float32)), where
    except UserError as exc:
        gen = torch.Generator().manual_seed(0)
        noise = 0.1 * torch.randn(n, num_samples, generator=gen)
        return noise, f"{n} clips of seeded noise (run's data not readable: {exc})"


def export_run(run_dir: str | Path, out: str | Path, *, opset: int = DEFAULT_OPSET,
               with_frontend: bool = False, data_root: str | None = None, num_inputs: int = 8,
               tol: float = PARITY_TOL) -> dict[str, Any]:
    """Export the run's model to `out` after checking parity on real inputs; returns what was
    done: path, size_bytes, opset, input, max_abs_diff, inputs (their source), quaternion."""
    run_dir, out = Path(run_dir), Path(out)
    model, info = load_model(run_dir)
    model.eval()
    data = export_onnx(model, opset=opset, with_frontend=with_frontend)
    waves, where = sample_inputs(run_dir, model, num_inputs, data_root)
    with torch.no_grad():
        feats = model.features(waves)
        x = waves if with_frontend else feats
        reference = model.classify(feats).numpy()
    diff = check_parity(data, reference, x.numpy(), tol)
    atomic_write(out, lambda p: p.write_bytes(data))
    return {"path": str(out), "size_bytes": out.stat().st_size, "opset": opset,
            "input": "waveform" if with_frontend else "features",
            "input_shape": ["batch", *x.shape[1:]], "max_abs_diff": diff, "tolerance": tol,
            "inputs": where, "arch": info.get("arch"),
            "fused": "quaternion layers made real, batch norm folded into convs"}
