"""The input pipeline for big sets: PANNs' class-balanced sampling (data/loader.py
BalancedClassSampler, TrainConfig.sampler), DataLoader workers that follow the epoch (random
crops in persistent workers), pinned memory on CUDA only, and the loader benchmark's scaling
part on a small index."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from audioprune.audio.frontend import FrontEndConfig
from audioprune.data.loader import BalancedClassSampler, ClipDataset
from audioprune.data.types import Clip
from tones import ToneWaves
from audioprune.models.registry import create_model
from audioprune.train.fit import TrainConfig, _pinned, fit

BENCH = Path(__file__).resolve().parents[1] / "bench"

# a long tail: class 0 has 200 clips, class 1 20, class 2 5, class 3 none
TAIL = [(0,)] * 200 + [(1,)] * 20 + [(2,)] * 5


def _classes(order: list[int], targets: list[tuple[int, ...]]) -> Counter:
    return Counter(targets[i][0] for i in order)


def test_balanced_sampler_draws_every_present_class_equally_often() -> None:
    s = BalancedClassSampler(TAIL, num_classes=4, seed=0)
    order = list(s)
    assert len(order) == len(s) == len(TAIL)  # an epoch is as long as the shuffled one
    counts = _classes(order, TAIL)
    assert counts == {0: 75, 1: 75, 2: 75}  # 75 rounds of the 3 present classes; class 3 never
    # within a class, clips come from a shuffled list used up before it is reshuffled: each of
    # class 2's 5 clips is drawn 15 times, each of class 1's 20 clips 3 or 4 times
    per_clip = Counter(order)
    assert {per_clip[i] for i in range(220, 225)} == {15}
    assert {per_clip[i] for i in range(200, 220)} <= {3, 4}
    assert len({i for i in order if i < 200}) == 75  # class 0: 75 distinct clips, no repeat
    # every prefix of k rounds holds each class k times (rounds, not a long-run average)
    first = order[:30]
    assert _classes(first, TAIL) == {0: 10, 1: 10, 2: 10}


def test_balanced_sampler_is_a_function_of_seed_and_epoch_and_shards_like_the_shuffle() -> None:
    a, b = BalancedClassSampler(TAIL, 4, seed=0), BalancedClassSampler(TAIL, 4, seed=0)
    assert list(a) == list(b)
    a.set_epoch(1)
    assert list(a) != list(b)  # a new epoch draws anew ...
    b.set_epoch(1)
    assert list(a) == list(b)  # ... reproducibly (a resumed run draws what it would have)
    assert list(BalancedClassSampler(TAIL, 4, seed=1)) != list(BalancedClassSampler(TAIL, 4, 0))
    # two ranks: each takes every other draw of the single-process order, together all of it
    whole = BalancedClassSampler(TAIL, 4, seed=3).global_order()
    r0, r1 = (list(BalancedClassSampler(TAIL, 4, 3, rank=r, world=2)) for r in (0, 1))
    assert len(r0) == len(r1) == 113
    merged = [x for pair in zip(r0, r1) for x in pair]
    assert merged[:len(TAIL)] == whole  # the same draws as one process makes
    assert merged[len(TAIL):] == whole[:1]  # padded by wrapping, as the shuffle pads


def test_balanced_sampler_with_several_labels_per_clip_and_bad_targets() -> None:
    targets = [(0,)] * 50 + [(0, 1)] * 5 + [(2,)] * 5  # class 1 only on clips that also hold 0
    order = list(BalancedClassSampler(targets, 3, seed=0))
    assert len(order) == 60
    drawn_for_1 = [i for i in order if 50 <= i < 55]
    assert len(drawn_for_1) >= 20  # class 1's 5 clips stand for a third of the draws
    with pytest.raises(ValueError, match="targets"):
        BalancedClassSampler([(0,), (3,)], 3, seed=0)
    with pytest.raises(ValueError, match="label"):
        BalancedClassSampler([(), ()], 3, seed=0)


def _long_tail_dataset(mode: str = "random") -> ClipDataset:
    targets = [i % 4 if i < 8 else 0 for i in range(32)]  # class 0: 26 clips, 1-3: 2 each
    clips = [Clip(f"c{i}", None, (t,)) for i, t in enumerate(targets)]
    source = ToneWaves(32, 4, 8000, ramp=True)
    for clip in clips:  # each clip's tone is its own class's
        k = clip.targets[0]
        source.waves[clip.key] = source.waves[f"c{k}"] * (1 + 0.01 * int(clip.key[1:]))
    return ClipDataset(clips, source, "single-label", 4, 4000, mode)


def _tiny_model() -> torch.nn.Module:
    fe = FrontEndConfig(sample_rate=8000, n_fft=256, hop_length=80, n_mels=40, fmin=0.0,
                        fmax=None, clip_seconds=0.5, mean=-50.0, std=20.0)
    torch.manual_seed(0)
    return create_model("dcase21net", 4, frontend=fe, width=0.5, dropout=0.0)


@pytest.mark.slow  # ~6 s: three short trainings
def test_fit_with_the_balanced_sampler_trains_on_balanced_batches(tmp_path: Path) -> None:
    ds = _long_tail_dataset()
    seen: list[int] = []

    def loss_fn(logits: torch.Tensor, y: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        seen.extend(int(v) for v in y)
        return F.cross_entropy(logits, y)

    fit(_tiny_model(), ds, None, TrainConfig(epochs=2, batch_size=8, lr=1e-3, progress=False,
                                             sampler="balanced"), tmp_path / "b", loss_fn=loss_fn)
    assert len(seen) == 64 and Counter(seen) == {0: 16, 1: 16, 2: 16, 3: 16}
    seen.clear()
    fit(_tiny_model(), ds, None, TrainConfig(epochs=1, batch_size=8, lr=1e-3, progress=False),
        tmp_path / "s", loss_fn=loss_fn)
    assert Counter(seen) == {0: 26, 1: 2, 2: 2, 3: 2}  # the shuffle: the data's own tail


def test_persistent_workers_follow_the_epoch_as_the_main_process_does(tmp_path: Path) -> None:
    """Random crops derive from (seed, epoch, index). A persistent worker holds the dataset
    copy it started with, so set_epoch in the main process never reaches it: without the epoch
    travelling with each index, every epoch after the first would repeat the first's crops and
    the run would differ from the same run without workers."""
    runs = {}
    for workers in (0, 1):
        cfg = TrainConfig(epochs=3, batch_size=8, lr=3e-3, progress=False, num_workers=workers)
        runs[workers] = fit(_tiny_model(), _long_tail_dataset(), None, cfg,
                            tmp_path / f"w{workers}")
    losses = {w: [h["train_loss"] for h in r["history"]] for w, r in runs.items()}
    assert losses[1] == losses[0], losses


def test_batches_are_pinned_on_cuda_devices_only() -> None:
    assert _pinned("cuda") and _pinned("cuda:1") and _pinned(torch.device("cuda", 0))
    assert not _pinned("cpu") and not _pinned("mps")


@pytest.mark.slow  # ~20 s: a 10,000-clip cache built, opened and read 3 x 10,000 times
def test_loader_bench_scaling_part_reads_what_it_cached(tmp_path: Path) -> None:
    sys.path.insert(0, str(BENCH))
    try:
        import bench_loader
    finally:
        sys.path.remove(str(BENCH))
    out = bench_loader.scaling(10_000, 64, 8000, tmp_path)
    assert [r["n"] for r in out["index"]] == [10_000]
    assert out["cache_bytes"] >= 10_000 * 64 * 2  # every clip's int16 samples are on disk
    assert set(out["read"]) == {"first", "middle", "last"}
    assert all(r["n"] == 10_000 and r["seconds"] > 0 for r in out["read"].values())
    # the synthetic renderer is deterministic: the cache serves clip i's own samples
    index = bench_loader.synthetic_index(10_000, 64)
    from audioprune.data.cache import AudioCache

    cache = AudioCache(index, 8000, cache_dir=tmp_path)
    clip = index.splits["train"][1234]
    np.testing.assert_allclose(cache.get(clip), index.render(clip, 8000), atol=1 / 32767)
