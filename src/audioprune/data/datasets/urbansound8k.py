"""UrbanSound8K: 8,732 urban sound slices (<= 4 s), 10 classes, 10 official folds."""

from __future__ import annotations

from pathlib import Path

from audioprune.audio.frontend import FrontEndConfig
from audioprune.data.registry import register_dataset
from audioprune.data.splits import fold_split, parse_fold, reject_options
from audioprune.data.tables import (bad_rows, check_duplicates, check_files, check_relative,
                                    read_table)
from audioprune.data.types import Clip, DatasetIndex
from audioprune.errors import UserError

COLUMNS = ("slice_file_name", "fsID", "start", "end", "salience", "fold", "classID", "class")
FOLDS = list(range(1, 11))

LAYOUT = """<root>/audio/fold{1..10}/*.wav          e.g. audio/fold1/101415-3-0-2.wav
<root>/metadata/UrbanSound8K.csv         columns slice_file_name,fsID,start,end,salience,fold,classID,class
  (the UrbanSound8K folder of the official download); 10 folds, --test-fold 1..10"""


@register_dataset(
    "urbansound8k",
    description="UrbanSound8K urban sounds: 10 classes, 10 official folds (clips up to 4 s)",
    layout=LAYOUT,
    frontend=FrontEndConfig(sample_rate=32000, n_fft=1024, hop_length=320, n_mels=64, fmin=50.0,
                            fmax=14000.0, clip_seconds=4.0),
    signature=("metadata/UrbanSound8K.csv", "audio/fold1"),
)
def load_urbansound8k(root: Path | None, *, split: str | None = None, seed: int = 0,
                      val_fraction: float = 0.1, test_fold: int | None = None,
                      val_fold: int | None = None, subset: str | None = None,
                      split_file: Path | None = None) -> DatasetIndex:
    """Official 10-fold cross-validation: `test_fold` (default 1) is the test set, `val_fold` (if
    given) the validation set, the other folds train (a stratified `val_fraction` of them is the
    validation set without `val_fold`). Class indices follow the CSV's `classID` column."""
    k = parse_fold(split, len(FOLDS), "urbansound8k")
    if split is not None and k is None:
        raise UserError(f"urbansound8k does not take `split` {split!r}: choose the official fold "
                        f"with `split` fold:K or `test_fold` K, K in 1..10 (and optionally "
                        f"`val_fold`)")
    if k is not None and test_fold is not None and test_fold != k:
        raise UserError(f"urbansound8k: `split` {split} and `test_fold` {test_fold} name "
                        f"different folds")
    reject_options("urbansound8k", subset=subset, split_file=split_file)
    assert root is not None
    csv_path = root / "metadata" / "UrbanSound8K.csv"
    rows = read_table(csv_path, COLUMNS, "urbansound8k", LAYOUT)

    def bad(msg: str, lines: list[int]) -> UserError:
        return bad_rows(csv_path, msg, lines, "fix or restore the official UrbanSound8K.csv")

    parsed = []  # (line, fname, fold, class_id, class_name)
    bad_lines = []
    for line, r in rows:
        try:
            fold, class_id = int(r["fold"]), int(r["classID"])
        except ValueError:
            bad_lines.append(line)
            continue
        if fold not in FOLDS or class_id < 0 or not r["slice_file_name"]:
            bad_lines.append(line)
            continue
        parsed.append((line, r["slice_file_name"], fold, class_id, r["class"]))
    if bad_lines:
        raise bad("fold must be 1-10 and classID a non-negative integer", bad_lines)
    check_relative(csv_path, [(p[0], p[1]) for p in parsed])
    check_duplicates(csv_path, [(p[0], f"fold{p[2]}/{p[1]}") for p in parsed])
    if not parsed:
        raise UserError(f"{csv_path} lists no clips")

    names: dict[int, str] = {}
    clash = [line for line, _, _, cid, name in parsed if names.setdefault(cid, name) != name]
    if clash:
        raise bad("a classID is paired with two different class names", clash)
    order = sorted(names)  # the identity 0..9 on the official CSV
    index = {cid: i for i, cid in enumerate(order)}

    clips = [Clip(key=f"audio/fold{fold}/{fname}", path=root / "audio" / f"fold{fold}" / fname,
                  targets=(index[cid],), group=str(fold)) for _, fname, fold, cid, _ in parsed]
    clips = check_files(csv_path, clips, [p[0] for p in parsed])
    test_fold = k or (1 if test_fold is None else test_fold)
    splits = fold_split(clips, test_fold, val_fold, FOLDS, seed, val_fraction)
    split_name = (f"fold:{k}/{len(FOLDS)}" if k else f"fold{test_fold}") + \
        (f"-val{val_fold}" if val_fold is not None else "")
    return DatasetIndex(name="urbansound8k", task="single-label",
                        class_names=[names[c] for c in order], splits=splits,
                        split_name=split_name, sample_rate=None, fold=(test_fold, len(FOLDS)))

