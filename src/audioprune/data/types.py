"""What every dataset loader returns: a list of clips per split, the class names and the task."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal

import numpy as np

Task = Literal["single-label", "multi-label"]
SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Clip:
    """One labelled example. `key` is unique in the dataset and stable (a relative path or id);
    `targets` holds class indices (exactly one for single-label); `group` is the fold, speaker,
    actor or recording device, kept for per-group reports and leakage-free splits."""

    key: str
    path: Path | None
    targets: tuple[int, ...]
    group: str = ""


@dataclass(frozen=True)
class Problem:
    """Something wrong with a dataset tree: its `kind` groups it in `audioprune datasets check`
    ("missing", "misnamed", "wrong folder", "identical audio", ...); `text` names the file or
    option and what to do."""

    kind: str
    text: str
    key: str | None = None  # the file it is about, as a clip key (relative to the data root)


@dataclass
class DatasetIndex:
    """A dataset as laid out on disk, resolved to clips per split.

    `render`, when set, produces a clip's audio at `sample_rate` without a file (the synthetic
    dataset); otherwise audio is read from `Clip.path`.
    """

    name: str
    task: Task
    class_names: list[str]
    splits: dict[str, list[Clip]]
    split_name: str
    sample_rate: int | None = None  # native rate when all files share one; informative only
    render: Callable[[Clip, int], np.ndarray] | None = None
    notes: list[str] = field(default_factory=list)  # e.g. "12 clips listed but missing on disk"
    fold: tuple[int, int] | None = None  # (k, n): fold k of an n-fold cross-validation
    missing: list[str] = field(default_factory=list)  # listed but missing on disk (skip_missing)
    # what the loader found wrong with the tree and left out (misnamed files, files in the wrong
    # folder, an absent speaker); training warns about each, `datasets check` reports them
    problems: list[Problem] = field(default_factory=list)

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def describe(self) -> str:
        sizes = ", ".join(f"{k}={len(v)}" for k, v in self.splits.items())
        return f"{self.name} [{self.split_name}] {self.task}, {self.num_classes} classes: {sizes}"
