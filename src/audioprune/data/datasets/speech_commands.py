"""Google Speech Commands (v0.01: 30 words, v0.02: 35 words), as the official archive unpacks.

One folder per word holding ``<speaker>_nohash_<n>.wav`` (the speaker id is the file name's
prefix; ``n`` numbers that speaker's takes of the word), ``validation_list.txt`` and
``testing_list.txt`` naming the validation and test clips one ``word/file.wav`` a line, and a
``_background_noise_`` folder of long noise recordings, which is not a class and is ignored.

The official split is the lists' (every other clip trains); the release built them by hashing
the speaker id, so no speaker is in two of them. ``split="fold:K"`` (``fold:K/N``, N = 5 by
default) is a speaker cross-validation made the same way: each speaker's fold is fixed by a
hash of its id (a speaker missing from the tree moves nobody else), fold K tests, the next
fold (K+1, the first after the last) validates, the rest train. A file whose name is not
``<speaker>_nohash_<n>.<audio extension>`` is left out and reported (``DatasetIndex.problems``;
``audioprune datasets check speech_commands`` lists them), never guessed at. The lists may name
``.wav`` files held in another audio format (a converted copy: the same name, ``.flac``).
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from audioprune.audio.frontend import FrontEndConfig
from audioprune.audio.io import AUDIO_EXTENSIONS
from audioprune.data.registry import register_dataset
from audioprune.data.splits import DEFAULT_FOLDS, folds_of, group_holdout, parse_fold, reject_options
from audioprune.data.tables import check_duplicates, check_files, check_relative, readable
from audioprune.data.types import Clip, DatasetIndex, Problem
from audioprune.errors import UserError

_NAME = re.compile(r"^([0-9A-Za-z]+)_nohash_(\d+)$")  # the stem: speaker id, take number
NOISE_DIR = "_background_noise_"
LISTS = {"val": "validation_list.txt", "test": "testing_list.txt"}

LAYOUT = """<root>/<word>/<speaker>_nohash_<n>.wav   e.g. yes/0a7c2a8d_nohash_0.wav
<root>/validation_list.txt, <root>/testing_list.txt   one word/file.wav a line
<root>/_background_noise_/                 (noise recordings: ignored)
  (speech_commands_v0.01 or v0.02 unpacked; the word folders are the classes, sorted).
  Official split: the two lists validate and test, every other clip trains. --fold K
  (fold:K/N, N = 5): speaker cross-validation, each speaker's fold fixed by a hash of its id;
  fold K tests, fold K+1 validates; no speaker is in two sets."""


@register_dataset(
    "speech_commands",
    description="Google Speech Commands keyword spotting: 30/35 words, 16 kHz 1 s clips; "
                "official lists or speaker folds",
    layout=LAYOUT,
    frontend=FrontEndConfig(sample_rate=16000, n_fft=512, hop_length=160, n_mels=64, fmin=20.0,
                            fmax=8000.0, clip_seconds=1.0),
    signature=(LISTS["test"], LISTS["val"], NOISE_DIR),
)
def load_speech_commands(root: Path | None, *, split: str | None = None, seed: int = 0,
                         val_fraction: float | None = None, test_fold: int | None = None,
                         val_fold: int | None = None, subset: str | None = None,
                         split_file: Path | None = None) -> DatasetIndex:
    """`split`: "official" (default: validation_list.txt and testing_list.txt) or "fold:K" /
    "fold:K/N" (speaker folds, see the module docs). `Clip.group` is the speaker id. `seed` and
    `val_fraction` are not used: validation is a list or a fold of speakers."""
    reject_options("speech_commands", test_fold=test_fold, val_fold=val_fold, subset=subset,
                   split_file=split_file, val_fraction=val_fraction)
    assert root is not None
    words = sorted(d.name for d in root.iterdir()
                   if d.is_dir() and not d.name.startswith((".", "_")))
    if not words:
        raise UserError(f"no word folders under {root}; speech_commands expects:\n{LAYOUT}")
    target = {w: i for i, w in enumerate(words)}
    on_disk: dict[str, Clip] = {}  # "word/stem" -> clip
    misnamed: set[str] = set()  # "word/stem" of the files left out for their names
    problems: list[Problem] = []
    for word in words:
        for f in sorted((root / word).iterdir()):
            if not f.is_file() or f.suffix.lower() not in AUDIO_EXTENSIONS:
                continue
            key = f"{word}/{f.name}"
            m = _NAME.match(f.stem)
            if not m:
                misnamed.add(f"{word}/{f.stem}")
                problems.append(Problem("misnamed", f"{key}: not an official name "
                                        f"<speaker>_nohash_<n> (e.g. 0a7c2a8d_nohash_0.wav); "
                                        f"rename it or remove it", key))
                continue
            on_disk[f"{word}/{f.stem}"] = Clip(key=key, path=f, targets=(target[word],),
                                               group=m.group(1))
    if not on_disk:
        raise UserError(f"no files named <speaker>_nohash_<n>.wav in the word folders under "
                        f"{root}; speech_commands expects:\n{LAYOUT}")
    clips = sorted(on_disk.values(), key=lambda c: c.key)
    speakers = sorted({c.group for c in clips})
    split = split or "official"
    k = parse_fold(split, None, "speech_commands")
    if k is not None:
        n = folds_of(split, None)
        fold_of = {s: speaker_fold(s, n) for s in speakers}
        test_groups = {s for s in speakers if fold_of[s] == k}
        val_groups = {s for s in speakers if fold_of[s] == k % n + 1}
        if not test_groups:
            raise UserError(f"speech_commands `split` {split}: no speaker of the tree falls in "
                            f"fold {k} of {n} ({len(speakers)} speakers); choose fewer folds")
        rest, test = group_holdout(clips, test_groups)
        train, val = group_holdout(rest, val_groups)
        others = len(speakers) - len(test_groups) - len(val_groups)
        return DatasetIndex(name="speech_commands", task="single-label", class_names=words,
                                splits={"train": train, "val": val, "test": test},
                            split_name=f"fold:{k}/{n}", sample_rate=16000, fold=(k, n),
                            problems=problems, notes=[
                                f"speakers: {len(test_groups)} test (fold {k}), "
                                f"{len(val_groups)} validation (fold {k % n + 1}), {others} "
                                f"training"])
    if split != "official":
        raise UserError(f"speech_commands `split` must be 'official' (the release's validation "
                        f"and testing lists) or fold:K[/N] (speaker folds, N = {DEFAULT_FOLDS} "
                        f"by default), got {split!r}")
    listed: dict[str, list[Clip]] = {}
    for part, name in LISTS.items():
        listed[part] = _read_list(root / name, on_disk, misnamed, target, problems)
    both = {c.key for c in listed["val"]} & {c.key for c in listed["test"]}
    for key in sorted(both):
        problems.append(Problem("listed twice", f"{key} is in both {LISTS['val']} and "
                                f"{LISTS['test']}; it is kept in the test set only", key))
    listed["val"] = [c for c in listed["val"] if c.key not in both]
    held = {c.key for part in listed.values() for c in part}
    train = [c for c in clips if c.key not in held]
    shared = sorted({c.group for c in listed["test"]} & {c.group for c in train})
    notes = ([f"{len(shared)} speaker(s) of {LISTS['test']} also speak in training clips "
              f"(e.g. {', '.join(shared[:3])}); the release's lists keep speakers apart"]
             if shared else [])
    return DatasetIndex(name="speech_commands", task="single-label", class_names=words,
                        splits={"train": train, "val": listed["val"], "test": listed["test"]},
                        split_name="official", sample_rate=16000, problems=problems, notes=notes)


def speaker_fold(speaker: str, n: int) -> int:
    """The fold (1..n) of a speaker: fixed by its id alone (SHA-1, as the release's lists)."""
    return int(hashlib.sha1(speaker.encode("utf-8")).hexdigest(), 16) % n + 1


def _read_list(path: Path, on_disk: dict[str, Clip], misnamed: set[str],
               target: dict[str, int], problems: list[Problem]) -> list[Clip]:
    """The clips a split list names (one word/file a line), matched to the files by word and
    name without extension; entries missing on disk are an error (or, with `skip_missing`,
    left out), entries naming no word folder or an unofficial name are reported."""
    if not path.is_file():
        raise UserError(f"{path} not found; speech_commands expects:\n{LAYOUT}")
    with readable(path), open(path, encoding="utf-8") as fh:
        entries = [(i, line.strip()) for i, line in enumerate(fh, start=1) if line.strip()]
    check_relative(path, entries)
    check_duplicates(path, entries)
    clips, lines = [], []
    for line, rel in entries:
        word, _, name = rel.partition("/")
        stem = Path(name).stem
        if not name or "/" in name or word not in target:
            problems.append(Problem("unknown entry", f"{path.name} line {line}: {rel} names no "
                                    f"word folder of the tree (word/file.wav expected)", rel))
            continue
        if f"{word}/{stem}" in misnamed:
            continue  # left out for its name, reported with the files
        clip = on_disk.get(f"{word}/{stem}")
        clips.append(clip or Clip(key=rel, path=None, targets=(target[word],)))
        lines.append(line)
    return check_files(path, clips, lines)
