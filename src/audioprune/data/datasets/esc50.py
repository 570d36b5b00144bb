"""ESC-50: 2,000 five-second environmental clips, 50 classes, 5 official folds (ESC-10 subset too)."""

from __future__ import annotations

from pathlib import Path

from audioprune.audio.frontend import FrontEndConfig
from audioprune.data.registry import register_dataset
from audioprune.data.splits import fold_split, parse_fold, reject_options
from audioprune.data.tables import (bad_rows, check_duplicates, check_files, check_relative,
                                    read_table)
from audioprune.data.types import Clip, DatasetIndex
from audioprune.errors import UserError

COLUMNS = ("filename", "fold", "target", "category", "esc10", "src_file", "take")
FOLDS = [1, 2, 3, 4, 5]

LAYOUT = """<root>/audio/*.wav            e.g. audio/1-100032-A-0.wav
<root>/meta/esc50.csv          columns filename,fold,target,category,esc10,src_file,take
  (the ESC-50-master folder of the official download); 5 folds, --test-fold 1..5;
  --subset esc10 keeps the ESC-10 rows with targets renumbered 0..9"""


@register_dataset(
    "esc50",
    description="ESC-50 environmental sounds: 50 classes, 5 official folds; --subset esc10 for ESC-10",
    layout=LAYOUT,
    frontend=FrontEndConfig(sample_rate=32000, n_fft=1024, hop_length=320, n_mels=64, fmin=50.0,
                            fmax=14000.0, clip_seconds=5.0),
    signature=("meta/esc50.csv",),
)
def load_esc50(root: Path | None, *, split: str | None = None, seed: int = 0,
               val_fraction: float = 0.1, test_fold: int | None = None,
               val_fold: int | None = None, subset: str | None = None,
               split_file: Path | None = None) -> DatasetIndex:
    """Official 5-fold cross-validation: `test_fold` (default 1) is the test set, `val_fold` (if
    given) the validation set, the other folds train (a stratified `val_fraction` of them is the
    validation set without `val_fold`). Class indices follow the CSV's `target` column; with
    `subset="esc10"` the ten ESC-10 classes are renumbered 0..9 in target order."""
    k = parse_fold(split, len(FOLDS), "esc50")
    if split is not None and k is None:
        raise UserError(f"esc50 does not take `split` {split!r}: choose the official fold with "
                        f"`split` fold:K or `test_fold` K, K in 1..5 (and optionally `val_fold`)")
    if k is not None and test_fold is not None and test_fold != k:
        raise UserError(f"esc50: `split` {split} and `test_fold` {test_fold} name different folds")
    reject_options("esc50", split_file=split_file)
    if subset not in (None, "esc50", "esc10"):
        raise UserError(f"esc50 `subset` must be 'esc10' (or left out for all 50 classes), "
                        f"got {subset!r}")
    assert root is not None
    csv_path = root / "meta" / "esc50.csv"
    rows = read_table(csv_path, COLUMNS, "esc50", LAYOUT)

    def bad(msg: str, lines: list[int]) -> UserError:
        return bad_rows(csv_path, msg, lines, "fix or restore the official esc50.csv")

    parsed = []  # (line, filename, fold, target, category, esc10)
    bad_lines = []
    for line, r in rows:
        try:
            fold, target = int(r["fold"]), int(r["target"])
            esc10 = {"true": True, "false": False}[r["esc10"].strip().lower()]
        except (ValueError, KeyError):
            bad_lines.append(line)
            continue
        if fold not in FOLDS or target < 0 or not r["filename"]:
            bad_lines.append(line)
            continue
        parsed.append((line, r["filename"], fold, target, r["category"], esc10))
    if bad_lines:
        raise bad("fold must be 1-5, target a non-negative integer and esc10 True/False", bad_lines)
    check_relative(csv_path, [(p[0], p[1]) for p in parsed])
    check_duplicates(csv_path, [(p[0], p[1]) for p in parsed])
    if subset == "esc10":
        parsed = [p for p in parsed if p[5]]
    if not parsed:
        raise UserError(f"{csv_path} lists no clips" + (" marked esc10=True" if subset == "esc10" else ""))

    # class names = category ordered by target; one category per target
    categories: dict[int, str] = {}
    clash = []
    for line, _, _, target, category, _ in parsed:
        if categories.setdefault(target, category) != category:
            clash.append(line)
    if clash:
        raise bad("a target number is paired with two different categories", clash)
    order = sorted(categories)  # the identity on the official 50-class CSV; 0..9 for ESC-10
    index = {t: i for i, t in enumerate(order)}

    clips = [Clip(key=f"audio/{fname}", path=root / "audio" / fname, targets=(index[target],),
                  group=str(fold)) for _, fname, fold, target, _, _ in parsed]
    clips = check_files(csv_path, clips, [line for line, *_ in parsed])
    test_fold = k or (1 if test_fold is None else test_fold)
    splits = fold_split(clips, test_fold, val_fold, FOLDS, seed, val_fraction)
    name = "esc10" if subset == "esc10" else "esc50"
    split_name = (f"fold:{k}/{len(FOLDS)}" if k else f"fold{test_fold}") + \
        (f"-val{val_fold}" if val_fold is not None else "")
    return DatasetIndex(name=name, task="single-label", class_names=[categories[t] for t in order],
                        splits=splits, split_name=split_name, sample_rate=44100,
                        fold=(test_fold, len(FOLDS)))

