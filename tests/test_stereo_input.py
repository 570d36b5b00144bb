"""Stereo audio end to end for the quaternion (mid, side, left, right) input: the cache keeps both
channels, the no-cache path agrees with it, mono caches keep their key, and a quaternion model
trains on a stereo folder tree whose classes differ ONLY in which channel carries the sound."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile as sf

from audioprune.data.cache import AudioCache, AudioSource
from audioprune.data.registry import load_dataset
from audioprune.runs.data import DataSpec, prepare_data
from audioprune.runs.run_dir import load_model
from audioprune.runs.train import train_run
from audioprune.train.fit import TrainConfig

SR = 8000
FRONTEND = {"sample_rate": SR, "n_fft": 256, "win_length": 256, "hop_length": 80, "n_mels": 32,
            "fmin": 0.0, "fmax": 4000.0, "clip_seconds": 0.5, "channels": "stereo"}


def _stereo_tree(root: Path, per_class: int = 6) -> Path:
    """left/ holds tones in the left channel only, right/ in the right only: a mono mix-down
    cannot tell the two classes apart, (mid, side, left, right) can."""
    rng = np.random.default_rng(0)
    t = np.arange(SR // 2) / SR
    for label, side in (("left", 0), ("right", 1)):
        (root / label).mkdir(parents=True)
        for k in range(per_class):
            tone = 0.5 * np.sin(2 * np.pi * rng.uniform(300, 1500) * t)
            wave = np.zeros((len(t), 2))
            wave[:, side] = tone
            sf.write(root / label / f"{k}.wav", wave, SR, subtype="PCM_16")
    return root


def test_cache_keeps_both_channels_and_matches_decoding(tmp_path: Path) -> None:
    root = _stereo_tree(tmp_path / "data")
    index = load_dataset("folder", root, seed=0)
    clips = [c for part in index.splits.values() for c in part]
    cache = AudioCache(index, SR, tmp_path / "cache", root, channels=2)
    cache.build(clips, progress=False)
    mono = AudioCache(index, SR, tmp_path / "cache", root)
    assert cache.dir != mono.dir and "-2ch-" in cache.dir.name and "ch-" not in mono.dir.name
    source = AudioSource(index, SR, channels=2)
    for clip in clips:
        cached, decoded = cache.get(clip), source.get(clip)
        assert cached.shape == decoded.shape == (2, SR // 2)
        np.testing.assert_allclose(cached, decoded, atol=1.0 / 32767)
        silent = 1 if clip.targets[0] == index.class_names.index("left") else 0
        assert np.abs(cached[silent]).max() == 0.0 and np.abs(cached[1 - silent]).max() > 0.4


def test_a_mono_file_is_duplicated_to_both_channels(tmp_path: Path) -> None:
    root = tmp_path / "data"
    (root / "a").mkdir(parents=True)
    (root / "b").mkdir(parents=True)
    tone = 0.3 * np.sin(np.arange(SR // 2) / SR * 2 * np.pi * 440)
    for k in range(3):
        sf.write(root / "a" / f"{k}.wav", tone, SR)
        sf.write(root / "b" / f"{k}.wav", tone, SR)
    index = load_dataset("folder", root, seed=0)
    wave = AudioSource(index, SR, channels=2).get(index.splits["train"][0])
    assert wave.shape == (2, SR // 2) and np.array_equal(wave[0], wave[1])


def test_quaternion_model_trains_on_stereo_tree(tmp_path: Path) -> None:
    """The two classes differ only in the channel that carries the tone: the quaternion model on
    (mid, side, left, right) separates them on every test clip; a model on the mono mix-down,
    which cannot see the difference, stays at chance."""
    root = _stereo_tree(tmp_path / "data", per_class=20)
    spec = DataSpec("folder", str(root), frontend=FRONTEND, cache_dir=str(tmp_path / "cache"))
    bundle = prepare_data(spec, progress=False)
    wave, _ = bundle.train[0]
    assert tuple(wave.shape) == (2, SR // 2)
    out = tmp_path / "run"
    cfg = TrainConfig(epochs=15, batch_size=4, lr=3e-3, progress=False)
    metrics = train_run("qdcase21net", {}, spec, cfg, out)
    assert metrics["num_examples"] == len(bundle.test) == 8
    assert metrics["accuracy"] == 1.0
    mono = DataSpec("folder", str(root), frontend={**FRONTEND, "channels": "mono"},
                    cache_dir=str(tmp_path / "cache"))
    assert train_run("dcase21net", {"width": 0.5}, mono, cfg, tmp_path / "mono")["accuracy"] <= 0.5
    model, info = load_model(out)
    assert info["frontend"]["channels"] == "stereo"
    features = model.eval().features(wave.unsqueeze(0))
    assert tuple(features.shape[:2]) == (1, 4)
    assert json.loads((out / "model.json").read_text())["frontend"]["channels"] == "stereo"
