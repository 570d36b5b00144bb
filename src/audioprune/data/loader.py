"""Torch datasets and samplers over a split: waveforms cropped/padded to the clip length.

Randomness (crops, shuffling) derives from (seed, epoch, index), never from global state, so a
resumed or distributed run sees exactly the data an uninterrupted single-process run would.
"""

from __future__ import annotations

from typing import Iterator, Literal, Protocol

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from audioprune.audio.clip import fit_length
from audioprune.data.types import Clip, Task

Mode = Literal["random", "centre", "full"]


class WaveSource(Protocol):
    def get(self, clip: Clip) -> np.ndarray: ...


class ClipDataset(Dataset):
    """(waveform float32 (samples,), target) pairs. Single-label targets are class indices (long);
    multi-label targets are multi-hot float vectors."""

    def __init__(self, clips: list[Clip], source: WaveSource, task: Task, num_classes: int,
                 clip_samples: int | None, mode: Mode, seed: int = 0) -> None:
        if mode != "full" and clip_samples is None:
            raise ValueError("cropping needs a clip length; use mode='full' for whole files")
        self.clips, self.source, self.task = clips, source, task
        self.num_classes, self.clip_samples, self.mode, self.seed = num_classes, clip_samples, mode, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.clips)

    def target(self, clip: Clip) -> torch.Tensor:
        if self.task == "single-label":
            return torch.tensor(clip.targets[0], dtype=torch.long)
        y = torch.zeros(self.num_classes)
        y[list(clip.targets)] = 1.0
        return y

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        clip = self.clips[i]
        wave = self.source.get(clip)
        if self.mode != "full":
            assert self.clip_samples is not None
            rng = np.random.default_rng([self.seed, self.epoch, i]) if self.mode == "random" else None
            wave = fit_length(wave, self.clip_samples, "random" if rng else "centre", rng)
        return torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32)), self.target(clip)


class ShardedShuffleSampler(Sampler[int]):
    """A seeded permutation per epoch, sharded across `world` ranks like DistributedSampler
    (padded by wrapping so every rank gets the same count). With world=1 it is the single-process
    order, so rank r of a 2-process run sees half of exactly the same global batches."""

    def __init__(self, n: int, seed: int, rank: int = 0, world: int = 1, shuffle: bool = True) -> None:
        self.n, self.seed, self.rank, self.world, self.shuffle = n, seed, rank, world, shuffle
        self.epoch = 0
        self.per_rank = -(-n // world)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def global_order(self) -> list[int]:
        if self.shuffle:
            g = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
            order = torch.randperm(self.n, generator=g).tolist()
        else:
            order = list(range(self.n))
        total = self.per_rank * self.world
        return (order * (total // max(self.n, 1) + 1))[:total]

    def __iter__(self) -> Iterator[int]:
        order = self.global_order()
        if self.world == 1:
            return iter(order)
        # interleaved: rank r's local batch k (size B/world) is the r-th residue class of global
        # batch k (size B), so the union over ranks of their batch k IS the single-process batch k
        return iter(order[self.rank::self.world])

    def __len__(self) -> int:
        return self.per_rank


class BalancedClassSampler(Sampler[int]):
    """Class-balanced draws as PANNs trains on AudioSet (Kong et al. 2020, `BalancedTrainSampler`
    in audioset_tagging_cnn): the classes come in rounds, each round every class once in a
    random order, and each class in turn gives its next clip from its own shuffled list (a clip
    with several labels is in several lists), reshuffled when used up. So a class with 60 clips
    is drawn as often as one with 50,000 and rare events are not drowned out.

    An epoch is `len(targets)` draws (as many as the shuffled epoch, so schedules and epoch
    counts keep their meaning). Draws derive from (seed, epoch) alone - PANNs keeps its queues
    from one epoch to the next; here each epoch starts them afresh, so a resumed or distributed
    run draws what an uninterrupted one does - and are sharded over ranks as
    ShardedShuffleSampler shards (rank r takes every world-th draw). Classes without a clip are
    never drawn."""

    def __init__(self, targets: list[tuple[int, ...]], num_classes: int, seed: int,
                 rank: int = 0, world: int = 1) -> None:
        self.n, self.seed, self.rank, self.world = len(targets), seed, rank, world
        self.epoch = 0
        self.per_rank = -(-self.n // world)
        flat = np.fromiter((t for ts in targets for t in ts), dtype=np.int64)
        owner = np.repeat(np.arange(self.n), [len(ts) for ts in targets])
        if flat.size and (flat.min() < 0 or flat.max() >= num_classes):
            raise ValueError(f"targets must be class indices in [0, {num_classes})")
        order = np.argsort(flat, kind="stable")
        counts = np.bincount(flat, minlength=num_classes)
        bounds = np.concatenate([[0], np.cumsum(counts)])
        # clips of class k: pools[k] (ascending clip index); classes present: those with clips
        self.pools = [owner[order[bounds[k]:bounds[k + 1]]] for k in range(num_classes)]
        self.classes = np.flatnonzero(counts)
        if self.n and not self.classes.size:
            raise ValueError("balanced sampling needs clips with at least one label")

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def global_order(self) -> list[int]:
        """The epoch's `len(targets)` draws, padded by wrapping to a multiple of the ranks (as
        ShardedShuffleSampler pads): the draws never depend on how many ranks share them."""
        total = self.per_rank * self.world
        if not total:
            return []
        rng = np.random.default_rng([self.seed, self.epoch, 0xBA1])
        k = self.classes.size
        n = self.n
        rounds = -(-n // k)
        # the class of every draw: rounds of random permutations of the present classes
        seq = self.classes[np.argsort(rng.random((rounds, k)), axis=1)].ravel()[:n]
        slots = np.argsort(seq, kind="stable")  # the draws of class c, in draw order, grouped
        per_class = np.bincount(seq, minlength=len(self.pools))
        out = np.empty(n, dtype=np.int64)
        start = 0
        for c in self.classes:
            need = int(per_class[c])
            if not need:
                continue
            pool = self.pools[c]
            laps = -(-need // pool.size)
            picks = np.concatenate([rng.permutation(pool) for _ in range(laps)])[:need]
            out[slots[start:start + need]] = picks
            start += need
        order = out.tolist()
        return (order * (total // n + 1))[:total]

    def __iter__(self) -> Iterator[int]:
        order = self.global_order()
        return iter(order if self.world == 1 else order[self.rank::self.world])

    def __len__(self) -> int:
        return self.per_rank
