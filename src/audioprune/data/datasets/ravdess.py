"""RAVDESS (audio): 24 actors, 8 emotions; speaker-independent split by actor."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from audioprune.audio.frontend import FrontEndConfig
from audioprune.data.registry import register_dataset
from audioprune.data.splits import group_holdout, parse_fold, reject_options
from audioprune.data.types import Clip, DatasetIndex
from audioprune.errors import UserError

# modality-vocal channel-emotion-intensity-statement-repetition-actor
_NAME = re.compile(r"^(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)\.wav$", re.IGNORECASE)
_ACTOR_DIR = re.compile(r"^Actor_(\d\d)$")
EMOTIONS = ["neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"]  # codes 01..08
DEFAULT_TEST_ACTORS = (21, 22, 23, 24)
NUM_VAL_ACTORS = 2
FOLDS = 6  # "fold:K": 6 groups of consecutive actors (4 each of the 24)

LAYOUT = """<root>/Actor_NN/MM-VV-EE-II-SS-RR-AA.wav   e.g. Actor_12/03-01-05-01-02-01-12.wav
  (the unzipped Audio_Speech_Actors_01-24 and/or Audio_Song_Actors_01-24; Actor_* folders may
  also sit one folder down, e.g. <root>/Audio_Speech_Actors_01-24/Actor_01).
  Emotion = 3rd field (01..08: neutral, calm, happy, sad, angry, fearful, disgust, surprised),
  actor = last field. Split by actor: test actors 21-24 by default, or --split actors:1,2,3;
  validation = the two highest-numbered remaining actors (19 and 20 by default); the rest train."""


@register_dataset(
    "ravdess",
    description="RAVDESS emotional speech/song audio: 8 emotions, 24 actors; speaker-independent split",
    layout=LAYOUT,
    frontend=FrontEndConfig(sample_rate=32000, n_fft=1024, hop_length=320, n_mels=64, fmin=50.0,
                            fmax=14000.0, clip_seconds=4.0),
)
def load_ravdess(root: Path | None, *, split: str | None = None, seed: int = 0,
                 val_fraction: float = 0.1, test_fold: int | None = None,
                 val_fold: int | None = None, subset: str | None = None,
                 split_file: Path | None = None) -> DatasetIndex:
    """`split`: "actors:21,22,23,24" (the default) or "actors:N,M,..." names the test actors; the two
    highest-numbered other actors are the validation set, the rest train (no actor in two sets).
    `Clip.group` is the actor ("Actor_NN"). `seed` and `val_fraction` are not used."""
    reject_options("ravdess", test_fold=test_fold, val_fold=val_fold, subset=subset,
                   split_file=split_file)
    assert root is not None
    actor_dirs = _find_actor_dirs(root)
    clips, bad = [], []
    for d in actor_dirs:
        dir_actor = int(_ACTOR_DIR.match(d.name).group(1))  # type: ignore[union-attr]
        for f in sorted(d.iterdir()):
            m = _NAME.match(f.name)
            if not m:
                continue
            emotion, actor = int(m.group(3)), int(m.group(7))
            if not 1 <= emotion <= len(EMOTIONS) or actor != dir_actor:
                bad.append(f.relative_to(root).as_posix())
                continue
            clips.append(Clip(key=f.relative_to(root).as_posix(), path=f, targets=(emotion - 1,),
                              group=f"Actor_{actor:02d}"))
    if bad:
        raise UserError(f"{len(bad)} RAVDESS file(s) with an emotion code outside 01-08 or an actor "
                        f"field that differs from their Actor_NN folder (first: {', '.join(bad[:5])})")
    if not clips:
        raise UserError(f"no files named MM-VV-EE-II-SS-RR-AA.wav in the Actor_NN folders under "
                        f"{root}; ravdess expects:\n{LAYOUT}")

    actors = sorted({int(c.group[len("Actor_"):]) for c in clips})
    k = parse_fold(split, FOLDS, "ravdess")
    if k is not None:
        return _actor_fold(clips, actors, k)
    if split is None:
        test_actors = [a for a in DEFAULT_TEST_ACTORS if a in actors]
        if not test_actors:
            raise UserError(f"none of the default test actors {DEFAULT_TEST_ACTORS} found under "
                            f"{root}; choose test actors with `split` actors:N,M,...")
    else:
        test_actors = _parse_actors(split)
        absent = [a for a in test_actors if a not in actors]
        if absent:
            raise UserError(f"`split` {split}: actor(s) {', '.join(map(str, absent))} not found; "
                            f"actors present: {', '.join(map(str, actors))}")
    rest = [a for a in actors if a not in test_actors]
    if len(rest) <= NUM_VAL_ACTORS:
        raise UserError(f"ravdess needs at least {NUM_VAL_ACTORS + 1} actors outside the test set "
                        f"({NUM_VAL_ACTORS} for validation, 1+ for training); found "
                        f"{', '.join(map(str, rest)) or 'none'}")
    val_actors = rest[-NUM_VAL_ACTORS:]
    others, test = group_holdout(clips, {f"Actor_{a:02d}" for a in test_actors})
    train, val = group_holdout(others, {f"Actor_{a:02d}" for a in val_actors})
    return DatasetIndex(name="ravdess", task="single-label", class_names=list(EMOTIONS),
                        splits={"train": train, "val": val, "test": test},
                        split_name="actors:" + ",".join(map(str, test_actors)), sample_rate=48000,
                        notes=[f"test actors {', '.join(map(str, test_actors))}; validation actors "
                               f"{', '.join(map(str, val_actors))}"])


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


def _actor_fold(clips: list[Clip], actors: list[int], k: int) -> DatasetIndex:
    """Fold k of the 6-fold actor cross-validation: the actors in name order dealt into 6 groups
    of consecutive actors (4 each for the 24 of the full set); group k tests, the first two actors
    of the next group validate, the rest train. No actor is in two sets."""
    if len(actors) < 2 * FOLDS:
        raise UserError(f"ravdess `split` fold:{k}: the {FOLDS}-fold actor cross-validation needs "
                        f"at least {2 * FOLDS} actors; found {len(actors)}")
    groups = [list(g) for g in np.array_split(np.array(actors), FOLDS)]
    test_actors = [int(a) for a in groups[k - 1]]
    val_actors = [int(a) for a in groups[k % FOLDS][:NUM_VAL_ACTORS]]
    others, test = group_holdout(clips, {f"Actor_{a:02d}" for a in test_actors})
    train, val = group_holdout(others, {f"Actor_{a:02d}" for a in val_actors})
    return DatasetIndex(name="ravdess", task="single-label", class_names=list(EMOTIONS),
                        splits={"train": train, "val": val, "test": test},
                        split_name=f"fold:{k}/{FOLDS}", sample_rate=48000, fold=(k, FOLDS),
                        notes=[f"test actors {', '.join(map(str, test_actors))}; validation "
                               f"actors {', '.join(map(str, val_actors))}"])


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
