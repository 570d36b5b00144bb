"""RAVDESS (audio): 24 actors, 8 emotions; speaker-independent splits by actor.

The official file names carry every label (modality-channel-emotion-intensity-statement-
repetition-actor), so the loader checks each name against the release: a file that does not
parse, holds a field outside the release's values, or names another actor than its Actor_NN
folder is left out and reported (`DatasetIndex.problems`; `audioprune datasets check` lists
them), never guessed at. The actor folds are fixed by actor number (fold k tests actors
4k-3..4k: two men, odd numbers, and two women, even numbers), so a tree with an actor missing
keeps every other fold identical to the full protocol's.
"""

from __future__ import annotations

import re
from pathlib import Path

from audioprune.audio.frontend import FrontEndConfig
from audioprune.audio.io import AUDIO_EXTENSIONS
from audioprune.data.registry import register_dataset
from audioprune.data.splits import group_holdout, parse_fold, reject_options
from audioprune.data.types import Clip, DatasetIndex, Problem
from audioprune.errors import UserError

# modality-vocal channel-emotion-intensity-statement-repetition-actor, any audio extension
_NAME = re.compile(r"^(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)(\.[A-Za-z0-9]+)$")
_ACTOR_DIR = re.compile(r"^Actor_(\d\d)$")
EMOTIONS = ["neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"]  # codes 01..08
ACTORS = tuple(range(1, 25))  # the release's actors: odd numbers men, even numbers women
DEFAULT_TEST_ACTORS = (21, 22, 23, 24)
NUM_VAL_ACTORS = 2
FOLDS = 6  # "fold:K": actors 4K-3..4K test
ACTORS_PER_FOLD = len(ACTORS) // FOLDS
# (field position, name, allowed codes) of the official names
_FIELDS = ((0, "modality", {1, 2, 3}), (1, "vocal channel", {1, 2}),
           (2, "emotion", set(range(1, 9))), (3, "intensity", {1, 2}), (4, "statement", {1, 2}),
           (5, "repetition", {1, 2}), (6, "actor", set(ACTORS)))

LAYOUT = """<root>/Actor_NN/MM-VV-EE-II-SS-RR-AA.wav   e.g. Actor_12/03-01-05-01-02-01-12.wav
  (the unzipped Audio_Speech_Actors_01-24 and/or Audio_Song_Actors_01-24, as .wav or in any
  format the audio reader takes: .flac, .ogg, ...; Actor_* folders may also sit one folder down,
  e.g. <root>/Audio_Speech_Actors_01-24/Actor_01).
  Emotion = 3rd field (01..08: neutral, calm, happy, sad, angry, fearful, disgust, surprised),
  actor = last field (01-24; odd men, even women). Split by actor: test actors 21-24 by
  default, or --split actors:1,2,3; validation = the two highest-numbered remaining actors (19
  and 20 by default); the rest train. Cross-validation (--fold K, 1-6): actors 4K-3..4K test,
  one man and one woman of the next group validate."""


@register_dataset(
    "ravdess",
    description="RAVDESS emotional speech/song audio: 8 emotions, 24 actors; speaker-independent split",
    layout=LAYOUT,
    # measured, not assumed: bench/ravdess_frontend.py (bench/results/ravdess_frontend.json). On
    # the validation actors of folds 1, 3, 5 every front end tried (the AudioSet 32 kHz setting,
    # 16 kHz at 10 and 20 ms hops, 40 and 64 mels, 4 and 5.3 s clips) tied within the intervals;
    # this one, the cheapest of the ties (0.31 of the AudioSet setting's MACs), was chosen
    frontend=FrontEndConfig(sample_rate=16000, n_fft=512, hop_length=320, n_mels=40, fmin=50.0,
                            fmax=8000.0, clip_seconds=4.0),
    signature=("Actor_[0-9][0-9]", "*/Actor_[0-9][0-9]"),
)
def load_ravdess(root: Path | None, *, split: str | None = None, seed: int = 0,
                 val_fraction: float = 0.1, test_fold: int | None = None,
                 val_fold: int | None = None, subset: str | None = None,
                 split_file: Path | None = None) -> DatasetIndex:
    """`split`: "actors:21,22,23,24" (the default) or "actors:N,M,..." names the test actors; the two
    highest-numbered other actors are the validation set, the rest train (no actor in two sets);
    "fold:K" is fold K of the 6-fold actor cross-validation. `Clip.group` is the actor
    ("Actor_NN"). `seed` and `val_fraction` are not used."""
    reject_options("ravdess", test_fold=test_fold, val_fold=val_fold, subset=subset,
                   split_file=split_file)
    assert root is not None
    clips, problems = _index(root, _find_actor_dirs(root))
    if not clips:
        raise UserError(f"no files named MM-VV-EE-II-SS-RR-AA.<audio extension> in the Actor_NN "
                        f"folders under {root}; ravdess expects:\n{LAYOUT}")
    actors = sorted({int(c.group[len("Actor_"):]) for c in clips})
    absent = [a for a in ACTORS if a not in actors]
    if absent:
        problems.append(Problem("missing actor", f"no clips of {', '.join(f'Actor_{a:02d}' for a in absent)} "
                                f"(the release has actors 01-24); fold "
                                f"{', '.join(str(f) for f in sorted({_fold_of(a) for a in absent}))} "
                                f"then tests fewer actors than the full protocol"))
    k = parse_fold(split, FOLDS, "ravdess")
    if k is not None:
        test_actors, val_actors = fold_actors(k, actors)
        split_name, fold = f"fold:{k}/{FOLDS}", (k, FOLDS)
    else:
        test_actors = _test_actors(split, actors, root)
        rest = [a for a in actors if a not in test_actors]
        if len(rest) <= NUM_VAL_ACTORS:
            raise UserError(f"ravdess needs at least {NUM_VAL_ACTORS + 1} actors outside the test "
                            f"set ({NUM_VAL_ACTORS} for validation, 1+ for training); found "
                            f"{', '.join(map(str, rest)) or 'none'}")
        val_actors = rest[-NUM_VAL_ACTORS:]
        split_name, fold = "actors:" + ",".join(map(str, test_actors)), None
    others, test = group_holdout(clips, {f"Actor_{a:02d}" for a in test_actors})
    train, val = group_holdout(others, {f"Actor_{a:02d}" for a in val_actors})
    notes = [f"test actors {', '.join(map(str, test_actors))}; validation actors "
             f"{', '.join(map(str, val_actors))}"]
    return DatasetIndex(name="ravdess", task="single-label", class_names=list(EMOTIONS),
                        splits={"train": train, "val": val, "test": test}, split_name=split_name,
                        sample_rate=48000, fold=fold, notes=notes, problems=problems)


def _index(root: Path, actor_dirs: list[Path]) -> tuple[list[Clip], list[Problem]]:
    """Every well-named clip of the Actor_NN folders, and a problem for each file left out."""
    clips: list[Clip] = []
    problems: list[Problem] = []
    for d in actor_dirs:
        dir_actor = int(_ACTOR_DIR.match(d.name).group(1))  # type: ignore[union-attr]
        for f in sorted(d.iterdir()):
            if f.suffix.lower() not in AUDIO_EXTENSIONS:
                continue
            key = f.relative_to(root).as_posix()
            why = _name_problem(f.name)
            if why:
                problems.append(Problem("misnamed", f"{key}: {why}", key))
                continue
            codes = [int(x) for x in f.name[:20].split("-")]
            if codes[6] != dir_actor:
                problems.append(Problem("wrong folder", f"{key}: its actor field is "
                                        f"{codes[6]:02d} but it is in {d.name}; move it to "
                                        f"Actor_{codes[6]:02d} or fix its name", key))
                continue
            clips.append(Clip(key=key, path=f, targets=(codes[2] - 1,), group=f"Actor_{dir_actor:02d}"))
    return clips, problems


def _name_problem(name: str) -> str | None:
    """Why `name` is not an official RAVDESS name (None when it is)."""
    m = _NAME.match(name)
    if not m:
        return "not an official name MM-VV-EE-II-SS-RR-AA (seven two-digit fields, e.g. " \
               "03-01-05-01-02-01-12.wav)"
    codes = [int(g) for g in m.groups()[:7]]
    for pos, field, allowed in _FIELDS:
        if codes[pos] not in allowed:
            return f"{field} field {codes[pos]:02d} is not one of the release's " \
                   f"{', '.join(f'{a:02d}' for a in sorted(allowed))}"
    if codes[2] == 1 and codes[3] == 2:
        return "neutral (emotion 01) has no strong intensity (02) in the release"
    return None


def _fold_of(actor: int) -> int:
    return (actor - 1) // ACTORS_PER_FOLD + 1


def fold_actors(k: int, present: list[int]) -> tuple[list[int], list[int]]:
    """(test, validation) actors of fold `k`: the test actors are 4k-3..4k (those present); the
    validation actors are one man (odd) and one woman (even), the lowest-numbered present in the
    next group, else the group after it, so no actor is in two sets and validation is balanced
    by gender wherever the tree allows."""
    groups = [[a for a in ACTORS[i * ACTORS_PER_FOLD:(i + 1) * ACTORS_PER_FOLD] if a in present]
              for i in range(FOLDS)]
    test = groups[k - 1]
    if not test:
        raise UserError(f"ravdess `split` fold:{k} tests actors "
                        f"{k * ACTORS_PER_FOLD - 3}-{k * ACTORS_PER_FOLD}, and none of them is "
                        f"in the tree; choose test actors with `split` actors:N,M,...")
    val: list[int] = []
    for parity in (1, 0):  # a man, then a woman
        for step in range(1, FOLDS):
            pick = [a for a in groups[(k - 1 + step) % FOLDS] if a % 2 == parity and a not in val]
            if pick:
                val.append(pick[0])
                break
    if len(val) < NUM_VAL_ACTORS or len(present) - len(test) - len(val) < 1:
        raise UserError(f"ravdess `split` fold:{k}: the actor cross-validation needs a man and "
                        f"a woman to validate and an actor to train on outside actors "
                        f"{', '.join(map(str, test))}; the tree holds actors "
                        f"{', '.join(map(str, present))}")
    return test, sorted(val)


def _test_actors(split: str | None, actors: list[int], root: Path) -> list[int]:
    if split is None:
        test_actors = [a for a in DEFAULT_TEST_ACTORS if a in actors]
        if not test_actors:
            raise UserError(f"none of the default test actors {DEFAULT_TEST_ACTORS} found under "
                            f"{root}; choose test actors with `split` actors:N,M,...")
        return test_actors
    test_actors = _parse_actors(split)
    absent = [a for a in test_actors if a not in actors]
    if absent:
        raise UserError(f"`split` {split}: actor(s) {', '.join(map(str, absent))} not found; "
                        f"actors present: {', '.join(map(str, actors))}")
    return test_actors


def _find_actor_dirs(root: Path) -> list[Path]:
    """Actor_NN folders directly under `root`; if none, those one folder down (speech and song)."""
    def actor_dirs(d: Path) -> list[Path]:
        return sorted(p for p in d.iterdir() if p.is_dir() and _ACTOR_DIR.match(p.name))

    found = actor_dirs(root)
    if found:
        return found
    nested = [sub for sub in sorted(root.iterdir()) if sub.is_dir() and actor_dirs(sub)]
    if not nested:
        raise UserError(f"no Actor_NN folders under {root}; ravdess expects:\n{LAYOUT}")
    return [d for sub in nested for d in actor_dirs(sub)]


def _parse_actors(split: str) -> list[int]:
    usage = "ravdess `split` must look like actors:21,22,23,24 (test actor numbers 1-24)"
    if not split.startswith("actors:"):
        raise UserError(f"{usage}, got {split!r}")
    try:
        actors = [int(a) for a in split[len("actors:"):].split(",") if a.strip()]
    except ValueError:
        raise UserError(f"{usage}, got {split!r}") from None
    if not actors:
        raise UserError(f"{usage}, got {split!r}")
    return sorted(set(actors))
