"""Free Spoken Digit Dataset: recordings/{digit}_{speaker}_{index}.{wav,flac}, 8 kHz mono."""

from __future__ import annotations

import re
from pathlib import Path

from audioprune.audio.frontend import FrontEndConfig
from audioprune.data.registry import register_dataset
from audioprune.data.splits import group_holdout, parse_fold, reject_options, stratified_holdout
from audioprune.data.types import Clip, DatasetIndex
from audioprune.errors import UserError

_NAME = re.compile(r"^(\d)_([A-Za-z]+)_(\d+)\.(wav|flac)$")

LAYOUT = """<root>/recordings/{digit}_{speaker}_{index}.wav   (or .flac)
  e.g. recordings/0_george_0.wav; index 0-4 of each speaker and digit is the official test set"""


@register_dataset(
    "fsdd",
    description="Free Spoken Digit Dataset: 10 spoken digits, 8 kHz; official or leave-one-speaker-out split",
    layout=LAYOUT,
    frontend=FrontEndConfig(sample_rate=8000, n_fft=256, hop_length=80, n_mels=40, fmin=0.0,
                            fmax=4000.0, clip_seconds=1.0),
    signature=("recordings/[0-9]_*_[0-9]*.wav", "recordings/[0-9]_*_[0-9]*.flac"),
)
def load_fsdd(root: Path | None, *, split: str | None = None, seed: int = 0,
              val_fraction: float | None = None, test_fold: int | None = None,
              val_fold: int | None = None, subset: str | None = None,
              split_file: Path | None = None) -> DatasetIndex:
    """`split`: "official" (default; index 0-4 test), "speaker:NAME" (NAME's clips are the test
    set, the other speakers train; validation a stratified `val_fraction` (default 0.1) of train),
    "speaker:NAME,val:OTHER" (OTHER's clips are the validation set) or "fold:K": leave-one-speaker-
    out cross-validation, one fold per speaker in name order (george, jackson, lucas, nicolas,
    theo, yweweler): fold K holds speaker K out for testing and the next speaker (K+1, the first
    after the last) for validation.

    Why the last: with one speaker held out, validation clips of the training speakers are
    ~100 % right whatever the epoch, so choosing the best epoch on them is a coin toss for the
    held-out speaker; a held-out validation speaker makes early stopping and best-epoch choice
    measure the same thing the test does (speaker generalisation)."""
    reject_options("fsdd", test_fold=test_fold, val_fold=val_fold, subset=subset,
                   split_file=split_file)
    assert root is not None
    rec = root / "recordings"
    if not rec.is_dir():
        raise UserError(f"{rec} not found; fsdd expects:\n{LAYOUT}")
    clips = []
    for p in sorted(rec.iterdir()):
        m = _NAME.match(p.name)
        if not m:
            continue
        digit, speaker, index = int(m.group(1)), m.group(2), int(m.group(3))
        clips.append((Clip(key=f"recordings/{p.name}", path=p, targets=(digit,), group=speaker), index))
    if not clips:
        raise UserError(f"no files named {{digit}}_{{speaker}}_{{index}}.wav|flac in {rec}")
    split = split or "official"
    speakers = sorted({c.group for c, _ in clips})
    val_name = None  # a validation speaker, with "speaker:NAME,val:OTHER" or "fold:K"
    k = parse_fold(split, len(speakers), "fsdd")
    if k is not None:
        if len(speakers) < 3:
            raise UserError(f"fsdd `split` {split}: leave-one-speaker-out needs 3 or more speakers "
                            f"(test, validation, training); found {', '.join(speakers)}")
        name, val_name = speakers[k - 1], speakers[k % len(speakers)]
        train, test = group_holdout([c for c, _ in clips], {name})
    elif split == "official":
        test = [c for c, i in clips if i <= 4]
        train = [c for c, i in clips if i > 4]
    elif split.startswith("speaker:"):
        name, val_name = _speakers(split, speakers)
        train, test = group_holdout([c for c, _ in clips], {name})
    else:
        raise UserError(f"fsdd `split` must be 'official', 'speaker:NAME' or "
                        f"'speaker:NAME,val:OTHER' (NAME, OTHER among {', '.join(speakers)}), "
                        f"got {split!r}")
    if val_name is not None:
        if val_fraction is not None:
            raise UserError(f"`split` {split} makes {val_name}'s clips the validation set; "
                            f"drop `val_fraction` (or the ,val:{val_name} part)")
        train, val = group_holdout(train, {val_name})
    else:
        train, val = stratified_holdout(train, 0.1 if val_fraction is None else val_fraction, seed)
    return DatasetIndex(name="fsdd", task="single-label", class_names=[str(d) for d in range(10)],
                        splits={"train": train, "val": val, "test": test},
                        split_name=f"fold:{k}/{len(speakers)}" if k else split, sample_rate=8000,
                        fold=(k, len(speakers)) if k else None,
                        notes=[f"test speaker {name}, validation speaker {val_name}"] if k else [])


def _speakers(split: str, speakers: list[str]) -> tuple[str, str | None]:
    """("nicolas", "theo") from "speaker:nicolas,val:theo"; ("nicolas", None) from "speaker:nicolas"."""
    test_part, _, val_part = split.partition(",")
    name = test_part.split(":", 1)[1]
    val_name = None
    if val_part:
        if not val_part.startswith("val:"):
            raise UserError(f"`split` {split}: after the comma write val:SPEAKER, e.g. "
                            f"speaker:{name},val:OTHER (speakers: {', '.join(speakers)})")
        val_name = val_part[len("val:"):]
    for who in (name, val_name):
        if who is not None and who not in speakers:
            raise UserError(f"`split` {split}: no speaker {who!r}; speakers are {', '.join(speakers)}")
    if val_name == name:
        raise UserError(f"`split` {split}: the validation speaker must differ from the test speaker")
    return name, val_name
