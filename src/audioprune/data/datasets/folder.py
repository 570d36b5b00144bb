"""Any labelled audio collection laid out as one folder per class."""

from __future__ import annotations

from pathlib import Path

from audioprune.audio.frontend import FrontEndConfig
from audioprune.audio.io import AUDIO_EXTENSIONS
from audioprune.data.registry import register_dataset
from audioprune.data.splits import (DEFAULT_FOLDS, folds_of, parse_fold, reject_options,
                                     stratified_holdout, stratified_kfold)
from audioprune.data.types import Clip, DatasetIndex
from audioprune.errors import UserError

TEST_FRACTION = 0.2
_SPLIT_DIRS = {"train": ("train",), "val": ("val", "valid", "validation"), "test": ("test",)}

LAYOUT = """<root>/<class>/*.{wav,flac,ogg,aiff,au}      e.g. dog/0001.wav, cat/0002.flac
  one folder per class (files in sub-folders of a class folder count too; class names sorted);
  split: seeded, stratified by class, 20% test, then --val-fraction of the rest for validation.
  If <root> holds train/ and test/ (and optionally val/ or valid/), each with class folders,
  that split is used as given (--split folders)."""


@register_dataset(
    "folder",
    description="Your own audio: one folder per class, seeded stratified train/val/test split",
    layout=LAYOUT,
    frontend=FrontEndConfig(sample_rate=32000, n_fft=1024, hop_length=320, n_mels=64, fmin=50.0,
                            fmax=14000.0, clip_seconds=5.0),
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
                        fold=fold)


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
