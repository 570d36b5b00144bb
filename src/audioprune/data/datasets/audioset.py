"""AudioSet: multi-label tagging from the official segment CSVs and whatever clips are on disk."""

from __future__ import annotations

import csv
import os
import re
from collections import defaultdict
from pathlib import Path
from typing import Iterable, Iterator

from audioprune.audio.frontend import FrontEndConfig
from audioprune.audio.io import AUDIO_EXTENSIONS
from audioprune.data.registry import register_dataset
from audioprune.data.splits import reject_options, stratified_holdout
from audioprune.data.tables import readable
from audioprune.data.types import Clip, DatasetIndex
from audioprune.errors import UserError

LISTS = {"balanced_train": "balanced_train_segments.csv",
         "unbalanced_train": "unbalanced_train_segments.csv",
         "eval": "eval_segments.csv"}
TRAIN_LISTS = {"balanced": ("balanced_train",), "full": ("balanced_train", "unbalanced_train")}
CLASS_FILE = "class_labels_indices.csv"
CLASS_COLUMNS = ("index", "mid", "display_name")
_META_DIRS = (".", "metadata")
# a file stem: [Y]<YTID>[_<start>[_<end>]] (YouTube ids are 11 characters of [A-Za-z0-9_-])
_SUFFIX = re.compile(r"^(?:_\d+(?:\.\d+)?(?:_\d+(?:\.\d+)?)?)?$")
_YTID_LEN = 11

LAYOUT = """<root>/class_labels_indices.csv          columns index,mid,display_name (the class list)
<root>/balanced_train_segments.csv       official segment lists: 3 '#' comment lines, then
<root>/eval_segments.csv                 YTID, start_seconds, end_seconds, "mid1,mid2,..."
<root>/unbalanced_train_segments.csv     (only for --split full)
  (the CSVs may also sit in <root>/metadata/)
  clips anywhere below <root>, e.g. <root>/balanced_train_segments/, <root>/eval_segments/,
  <root>/unbalanced_train_segments/**, <root>/audios/<list>/ as the PANNs scripts download them,
  or one <root>/audio/ folder; named <YTID>.wav, Y<YTID>.wav, <YTID>_<start>.wav or
  <YTID>_<start_ms>_<end_ms>.wav (any of .wav .flac .ogg ...). Clips listed but not on disk are
  counted in the notes and skipped.
  --split balanced (default): train = balanced_train, test = eval;
  --split full: train = balanced_train + unbalanced_train, test = eval;
  validation = a seeded --val-fraction of train, stratified on each clip's first label."""


@register_dataset(
    "audioset",
    description="AudioSet sound event tagging: multi-label, classes from class_labels_indices.csv",
    layout=LAYOUT,
    frontend=FrontEndConfig(sample_rate=32000, n_fft=1024, hop_length=320, n_mels=64, fmin=50.0,
                            fmax=14000.0, clip_seconds=10.0),
    signature=("class_labels_indices.csv", "metadata/class_labels_indices.csv"),
)
def load_audioset(root: Path | None, *, split: str | None = None, seed: int = 0,
                  val_fraction: float = 0.1, test_fold: int | None = None,
                  val_fold: int | None = None, subset: str | None = None,
                  split_file: Path | None = None) -> DatasetIndex:
    """`split`: "balanced" (default) or "full"; see LAYOUT. Missing clips are not an error (they
    are reported in `notes`), but a train or test split without a single clip on disk is."""
    reject_options("audioset", test_fold=test_fold, val_fold=val_fold, subset=subset,
                   split_file=split_file)
    assert root is not None
    split = split or "balanced"
    if split not in TRAIN_LISTS:
        raise UserError(f"audioset `split` must be 'balanced' or 'full', got {split!r}")

    class_names, mid_index = _read_classes(_find_meta(root, CLASS_FILE))
    files = _index_audio_files(root)
    notes: list[str] = []
    used: set[str] = set()

    def resolve(list_name: str) -> list[Clip]:
        csv_path = _find_meta(root, LISTS[list_name])
        clips, missing, repeated, total = [], 0, 0, 0
        for ytid, targets in _read_segments(csv_path, mid_index):
            total += 1
            path = _pick(files.get(ytid, []), LISTS[list_name][:-len(".csv")])
            if path is None:
                missing += 1
                continue
            key = path.relative_to(root).as_posix()
            if key in used:  # a YTID listed twice (in this or an earlier list): keep the first
                repeated += 1
                continue
            used.add(key)
            clips.append(Clip(key=key, path=path, targets=targets, group=list_name))
        if missing:
            notes.append(f"{list_name}: {missing} of {total} clips listed but not found")
        if repeated:
            notes.append(f"{list_name}: {repeated} rows name a clip already listed; skipped")
        return clips

    test = resolve("eval")  # first, so a clip also listed for training stays in the test set
    train = [c for name in TRAIN_LISTS[split] for c in resolve(name)]
    for part, clips, lists in (("train", train, TRAIN_LISTS[split]), ("test", test, ("eval",))):
        if not clips:
            raise UserError(f"audioset {part} split: none of the clips listed in "
                            f"{', '.join(LISTS[n] for n in lists)} found under {root}; expected:\n{LAYOUT}")
    train, val = stratified_holdout(train, val_fraction, seed)
    return DatasetIndex(name="audioset", task="multi-label", class_names=class_names,
                        splits={"train": train, "val": val, "test": test}, split_name=split,
                        sample_rate=None, notes=notes)


def _find_meta(root: Path, name: str) -> Path:
    for d in _META_DIRS:
        if (root / d / name).is_file():
            return root / d / name
    raise UserError(f"{name} not found in {root} or {root / 'metadata'}; audioset expects:\n{LAYOUT}")


def _read_classes(path: Path) -> tuple[list[str], dict[str, int]]:
    """class_labels_indices.csv -> (display names in index order, {mid: index})."""
    with readable(path), open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh, skipinitialspace=True)
        header = [h.strip() for h in reader.fieldnames or []]
        missing = [c for c in CLASS_COLUMNS if c not in header]
        if missing:
            raise UserError(f"{path}: header lacks column(s) {', '.join(missing)} (found "
                            f"{', '.join(header) or 'no header'}); expected {','.join(CLASS_COLUMNS)}")
        reader.fieldnames = header
        rows = [(reader.line_num, r) for r in reader]
    by_index: dict[int, tuple[str, str]] = {}
    bad = []
    for line, r in rows:
        try:
            i = int(r["index"])
        except (TypeError, ValueError):
            bad.append(line)
            continue
        if i in by_index or not r["mid"]:
            bad.append(line)
            continue
        by_index[i] = (r["mid"].strip(), (r["display_name"] or "").strip())
    if bad or sorted(by_index) != list(range(len(by_index))) or not by_index:
        where = f" (line(s) {', '.join(map(str, bad[:5]))})" if bad else ""
        raise UserError(f"{path}: class indices must be the integers 0..N-1, each once, with a mid"
                        f"{where}; restore the official {CLASS_FILE}")
    mids = [by_index[i][0] for i in range(len(by_index))]
    if len(set(mids)) != len(mids):
        raise UserError(f"{path}: a mid is listed twice; restore the official {CLASS_FILE}")
    return [by_index[i][1] for i in range(len(by_index))], {m: i for i, m in enumerate(mids)}


def _read_segments(path: Path, mid_index: dict[str, int]) -> list[tuple[str, tuple[int, ...]]]:
    """Rows of a segment CSV as (YTID, sorted class indices); UserError on malformed rows or
    labels outside the class list."""
    rows, malformed, unknown = [], [], []
    current = [0]  # the line number of the row the reader is on

    def content(fh: Iterable[str]) -> Iterator[str]:
        for n, line in enumerate(fh, 1):
            if line.strip() and not line.lstrip().startswith("#"):
                current[0] = n
                yield line

    with readable(path), open(path, newline="", encoding="utf-8") as fh:
        for fields in csv.reader(content(fh), skipinitialspace=True):
            line_no = current[0]
            if len(fields) != 4:
                malformed.append(line_no)
                continue
            ytid, start, end, labels = (f.strip() for f in fields)
            if ytid == "YTID":  # a header line without its '#'
                continue
            try:
                float(start), float(end)
            except ValueError:
                malformed.append(line_no)
                continue
            mids = [m.strip() for m in labels.split(",") if m.strip()]
            if any(m not in mid_index for m in mids):
                unknown.append(f"line {line_no} ({', '.join(m for m in mids if m not in mid_index)})")
                continue
            rows.append((ytid, tuple(sorted({mid_index[m] for m in mids}))))
    if malformed:
        raise UserError(f"{path}: {len(malformed)} malformed row(s), first on line(s) "
                        f"{', '.join(map(str, malformed[:5]))}; expected "
                        f'YTID, start_seconds, end_seconds, "label1,label2"')
    if unknown:
        raise UserError(f"{path}: {len(unknown)} row(s) with labels not in {CLASS_FILE}: "
                        f"{'; '.join(unknown[:5])}")
    return rows


def _index_audio_files(root: Path) -> dict[str, list[Path]]:
    """Every audio file below `root`, by the YouTube id(s) its name can be read as."""
    exts = set(AUDIO_EXTENSIONS)
    index: dict[str, list[Path]] = defaultdict(list)
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            stem, ext = os.path.splitext(name)
            if ext.lower() not in exts or name.startswith("."):
                continue
            path = Path(dirpath) / name
            for ytid in _ytids_of(stem):
                index[ytid].append(path)
    return index


def _ytids_of(stem: str) -> set[str]:
    """The ids a file stem may stand for: <YTID>, Y<YTID>, <YTID>_<start>, <YTID>_<s>_<e>."""
    ids = {stem}
    if stem.startswith("Y"):
        ids.add(stem[1:])
    for offset in (0, 1):  # without / with the PANNs 'Y' prefix
        if offset and not stem.startswith("Y"):
            continue
        ytid, suffix = stem[offset:offset + _YTID_LEN], stem[offset + _YTID_LEN:]
        if len(ytid) == _YTID_LEN and suffix and _SUFFIX.match(suffix):
            ids.add(ytid)
    return ids


def _pick(paths: list[Path], folder: str) -> Path | None:
    """One file for a YTID: prefer one inside a folder named after its segment list."""
    if not paths:
        return None
    for p in paths:
        if folder in p.parts:
            return p
    return paths[0]
