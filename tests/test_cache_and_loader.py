"""The decoded-audio cache (reuse, partial rebuild, changed and broken files) and the samplers."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from audioprune.audio.io import load_audio
from audioprune.data.cache import AudioCache
from audioprune.data.loader import ClipDataset, ShardedShuffleSampler
from audioprune.data.registry import load_dataset


def _write_tree(root: Path, n_per_digit: int = 3) -> Path:
    rec = root / "recordings"
    rec.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for d in range(10):
        for i in range(n_per_digit):
            sf.write(rec / f"{d}_anna_{i}.wav", rng.uniform(-0.5, 0.5, 4000 + 100 * i), 8000)
    return root


def test_cache_matches_decoding_on_real_audio(fsdd_small: Path, tmp_path: Path) -> None:
    index = load_dataset("fsdd", fsdd_small)
    clips = [c for s in index.splits.values() for c in s]
    cache = AudioCache(index, 16000, tmp_path, fsdd_small)
    assert cache.build(clips, progress=False) == len(clips)
    for clip in clips[:20]:
        ref = load_audio(clip.path, 16000)
        got = cache.get(clip)
        assert got.shape == ref.shape
        assert np.abs(got - np.clip(ref, -1, 1)).max() <= 1.0 / 32767  # int16 storage
    # a second process-like instance finds everything on disk and decodes nothing
    again = AudioCache(index, 16000, tmp_path, fsdd_small)
    assert again.missing(clips) == [] and again.build(clips, progress=False) == 0


def test_cache_rebuilds_only_changed_or_missing_files(tmp_path: Path) -> None:
    root = _write_tree(tmp_path / "data")
    index = load_dataset("fsdd", root, val_fraction=0)
    clips = sorted((c for s in index.splits.values() for c in s), key=lambda c: c.key)
    cache = AudioCache(index, 8000, tmp_path / "cache", root)
    cache.build(clips[:10], progress=False)
    assert len(cache.missing(clips)) == len(clips) - 10
    # change one cached file: new content and size -> it is decoded again, the others are not
    changed = clips[0]
    sf.write(changed.path, np.full(3000, 0.25), 8000)
    os.utime(changed.path, ns=(1, 1))
    fresh = AudioCache(index, 8000, tmp_path / "cache", root)
    assert {c.key for c in fresh.missing(clips)} == {changed.key} | {c.key for c in clips[10:]}
    assert fresh.build(clips, progress=False) == len(clips) - 9
    np.testing.assert_allclose(fresh.get(changed), 0.25, atol=1e-4)
    assert len(fresh.get(changed)) == 3000


def test_cache_skips_broken_files_and_ignores_partial_chunks(tmp_path: Path) -> None:
    root = _write_tree(tmp_path / "data", 2)
    bad = root / "recordings" / "4_anna_0.wav"
    bad.write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk")
    index = load_dataset("fsdd", root, val_fraction=0)
    clips = [c for s in index.splits.values() for c in s]
    cache = AudioCache(index, 8000, tmp_path / "cache", root)
    cache.build(clips, progress=False)
    assert list(cache.failed) == ["recordings/4_anna_0.wav"] and "4_anna_0.wav" in cache.failed[
        "recordings/4_anna_0.wav"]
    assert len(cache.entries) == len(clips) - 1
    # a chunk whose data file was cut short (a killed build) is ignored, not half-read
    data = next(cache.dir.glob("chunk-*.i16"))
    data.write_bytes(data.read_bytes()[:100])
    assert AudioCache(index, 8000, tmp_path / "cache", root).entries == {}


def test_sharded_sampler_splits_global_batches_exactly() -> None:
    n, batch, world = 37, 8, 2
    single = ShardedShuffleSampler(n, seed=3)
    single.set_epoch(2)
    order = list(single)
    assert sorted(order) == list(range(n))
    ranks = []
    for r in range(world):
        s = ShardedShuffleSampler(n, seed=3, rank=r, world=world)
        s.set_epoch(2)
        ranks.append(list(s))
    local = batch // world
    for k in range(n // batch):
        union = sorted(ranks[0][k * local:(k + 1) * local] + ranks[1][k * local:(k + 1) * local])
        assert union == sorted(order[k * batch:(k + 1) * batch])
    other = ShardedShuffleSampler(n, seed=3)
    other.set_epoch(3)
    assert list(other) != order


def test_clip_dataset_crops_deterministically_per_epoch(fsdd_small: Path) -> None:
    index = load_dataset("fsdd", fsdd_small)
    clips = index.splits["train"][:5]

    class Direct:
        def get(self, clip):
            return load_audio(clip.path, 8000)

    ds = ClipDataset(clips, Direct(), "single-label", 10, 2000, "random", seed=1)
    a = [ds[i][0] for i in range(5)]
    assert all(len(w) == 2000 for w in a)
    assert [int(ds[i][1]) for i in range(5)] == [c.targets[0] for c in clips]
    assert all(torch.equal(x, ds[i][0]) for i, x in enumerate(a))
    ds.set_epoch(1)
    assert any(not torch.equal(x, ds[i][0]) for i, x in enumerate(a))
