"""Split helpers shared by the loaders: folds, seeded stratified hold-outs, group hold-outs."""

from __future__ import annotations

from collections import defaultdict
from typing import Iterable

import numpy as np

from audioprune.data.types import Clip
from audioprune.errors import UserError


def stratified_holdout(clips: list[Clip], fraction: float, seed: int) -> tuple[list[Clip], list[Clip]]:
    """Split `clips` into (kept, held_out) with about `fraction` of every class held out.

    Stratified on the first target; deterministic for a seed; at least one clip of each class
    with two or more clips goes to the held-out part when fraction > 0.
    """
    if not 0 <= fraction < 1:
        raise UserError(f"`val_fraction` (a split fraction) must be in [0, 1), got {fraction}")
    if fraction == 0:
        return list(clips), []
    rng = np.random.default_rng(seed)
    by_class: dict[int, list[Clip]] = defaultdict(list)
    for c in sorted(clips, key=lambda c: c.key):
        by_class[c.targets[0] if c.targets else -1].append(c)
    kept, held = [], []
    for cls in sorted(by_class):
        members = by_class[cls]
        order = rng.permutation(len(members))
        n_held = int(round(fraction * len(members)))
        if len(members) >= 2:
            n_held = min(max(n_held, 1), len(members) - 1)
        else:
            n_held = 0
        held += [members[i] for i in order[:n_held]]
        kept += [members[i] for i in order[n_held:]]
    return sorted(kept, key=lambda c: c.key), sorted(held, key=lambda c: c.key)


def group_holdout(clips: Iterable[Clip], groups: set[str]) -> tuple[list[Clip], list[Clip]]:
    """Split into (others, clips whose group is in `groups`): leave-speaker/actor/device-out."""
    others, held = [], []
    for c in clips:
        (held if c.group in groups else others).append(c)
    return others, held


def fold_split(clips: list[Clip], test_fold: int, val_fold: int | None, folds: list[int],
               seed: int, val_fraction: float) -> dict[str, list[Clip]]:
    """Official cross-validation: `test_fold` is the test set, `val_fold` (if given) the
    validation set, the rest train; without a val fold a stratified `val_fraction` of the
    training folds is held out for early stopping. `Clip.group` must be the fold number."""
    names = [str(f) for f in folds]
    if str(test_fold) not in names:
        raise UserError(f"`test_fold` {test_fold} does not exist; folds are {', '.join(names)}")
    if val_fold is not None and (str(val_fold) not in names or val_fold == test_fold):
        raise UserError(f"`val_fold` {val_fold} must be one of {', '.join(names)} and differ "
                        f"from `test_fold` {test_fold}")
    test = [c for c in clips if c.group == str(test_fold)]
    rest = [c for c in clips if c.group != str(test_fold)]
    if val_fold is not None:
        val = [c for c in rest if c.group == str(val_fold)]
        train = [c for c in rest if c.group != str(val_fold)]
    else:
        train, val = stratified_holdout(rest, val_fraction, seed)
    if not test:
        raise UserError(f"test fold {test_fold} holds no clips")
    return {"train": train, "val": val, "test": test}


def reject_options(dataset: str, **given: object) -> None:
    """Fail clearly when an option that this dataset does not use was set."""
    bad = [k for k, v in given.items() if v not in (None, False)]
    if bad:
        opts = ", ".join(f"`{k}`" for k in bad)
        raise UserError(f"dataset {dataset!r} does not take {opts}")
