"""`audioprune datasets check`: validate a dataset tree without training.

Resolves the layout (metadata errors surface exactly as in training), decodes every file once at
its native rate, and reports what training would see: files, classes per split, groups (folds,
speakers, actors, devices), sample rates, channels, durations, and EVERY problem in one pass --
files the metadata lists but the disk lacks, audio files on disk the metadata does not list
(with the closest listed name: a typo?), files training would skip (with the reason), identical
audio listed twice (worst across train and test), a mix of sample rates, empty splits, classes
with no training clip. Nothing is written; the feature cache is not touched.
"""

from __future__ import annotations

import difflib
import hashlib
import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import soundfile as sf

from audioprune.audio.io import load_audio
from audioprune.data.registry import get_dataset_info, inferred_frontend, load_dataset
from audioprune.data.types import DatasetIndex, Problem
from audioprune.errors import AudioDecodeError, UserError
from audioprune.progress import progress_bar

@dataclass
class DatasetReport:
    """What `check_dataset` found; `problems` empty means training will use every listed file."""

    index: DatasetIndex
    root: str | None
    clip_seconds: float | None
    undecodable: dict[str, str] = field(default_factory=dict)  # key -> reason
    missing: list[str] = field(default_factory=list)  # listed, not on disk
    unlisted: dict[str, str | None] = field(default_factory=dict)  # on disk, not listed -> closest
    duplicates: list[list[str]] = field(default_factory=list)  # keys of identical audio
    sample_rates: Counter = field(default_factory=Counter)
    channels: Counter = field(default_factory=Counter)
    durations: list[float] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    folds: list[dict[str, Any]] = field(default_factory=list)  # per fold: k, test and val groups

    @property
    def files(self) -> int:
        return sum(len(v) for v in self.index.splits.values())

    def problems_by_kind(self) -> dict[str, list[str]]:
        """Problem texts grouped by kind, kinds in the order first met."""
        grouped: dict[str, list[str]] = {}
        for p in self.problems:
            grouped.setdefault(p.kind, []).append(p.text)
        return grouped

    def to_dict(self) -> dict[str, Any]:
        """The report as `datasets check --json` prints it."""
        ix = self.index
        counts = {k: Counter(t for c in v for t in c.targets) for k, v in ix.splits.items()}
        d = self.durations
        return {
            "dataset": ix.name, "split": ix.split_name, "task": ix.task, "root": self.root,
            "files": self.files, "decoded": self.files - len(self.undecodable),
            "undecodable": len(self.undecodable),
            "sample_rates": {str(k): v for k, v in sorted(self.sample_rates.items())},
            "channels": {str(k): v for k, v in sorted(self.channels.items())},
            "duration_seconds": ({"min": min(d), "median": statistics.median(d), "max": max(d)}
                                 if d else None),
            "clip_seconds": self.clip_seconds,
            "splits": {k: len(v) for k, v in ix.splits.items()},
            "classes": {name: {k: counts[k][i] for k in ix.splits}
                        for i, name in enumerate(ix.class_names)},
            "groups": dict(sorted(Counter(c.group for v in ix.splits.values() for c in v
                                          if c.group).items(), key=lambda kv: _natural(kv[0]))),
            "folds": self.folds, "notes": self.notes,
            "problems": [{"kind": p.kind, "text": p.text} for p in self.problems],
        }

    def render(self) -> str:
        """The report as printed by the CLI: every problem, grouped by kind with counts."""
        ix = self.index
        lines = [f"{ix.name} [{ix.split_name}] {ix.task}, {ix.num_classes} classes"
                 + (f", data root {self.root}" if self.root else "")]
        decoded = self.files - len(self.undecodable)
        if ix.render is not None:
            lines.append(f"files: {self.files} clips generated in memory (nothing to decode)")
        else:
            lines.append(f"files: {self.files} listed, {decoded} decode, "
                         f"{len(self.undecodable)} undecodable")
        if self.sample_rates:
            lines.append("sample rates: " + ", ".join(f"{sr} Hz x {n}"
                                                      for sr, n in sorted(self.sample_rates.items())))
            lines.append("channels: " + ", ".join(f"{_channels(c)} x {n}"
                                                  for c, n in sorted(self.channels.items())))
        if self.durations:
            d = self.durations
            text = (f"duration: min {min(d):.2f} s, median {statistics.median(d):.2f} s, "
                    f"max {max(d):.2f} s")
            if self.clip_seconds:
                short = sum(x < self.clip_seconds for x in d)
                longer = sum(x > self.clip_seconds for x in d)
                text += (f"; training clips are {self.clip_seconds:g} s: {short} shorter "
                         f"(zero-padded), {longer} longer (cropped)")
            lines.append(text)
        lines.append("splits: " + ", ".join(f"{k} {len(v)}" for k, v in ix.splits.items()))
        lines.append("classes (" + "/".join(ix.splits) + "):")
        counts = {k: Counter(t for c in v for t in c.targets) for k, v in ix.splits.items()}
        width = max(len(n) for n in ix.class_names)
        for i, name in enumerate(ix.class_names):
            lines.append(f"  {name:<{width}}  " + "/".join(str(counts[k][i]) for k in ix.splits))
        groups = Counter(c.group for v in ix.splits.values() for c in v if c.group)
        if groups:
            lines.append(f"groups ({len(groups)}): " + _some([
                f"{g} {n}" for g, n in sorted(groups.items(), key=lambda kv: _natural(kv[0]))]))
        if self.folds:
            lines.append(f"cross-validation ({len(self.folds)} folds, split fold:K):")
            lines += [f"  fold {f['fold']}: test {_some(f['test'])}; validation "
                      f"{_some(f['val']) or 'a part of the training groups'}"
                      for f in self.folds]
        for note in self.notes:
            lines.append(f"note: {note}")
        if self.problems:
            lines.append(f"problems ({len(self.problems)}):")
            for kind, texts in self.problems_by_kind().items():
                lines.append(f"  {kind} ({len(texts)}):")
                lines += [f"    {t}" for t in texts]
            lines.append("training skips undecodable files with a warning (--strict: an error)")
        else:
            lines.append("problems: none")
        return "\n".join(lines)


def check_dataset(name: str, root: str | Path | None, options: dict[str, Any] | None = None,
                  seed: int = 0, progress: bool = True, folds: bool = True) -> DatasetReport:
    """Resolve dataset `name` under `root` with loader `options` and inspect every file; with
    `folds`, also list each cross-validation fold's test and validation groups."""
    index = load_dataset(name, root, seed=seed, skip_missing=True, **(options or {}))
    fe, inferred = inferred_frontend(name, index, get_dataset_info(name).frontend, {})
    report = DatasetReport(index, str(root) if root is not None else None, fe.clip_seconds,
                           notes=[n for n in index.notes if "skip_missing" not in n]
                           + ([f"training reads the {inferred}"] if inferred else []),
                           missing=list(index.missing))
    if root is not None and index.render is None:
        report.unlisted = _unlisted(index, Path(root))
    report.folds = _fold_groups(name, root, options or {}, seed) if folds else []
    by_content: dict[str, list[str]] = defaultdict(list)
    split_of = {c.key: split for split, clips in index.splits.items() for c in clips}
    clips = [c for v in index.splits.values() for c in v]
    if index.render is None:
        for clip in progress_bar(clips, desc=f"checking {name}", unit="file", enabled=progress,
                                 leave=False):
            try:
                if clip.path is None:
                    raise AudioDecodeError(f"clip {clip.key} has no file")
                wave = load_audio(clip.path, mono=False)
                sr = sf.info(str(clip.path)).samplerate
            except AudioDecodeError as exc:
                report.undecodable[clip.key] = str(exc)
                continue
            report.sample_rates[sr] += 1
            report.channels[wave.shape[0]] += 1
            report.durations.append(wave.shape[1] / sr)
            digest = hashlib.sha256(wave.tobytes() + str(sr).encode()).hexdigest()
            by_content[digest].append(clip.key)
    report.duplicates = [sorted(keys) for keys in by_content.values() if len(keys) > 1]
    _judge(report, split_of)
    return report


AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".aiff", ".aif", ".au", ".mp3"}


def _unlisted(index: DatasetIndex, root: Path) -> dict[str, str | None]:
    """Audio files in the folders that hold the listed clips but that the metadata does not list,
    each with the closest listed name (a typo such as "2-102-A-2 wav" for "2-102-A-2.wav")."""
    listed = {c.key for v in index.splits.values() for c in v} | set(index.missing) | \
        {p.key for p in index.problems if p.key}  # the loader's own findings name these
    folders = {str(Path(k).parent) for k in listed}
    names = sorted(listed)
    missing = sorted(index.missing)  # a file on disk near a missing entry: most likely its typo
    out: dict[str, str | None] = {}
    for folder in sorted(folders):
        where = root / folder
        if not where.is_dir():
            continue
        for path in sorted(where.iterdir()):
            key = (Path(folder) / path.name).as_posix() if folder != "." else path.name
            if path.suffix.lower() in AUDIO_SUFFIXES and key not in listed:
                close = (difflib.get_close_matches(key, missing, n=1, cutoff=0.8)
                         or difflib.get_close_matches(key, names, n=1, cutoff=0.9))
                out[key] = close[0] if close else None
    return out


def _judge(report: DatasetReport, split_of: dict[str, str]) -> None:
    """Turn the findings into problems (what training would trip over or silently get wrong)
    and notes (worth knowing, harmless)."""
    ix = report.index
    add = report.problems.append
    report.problems.extend(ix.problems)  # what the loader itself found and left out
    for key in report.missing:
        near = [f for f, c in report.unlisted.items() if c == key]
        hint = f" ({near[0]} is on disk: a renamed or mistyped entry?)" if near else ""
        add(Problem("missing", f"{key} is listed but not on disk{hint}", key))
    for key, close in report.unlisted.items():
        hint = f"; closest listed name: {close}" if close else ""
        add(Problem("unlisted", f"{key} is on disk but not in the metadata{hint}", key))
    if len(report.sample_rates) > 1:
        rates = ", ".join(f"{sr} Hz x {n}" for sr, n in sorted(report.sample_rates.items(),
                                                             key=lambda kv: -kv[1]))
        add(Problem("sample rates", f"sample rates differ: {rates} (all are resampled to the "
                    f"model's rate; odd ones out may be other recordings or bad conversions)"))
    for key, reason in report.undecodable.items():
        add(Problem("undecodable", reason, key))
    for keys in report.duplicates:
        where = sorted({split_of[k] for k in keys})
        if len(where) > 1:
            leak = " (the same audio is trained and tested on)" if "test" in where else ""
            add(Problem("identical audio", f"{', '.join(keys)}: in {' and '.join(where)}{leak}"))
        else:  # one split: counted twice, nothing leaks between splits
            report.notes.append(f"identical audio within the {where[0]} split (counted twice, "
                                f"no leak between splits): {', '.join(keys)}")
    usable = {k: [c for c in v if c.key not in report.undecodable] for k, v in ix.splits.items()}
    for split in ("train", "test"):
        if not usable.get(split):
            add(Problem("empty split", f"the {split} split holds no usable clip"))
    if not usable.get("val"):
        report.notes.append("the validation split is empty: the best epoch is chosen by "
                            "training loss")
    trained = Counter(t for c in usable.get("train", []) for t in c.targets)
    absent = [n for i, n in enumerate(ix.class_names) if trained[i] == 0]
    if absent and usable.get("train"):
        tested = Counter(t for c in usable.get("test", []) for t in c.targets)
        add(Problem("class without training clip", f"{len(absent)} class(es) without a usable "
                    f"training clip: {', '.join(absent)}"
                    + (f" (their {lost} test clip(s) can only be misclassified)"
                       if (lost := sum(tested[ix.class_names.index(n)] for n in absent)) else "")))


def _fold_groups(name: str, root: str | Path | None, options: dict[str, Any],
                 seed: int) -> list[dict[str, Any]]:
    """Each fold's test and validation groups (speakers, actors, folds) for a dataset with
    cross-validation folds whose clips carry groups; [] otherwise."""
    base = {k: v for k, v in options.items() if k not in ("split", "test_fold", "val_fold")}
    folds: list[dict[str, Any]] = []
    k, n = 1, 1
    while k <= n:
        try:
            ix = load_dataset(name, root, seed=seed, skip_missing=True, split=f"fold:{k}", **base)
        except UserError:
            return []
        if ix.fold is None:
            return []
        n = ix.fold[1]
        test = sorted({c.group for c in ix.splits["test"] if c.group}, key=_natural)
        if not test:
            return []
        val = sorted({c.group for c in ix.splits.get("val", []) if c.group}, key=_natural)
        if set(val) & {c.group for c in ix.splits["train"]}:
            val = []  # a held-out part of the training groups, not groups of its own
        folds.append({"fold": k, "test": test, "val": val})
        k += 1
    return folds


def _some(items: list[str], most: int = 24) -> str:
    """The first `most` items, comma-separated, and how many there are when that is not all
    (Speech Commands has thousands of speakers; --json lists every one)."""
    shown = ", ".join(items[:most])
    return shown + (f", ... ({len(items)} in all)" if len(items) > most else "")


def _channels(n: int) -> str:
    return {1: "mono", 2: "stereo"}.get(n, f"{n} channels")


def _natural(text: str) -> tuple:
    """Sort fold "10" after fold "9"."""
    return (0, int(text), "") if text.isdigit() else (1, 0, text)
