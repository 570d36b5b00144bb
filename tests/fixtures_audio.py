"""Helpers that write tiny audio files and metadata tables for dataset-layout tests."""

from __future__ import annotations

import csv
import zlib
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import soundfile as sf

from audioprune.audio.io import load_audio
from audioprune.data.types import DatasetIndex


def write_audio(path: Path, sample_rate: int = 8000, seconds: float = 0.05,
                fmt: str | None = None) -> Path:
    """A short burst of quiet noise (seeded by the file name) in any format soundfile writes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(zlib.crc32(path.name.encode()))
    wave = (0.1 * rng.standard_normal(int(sample_rate * seconds))).astype(np.float32)
    is_ogg = (fmt or path.suffix.lstrip(".")).upper() == "OGG"
    sf.write(str(path), wave, sample_rate, format=fmt, subtype=None if is_ogg else "PCM_16")
    return path


def write_table(path: Path, header: Sequence[str] | None, rows: Iterable[Sequence[object]],
                delimiter: str = ",") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, delimiter=delimiter, lineterminator="\n")
        if header is not None:
            w.writerow(header)
        w.writerows(rows)
    return path


def assert_clips_decode(index: DatasetIndex) -> None:
    """Every clip of every split has an existing file that decodes to samples; keys are unique."""
    keys = [c.key for part in index.splits.values() for c in part]
    assert len(keys) == len(set(keys)), "a clip is in two splits or listed twice"
    assert set(index.splits) == {"train", "val", "test"}
    for part in index.splits.values():
        for clip in part:
            assert clip.path is not None and clip.path.is_file(), clip.key
            assert load_audio(clip.path).size > 0
            assert all(0 <= t < index.num_classes for t in clip.targets)


def keys(clips: Iterable) -> set[str]:
    return {c.key for c in clips}
