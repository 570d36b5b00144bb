"""Any labelled audio collection laid out as one folder per class."""

from __future__ import annotations

import math
from collections import Counter
from pathlib import Path
from typing import Any

import soundfile as sf

from audioprune.audio.frontend import FrontEndConfig
from audioprune.audio.io import AUDIO_EXTENSIONS
from audioprune.data.registry import detect_layouts, register_dataset
from audioprune.data.splits import (DEFAULT_FOLDS, folds_of, parse_fold, reject_options,
                                     stratified_holdout, stratified_kfold)
from audioprune.data.types import Clip, DatasetIndex, Problem
from audioprune.errors import UserError

TEST_FRACTION = 0.2
_SPLIT_DIRS = {"train": ("train",), "val": ("val", "valid", "validation"), "test": ("test",)}
FRONTEND = FrontEndConfig(sample_rate=32000, n_fft=1024, hop_length=320, n_mels=64, fmin=50.0,
                          fmax=14000.0, clip_seconds=5.0)
PROBE_FILES = 256  # files whose headers the clip length and sample rate are read from
CLIP_QUANTILE = 0.95  # clips are as long as this share of the files (longer ones are cropped)

LAYOUT = """<root>/<class>/*.{wav,flac,ogg,aiff,au}      e.g. dog/0001.wav, cat/0002.flac
  one folder per class (files in sub-folders of a class folder count too; class names sorted);
  split: seeded, stratified by class, 20% test, then --val-fraction of the rest for validation.
  If <root> holds train/ and test/ (and optionally val/ or valid/), each with class folders,
  that split is used as given (--split folders).
  Front end from the data unless given (--frontend): clips as long as 95% of the files (at most
  5 s), the files' sample rate (at most 32 kHz; fmax at its Nyquist limit, at most 14 kHz)."""


def infer_frontend(index: DatasetIndex) -> tuple[dict[str, Any], str]:
    """Clip length and sample rate read from the files' headers (up to PROBE_FILES of them,
    evenly spread): clip_seconds = the CLIP_QUANTILE length rounded up to 0.1 s (at most the
    layout's 5 s), sample_rate = the most common rate (at most 32 kHz: no upsampling of 16 kHz
    speech, 44.1/48 kHz audio resampled as before). Returns (settings, what was found)."""
    clips = sorted((c for part in index.splits.values() for c in part), key=lambda c: c.key)
    step = max(1, math.ceil(len(clips) / PROBE_FILES))
    rates: Counter = Counter()
    seconds: list[float] = []
    for clip in clips[::step]:
        try:
            info = sf.info(str(clip.path))
        except (RuntimeError, OSError, TypeError):  # undecodable: the cache reports it
            continue
        if info.samplerate > 0:
            rates[info.samplerate] += 1
            seconds.append(info.frames / info.samplerate)
    if not seconds:
        return {}, "no readable file header"
    seconds.sort()
    long = seconds[min(len(seconds) - 1, math.ceil(CLIP_QUANTILE * len(seconds)) - 1)]
    clip = min(FRONTEND.clip_seconds or 5.0, max(0.1, math.ceil(round(long, 2) * 10) / 10))
    native = rates.most_common(1)[0][0]
    rate = min(native, FRONTEND.sample_rate)
    mixed = f" (also {', '.join(f'{r} Hz' for r in sorted(rates) if r != native)})" \
        if len(rates) > 1 else ""
    found = (f"{len(seconds)} files read: {100 * CLIP_QUANTILE:.0f}% are {long:.2f} s or "
             f"shorter, most at {native} Hz{mixed}")
    return {"clip_seconds": clip, "sample_rate": rate}, found


@register_dataset(
    "folder",
    description="Your own audio: one folder per class, seeded stratified train/val/test split",
    layout=LAYOUT,
    frontend=FRONTEND,
    infer_frontend=infer_frontend,
)
def load_folder(root: Path | None, *, split: str | None = None, seed: int = 0,
                val_fraction: float = 0.1, test_fold: int | None = None,
                val_fold: int | None = None, subset: str | None = None,
                split_file: Path | None = None) -> DatasetIndex:
    """`split`: "random" (stratified 20% test, then `val_fraction` of the rest as validation, all
    seeded) or "folders" (root/train, root/test and optionally root/val hold the class folders);
    the default is "folders" when root/train and root/test exist, else "random"."""
    reject_options("folder", test_fold=test_fold, val_fold=val_fold, subset=subset,
                   split_file=split_file)
    assert root is not None
    has_split_dirs = (root / "train").is_dir() and (root / "test").is_dir()
    split = split or ("folders" if has_split_dirs else "random")
    k = parse_fold(split, None, "folder")
    if split == "folders":
        if not has_split_dirs:
            raise UserError(f"folder `split` folders needs {root / 'train'} and {root / 'test'}, "
                            f"each holding one folder per class")
        split_roots = {part: next((root / d for d in dirs if (root / d).is_dir()), None)
                       for part, dirs in _SPLIT_DIRS.items()}
        found = {part: _scan(d) if d is not None else {} for part, d in split_roots.items()}
    elif split == "random" or k is not None:
        found = {"all": _scan(root)}
    else:
        raise UserError(f"folder `split` must be 'random', 'folders' or fold:K[/N] (seeded "
                        f"stratified N-fold over all files, N = {DEFAULT_FOLDS} by default), "
                        f"got {split!r}")

    class_names = sorted({name for per_class in found.values() for name in per_class})
    problems = _other_layouts(root, class_names)
    if not class_names:
        raise UserError(f"no audio files ({', '.join(AUDIO_EXTENSIONS)}) in class folders under "
                        f"{root}; folder expects:\n{LAYOUT}")
    index = {name: i for i, name in enumerate(class_names)}

    def clips_of(per_class: dict[str, list[Path]]) -> list[Clip]:
        return [Clip(key=p.relative_to(root).as_posix(), path=p, targets=(index[name],))
                for name in sorted(per_class) for p in per_class[name]]

    fold = None
    if k is not None:
        fold = (k, folds_of(split, None))
        parts = stratified_kfold(clips_of(found["all"]), k, fold[1], seed, val_fraction)
        train, val, test = parts["train"], parts["val"], parts["test"]
        split = f"fold:{k}/{fold[1]}"
    elif split == "random":
        train, test = stratified_holdout(clips_of(found["all"]), TEST_FRACTION, seed)
        train, val = stratified_holdout(train, val_fraction, seed)
    else:
        train, test = clips_of(found["train"]), clips_of(found["test"])
        val = clips_of(found["val"])
        if split_roots["val"] is None:
            train, val = stratified_holdout(train, val_fraction, seed)
        if not train or not test:
            raise UserError(f"{root}: train/ and test/ must each hold class folders with audio files")
    return DatasetIndex(name="folder", task="single-label", class_names=class_names,
                        splits={"train": train, "val": val, "test": test}, split_name=split,
                        fold=fold, problems=problems)


def _other_layouts(root: Path, class_names: list[str]) -> list[Problem]:
    """A problem when `root` is laid out as another known dataset (its class folders would be
    that dataset's folders, not its classes); a UserError when that leaves fewer than two
    classes, which cannot be what was meant."""
    like = detect_layouts(root, exclude="folder")
    if not like:
        return []
    names = " or ".join(f"the {name} layout ({mark} is there)" for name, mark in like)
    first = like[0][0]
    text = (f"{root} looks like {names}, not one folder per class: folder takes "
            f"{', '.join(class_names[:5]) or 'none'}{' ...' if len(class_names) > 5 else ''} as "
            f"its classes; use dataset {first!r} (`audioprune datasets check {first}` checks it)")
    if len(class_names) < 2:
        raise UserError(text)
    return [Problem("another layout", text)]


def _scan(base: Path) -> dict[str, list[Path]]:
    """{class name: sorted audio files} for the class folders directly under `base`."""
    exts = set(AUDIO_EXTENSIONS)
    out: dict[str, list[Path]] = {}
    for d in sorted(base.iterdir()):
        if not d.is_dir() or d.name.startswith("."):
            continue
        files = sorted(p for p in d.rglob("*") if p.is_file() and p.suffix.lower() in exts
                       and not any(part.startswith(".") for part in p.relative_to(d).parts))
        if files:
            out[d.name] = files
    return out
