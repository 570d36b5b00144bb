"""The built-in synthetic dataset: deterministic, balanced, well-formed, learnable, not trivial."""

from __future__ import annotations

import hashlib
import pickle
import subprocess
import sys
from collections import Counter

import numpy as np
import pytest
import torch
from scipy.ndimage import uniform_filter1d

from audioprune.audio.frontend import LogMel
from audioprune.data.datasets.synthetic import CLASS_NAMES, load_synthetic, synthesize
from audioprune.data.registry import get_dataset_info, list_datasets, load_dataset
from audioprune.data.types import Clip
from audioprune.errors import UserError


@pytest.fixture(scope="module")
def small():
    return load_dataset("synthetic", split="small", seed=0)


def test_registry_lists_it_without_root():
    assert "synthetic" in [d.name for d in list_datasets()]
    info = get_dataset_info("synthetic")
    assert not info.needs_root
    fe = info.frontend
    got = (fe.sample_rate, fe.n_fft, fe.hop_length, fe.n_mels, fe.fmin, fe.fmax, fe.clip_seconds)
    assert got == (16000, 512, 160, 64, 50, 8000, 1.0)


def test_load_without_root_default_sizes():
    ds = load_dataset("synthetic")
    assert ds.name == "synthetic" and ds.task == "single-label" and ds.split_name == "default"
    assert {k: len(v) for k, v in ds.splits.items()} == {"train": 800, "val": 200, "test": 400}
    assert ds.class_names == CLASS_NAMES and ds.num_classes == 10 and len(set(CLASS_NAMES)) == 10
    assert "tone" in ds.class_names and "chirp_up" in ds.class_names
    assert ds.render is not None and ds.sample_rate == 16000
    keys = [c.key for clips in ds.splits.values() for c in clips]
    assert len(set(keys)) == len(keys)
    clips = [c for split in ds.splits.values() for c in split]
    assert all(c.path is None and len(c.targets) == 1 for c in clips)


def test_split_options():
    ds = load_dataset("synthetic", split="sizes:30,20,10")
    assert {k: len(v) for k, v in ds.splits.items()} == {"train": 30, "val": 20, "test": 10}
    for bad in ("huge", "sizes:1,2", "sizes:10,0,10", "sizes:a,b,c"):
        with pytest.raises(UserError):
            load_dataset("synthetic", split=bad)
    with pytest.raises(UserError):
        load_dataset("synthetic", test_fold=1)
    with pytest.raises(UserError):
        load_dataset("synthetic", subset="x")
    with pytest.raises(UserError):
        load_dataset("synthetic", seed=-1)


def test_balanced_classes(small):
    for name, size in (("train", 200), ("val", 50), ("test", 100)):
        counts = Counter(c.targets[0] for c in small.splits[name])
        assert counts == {k: size // 10 for k in range(10)}, name
    default = load_dataset("synthetic")
    assert set(Counter(c.targets[0] for c in default.splits["train"]).values()) == {80}


def test_deterministic_by_seed_and_order_independent(small):
    clips = small.splits["train"][:10] + small.splits["test"][:3]
    first = [small.render(c, 16000) for c in clips]
    again = load_synthetic(None, split="small", seed=0)
    # reverse order, other loader call: same audio
    other_order = list(reversed(again.splits["train"][:10] + again.splits["test"][:3]))
    second = [again.render(c, 16000) for c in other_order][::-1]
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    # the "small" clips are the first clips of "default"
    default = load_dataset("synthetic", seed=0)
    np.testing.assert_array_equal(default.render(default.splits["train"][5], 16000), first[5])
    # a different seed gives different clips (and different keys)
    other = load_dataset("synthetic", split="small", seed=1)
    assert other.splits["train"][0].key != clips[0].key
    for i in range(10):
        assert not np.allclose(other.render(other.splits["train"][i], 16000), first[i])
    # different splits and indices differ too
    assert not np.allclose(first[0], first[10])


@pytest.mark.slow  # a fresh interpreter imports torch: a few seconds
def test_identical_in_another_process():
    # what DataLoader workers rely on: the render callable pickles and a fresh interpreter
    # renders the same samples
    ds = load_dataset("synthetic", split="small", seed=4)
    render = pickle.loads(pickle.dumps(ds.render))
    clips = [ds.splits["train"][i] for i in (0, 7, 13)]
    here = hashlib.sha256(b"".join(render(c, 16000).tobytes() for c in clips)).hexdigest()
    code = ("import hashlib; from audioprune.data.registry import load_dataset; "
            "ds = load_dataset('synthetic', split='small', seed=4); "
            "print(hashlib.sha256(b''.join(ds.render(ds.splits['train'][i], 16000).tobytes() "
            "for i in (0, 7, 13))).hexdigest())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == here


def test_render_from_key_alone():
    clip = Clip(key="synthetic/s3/val/00017", path=None, targets=(7,))
    np.testing.assert_array_equal(load_dataset("synthetic").render(clip, 8000),
                                  synthesize(3, "val", 17, 8000))
    with pytest.raises(ValueError):
        synthesize(0, "train", 0, 1000)
    from audioprune.data.datasets.synthetic import render_clip
    with pytest.raises(ValueError):
        render_clip(Clip(key="recordings/0_george_0.wav", path=None, targets=(0,)), 16000)


@pytest.mark.parametrize("sr", [16000, 8000, 22050])
def test_lengths_finite_and_peak(small, sr):
    for c in small.splits["val"][:20]:  # two clips of every class
        x = small.render(c, sr)
        assert x.dtype == np.float32 and x.shape == (sr,)
        assert np.isfinite(x).all()
        peak = np.abs(x).max()
        assert 0.05 < peak <= 1.0


def test_rate_changes_samples_not_the_event():
    # tone (class 0) at two rates: the dominant frequency is the same
    def peak_hz(x, sr):
        spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
        return np.fft.rfftfreq(len(x), 1 / sr)[np.argmax(spec)]
    compared = 0
    for index in (0, 10, 20):
        a, b = synthesize(0, "train", index, 16000), synthesize(0, "train", index, 44100)
        if peak_hz(a, 16000) < 3000:  # well below Nyquist at both rates
            assert abs(peak_hz(a, 16000) - peak_hz(b, 44100)) < 5
            compared += 1
    assert compared >= 2


def _features(ds, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Simple, pitch- and onset-invariant log-mel statistics per clip: the coarse 2-D modulation
    spectrum (|FFT| over time and mel; keeps sweep direction), the mean and temporal std of the
    level-normalised mel bands (coarse), and three statistics of the loudest band's trajectory
    (detrended ripple of its level: tremolo; spread of the peak band: vibrato, sweeps; the loud
    fraction of the clip)."""
    fe = get_dataset_info("synthetic").frontend
    clips = ds.splits[split]
    wave = torch.from_numpy(np.stack([ds.render(c, fe.sample_rate) for c in clips]))
    with torch.no_grad():
        mel = LogMel(fe)(wave)[:, 0].numpy().astype(np.float64)  # (clips, frames, mels)
    n = len(clips)
    mel = mel - mel.mean(axis=(1, 2), keepdims=True)
    floored = np.maximum(mel, np.median(mel, axis=(1, 2), keepdims=True))
    spec2 = np.abs(np.fft.rfft2(floored, axes=(1, 2)))  # (clips, temporal mod, spectral mod)
    spec2 = np.concatenate([spec2[:, -20:], spec2[:, :20]], axis=1)[:, :, :16]
    modulation = np.log(spec2 + 1e-3).reshape(n, 10, 4, 4, 4).mean(axis=(2, 4)).reshape(n, -1)
    bands = [mel.mean(1).reshape(n, 16, 4).mean(2), mel.std(1).reshape(n, 16, 4).mean(2)]

    main = mel.mean(1).argmax(1)
    level = mel[np.arange(n), :, main]  # (clips, frames)
    loud = level > level.max(1, keepdims=True) - 20
    core = uniform_filter1d(loud.astype(float), 9, axis=1) > 0.99  # loud, away from the edges
    count = np.maximum(core.sum(1), 1)
    t = np.arange(level.shape[1])[None, :]
    t_mean, l_mean = (t * core).sum(1) / count, (level * core).sum(1) / count
    dt, dl = t - t_mean[:, None], level - l_mean[:, None]
    slope = (dt * dl * core).sum(1) / np.maximum((dt ** 2 * core).sum(1), 1e-9)
    ripple = np.sqrt(((dl - slope[:, None] * dt) ** 2 * core).sum(1) / count)  # detrended std
    peak = mel.argmax(2).astype(float)
    mean_peak = (peak * core).sum(1) / count
    spread = np.sqrt(((peak - mean_peak[:, None]) ** 2 * core).sum(1) / count)
    track = np.stack([ripple, spread, loud.mean(1)], 1)
    labels = np.array([c.targets[0] for c in clips])
    return np.concatenate([modulation, *bands, track], axis=1), labels


def test_learnable_but_not_saturated():
    """A linear classifier on simple log-mel statistics beats chance (10 %) by far but stays well
    short of perfect (the tonal classes overlap by design); yet every class's mean statistics
    differ significantly from every other class's."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    ds = load_dataset("synthetic", split="sizes:600,1,200", seed=0)
    xtr, ytr = _features(ds, "train")
    xte, yte = _features(ds, "test")
    clf = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=3000))
    clf.fit(xtr, ytr)
    pred = clf.predict(xte)
    acc = float((pred == yte).mean())
    assert 0.4 < acc < 0.9, acc
    recall = np.array([(pred[yte == k] == k).mean() for k in range(10)])
    assert (recall > 0.1).all(), dict(zip(CLASS_NAMES, recall))  # no class is invisible

    # every pair of classes: some statistic's class means differ by > 3.5 standard errors
    # (60 clips per class; with identical distributions that happens with p < 0.05)
    z = StandardScaler().fit(xtr).transform(xtr)
    mu = np.stack([z[ytr == k].mean(0) for k in range(10)])
    se2 = np.stack([z[ytr == k].var(0) / (ytr == k).sum() for k in range(10)])
    for i in range(10):
        for j in range(i + 1, 10):
            t = (np.abs(mu[i] - mu[j]) / np.sqrt(se2[i] + se2[j] + 1e-12)).max()
            assert t > 3.5, (CLASS_NAMES[i], CLASS_NAMES[j], t)
