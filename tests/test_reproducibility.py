"""Same seed, data and settings -> identical metrics and weights on CPU; the run directory
records the package and torch versions, the settings and a hash of the data file list."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

import audioprune
from audioprune.data.fingerprint import data_list_hash
from audioprune.data.registry import load_dataset
from audioprune.fileio import read_tensors
from audioprune.runs.data import DataSpec
from audioprune.runs.train import train_run
from audioprune.train.fit import TrainConfig

TIMES = {"train_seconds", "seconds"}


def _strip(obj: object) -> object:
    if isinstance(obj, dict):
        return {k: _strip(v) for k, v in obj.items() if k not in TIMES}
    if isinstance(obj, list):
        return [_strip(v) for v in obj]
    return obj


def _train(out: Path, seed: int) -> dict:
    data = DataSpec("synthetic", options={"split": "sizes:20,10,10"})
    cfg = TrainConfig(epochs=2, batch_size=10, lr=3e-3, seed=seed, progress=False)
    train_run("dcase21net", {"width": 0.25}, data, cfg, out)
    return json.loads((out / "metrics.json").read_text())


def test_same_seed_gives_identical_metrics_and_weights(tmp_path: Path) -> None:
    a, b = _train(tmp_path / "a", 0), _train(tmp_path / "b", 0)
    assert _strip(a) == _strip(b)
    wa, wb = read_tensors(tmp_path / "a" / "model.safetensors"), read_tensors(tmp_path / "b" / "model.safetensors")
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    c = _train(tmp_path / "c", 1)  # the comparison can fail: another seed trains differently
    assert [h["train_loss"] for h in c["history"]] != [h["train_loss"] for h in a["history"]]

    config = json.loads((tmp_path / "a" / "config.json").read_text())
    assert config["environment"]["audioprune"] == audioprune.__version__
    assert config["environment"]["torch"] == torch.__version__
    # the CPU and the thread count change rounding, so a run says which it had
    assert config["environment"]["threads"] == torch.get_num_threads()
    assert config["environment"]["cpu"] == audioprune.cpu_model()
    assert config["train"]["seed"] == 0 and config["train"]["lr"] == 3e-3
    assert config["data"]["options"] == {"split": "sizes:20,10,10"}
    assert a["environment"] == config["environment"]
    assert a["data_files"] == 40 and len(a["data_list_sha256"]) == 64
    assert c["data_list_sha256"] != a["data_list_sha256"]  # seed 1 renders other clips (other keys)


def test_data_list_hash_tracks_files_labels_and_splits(tmp_path: Path) -> None:
    rec = tmp_path / "recordings"
    rec.mkdir()
    for d in range(10):
        for i in range(7):
            sf.write(rec / f"{d}_anna_{i}.wav", np.full(800 + i, 0.1, np.float32), 8000)
    base = data_list_hash(load_dataset("fsdd", tmp_path))
    assert data_list_hash(load_dataset("fsdd", tmp_path)) == base  # stable
    assert data_list_hash(load_dataset("fsdd", tmp_path, seed=1)) != base  # another validation draw
    sf.write(rec / "3_anna_6.wav", np.full(900, 0.1, np.float32), 8000)  # a replaced file
    changed = data_list_hash(load_dataset("fsdd", tmp_path))
    assert changed != base
    sf.write(rec / "3_anna_7.wav", np.full(900, 0.1, np.float32), 8000)  # one more file
    assert data_list_hash(load_dataset("fsdd", tmp_path)) not in (base, changed)


def test_cpu_model_names_the_processor_not_the_architecture(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """platform.processor() is empty on Linux and platform.machine() says only x86_64: the name
    two machines' runs differ by is the model name in /proc/cpuinfo, and without one it falls
    back to what platform knows rather than failing."""
    from audioprune.measure import latency

    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: GenuineIntel\n"
                       "model name\t: Intel(R) Xeon(R) Processor\nflags\t: fpu\n")
    real_path = latency.Path
    monkeypatch.setattr(latency, "Path", lambda p: cpuinfo if p == "/proc/cpuinfo" else real_path(p))
    assert latency.cpu_model() == "Intel(R) Xeon(R) Processor"
    cpuinfo.unlink()  # no /proc (macOS, Windows): the platform's name
    monkeypatch.setattr(latency.platform, "processor", lambda: "arm")
    assert latency.cpu_model() == "arm"
