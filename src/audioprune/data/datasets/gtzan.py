"""GTZAN: 1,000 thirty-second music excerpts, 10 genres; random or fault-filtered artist split."""

from __future__ import annotations

import re
from pathlib import Path

from audioprune.audio.frontend import FrontEndConfig
from audioprune.data.registry import register_dataset
from audioprune.data.splits import (DEFAULT_FOLDS, folds_of, parse_fold, reject_options,
                                     stratified_holdout, stratified_kfold)
from audioprune.data.tables import readable
from audioprune.data.types import Clip, DatasetIndex
from audioprune.errors import UserError

_NAME = re.compile(r"^([A-Za-z]+)\.(\d{5})\.(wav|au)$", re.IGNORECASE)
# where the genre folders may sit under --data-root: the original tarball, the Kaggle copy, the root
_GENRE_DIRS = ("genres", "genres_original", "Data/genres_original", ".")
SPLIT_FILES = {"train": "train_filtered.txt", "val": "valid_filtered.txt", "test": "test_filtered.txt"}
TEST_FRACTION = 0.2

LAYOUT = """<root>/genres/<genre>/<genre>.NNNNN.au   (or .wav)  e.g. genres/blues/blues.00000.au
  also accepted: <root>/genres_original/... or <root>/Data/genres_original/... (Kaggle copy),
  or --data-root pointing at the genres folder itself.
  Default split: seeded stratified random, 20% test, --val-fraction of the rest for validation.
  --split-file DIR (or one of its three files): the fault-filtered, artist-conditional split
  (Kereliuk, Larsen & Sturm 2015; the lists of github.com/coreyker/dnn-mgr, gtzan/):
  DIR/train_filtered.txt, DIR/valid_filtered.txt, DIR/test_filtered.txt, one track a line
  like blues/blues.00029.wav (the extension is ignored; tracks not listed are left out)"""


@register_dataset(
    "gtzan",
    description="GTZAN music genres: 10 genres, 30 s excerpts; random or fault-filtered artist split",
    layout=LAYOUT,
    frontend=FrontEndConfig(sample_rate=32000, n_fft=1024, hop_length=320, n_mels=64, fmin=50.0,
                            fmax=14000.0, clip_seconds=30.0),
    signature=("genres/blues", "genres_original", "Data/genres_original"),
)
def load_gtzan(root: Path | None, *, split: str | None = None, seed: int = 0,
               val_fraction: float = 0.1, test_fold: int | None = None,
               val_fold: int | None = None, subset: str | None = None,
               split_file: Path | None = None) -> DatasetIndex:
    """`split`: "random" (default without `split_file`: stratified by genre, 20% test, then a
    stratified `val_fraction` of the rest for validation, all seeded) or "filtered" (default with
    `split_file`: the fault-filtered artist-conditional lists; see LAYOUT)."""
    reject_options("gtzan", test_fold=test_fold, val_fold=val_fold, subset=subset)
    assert root is not None
    split = split or ("filtered" if split_file is not None else "random")
    k = parse_fold(split, None, "gtzan")
    if split not in ("random", "filtered") and k is None:
        raise UserError(f"gtzan `split` must be 'random', 'filtered' or fold:K[/N] (seeded "
                        f"stratified N-fold, N = {DEFAULT_FOLDS} by default), got {split!r}")
    if k is not None and split_file is not None:
        raise UserError(f"gtzan `split` {split} draws seeded folds; `split_file` is for the "
                        f"filtered split")
    if split == "filtered" and split_file is None:
        raise UserError("gtzan `split` filtered needs `split_file` pointing at the folder holding "
                        f"{', '.join(SPLIT_FILES.values())} (the fault-filtered artist split)")
    if split == "random" and split_file is not None:
        raise UserError(f"gtzan `split` random does not use `split_file` {split_file}; "
                        f"leave `split` out (or use `split` filtered) to use the list files")

    genres_dir = _find_genres_dir(root)
    clips: dict[str, Clip] = {}  # track id ("blues.00029") -> clip
    genre_names = sorted(d.name for d in genres_dir.iterdir() if _holds_tracks(d))
    index = {g: i for i, g in enumerate(genre_names)}
    notes, both = [], 0
    for genre in genre_names:
        for f in sorted((genres_dir / genre).iterdir()):
            m = _NAME.match(f.name)
            if not m or m.group(1) != genre:
                continue
            track = f"{genre}.{m.group(2)}"
            if track in clips:  # the same excerpt as .au and .wav (a converted copy): keep the .wav
                both += 1
                if m.group(3).lower() != "wav":
                    continue
            clips[track] = Clip(key=f.relative_to(root).as_posix(), path=f, targets=(index[genre],))
    if both:
        notes.append(f"{both} tracks are present as both .au and .wav; using the .wav files")

    if k is not None:
        n = folds_of(split, None)
        splits = stratified_kfold(list(clips.values()), k, n, seed, val_fraction)
        split = f"fold:{k}/{n}"
    elif split == "random":
        train, test = stratified_holdout(list(clips.values()), TEST_FRACTION, seed)
        train, val = stratified_holdout(train, val_fraction, seed)
        splits = {"train": train, "val": val, "test": test}
    else:
        assert split_file is not None
        splits = _filtered_split(Path(split_file), clips)
        left_out = len(clips) - sum(len(v) for v in splits.values())
        if left_out:
            notes.append(f"filtered split: {left_out} of {len(clips)} tracks are in none of the "
                         f"lists and are left out")
    return DatasetIndex(name="gtzan", task="single-label", class_names=genre_names, splits=splits,
                        split_name=split, sample_rate=22050, notes=notes,
                        fold=(k, folds_of(split, None)) if k is not None else None)


def _find_genres_dir(root: Path) -> Path:
    for rel in _GENRE_DIRS:
        d = root / rel
        if d.is_dir() and any(_holds_tracks(sub) for sub in d.iterdir()):
            return d
    raise UserError(f"no GTZAN genre folders found under {root}; gtzan expects:\n{LAYOUT}")


def _holds_tracks(d: Path) -> bool:
    """True for a genre folder: it holds at least one <genre>.NNNNN.{wav,au} named after itself."""
    if not d.is_dir():
        return False
    for f in d.iterdir():
        m = _NAME.match(f.name)
        if m and m.group(1) == d.name:
            return True
    return False


def _filtered_split(path: Path, clips: dict[str, Clip]) -> dict[str, list[Clip]]:
    """Read the three list files from a folder (or from the folder of one of them)."""
    if path.is_file():
        if path.name not in SPLIT_FILES.values():
            raise UserError(f"`split_file` {path}: expected a folder holding "
                            f"{', '.join(SPLIT_FILES.values())} or one of those files")
        path = path.parent
    if not path.is_dir():
        raise UserError(f"`split_file` {path} does not exist; point it at the folder holding "
                        f"{', '.join(SPLIT_FILES.values())}")
    splits: dict[str, list[Clip]] = {}
    seen: dict[str, str] = {}
    for part, fname in SPLIT_FILES.items():
        list_path = path / fname
        if not list_path.is_file():
            raise UserError(f"{list_path} not found; the filtered split needs "
                            f"{', '.join(SPLIT_FILES.values())} side by side")
        missing, twice, members = [], [], []
        with readable(list_path):
            text = list_path.read_text(encoding="utf-8")
        for line in text.splitlines():
            entry = line.split()[0] if line.strip() else ""
            if not entry or entry.startswith("#"):
                continue
            track = Path(entry).name
            track = re.sub(r"\.(wav|au)$", "", track, flags=re.IGNORECASE)
            if track not in clips:
                missing.append(entry)
            elif track in seen:
                twice.append(f"{entry} (also in {seen[track]})")
            else:
                seen[track] = fname
                members.append(clips[track])
        if missing:
            raise UserError(f"{list_path}: {len(missing)} listed track(s) not found in the GTZAN "
                            f"folders (first: {', '.join(missing[:5])}); check `data_root`")
        if twice:
            raise UserError(f"{list_path}: track(s) listed in two split files: {', '.join(twice[:5])}")
        if not members:
            raise UserError(f"{list_path} lists no tracks")
        splits[part] = sorted(members, key=lambda c: c.key)
    return splits
