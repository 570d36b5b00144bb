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
