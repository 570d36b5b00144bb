"""Split helpers shared by the loaders: folds, seeded stratified hold-outs, group hold-outs."""

from __future__ import annotations

import re
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


FOLD_PATTERN = re.compile(r"fold:(\d+)(?:/(\d+))?")


def parse_fold(split: str | None, folds: int | None, dataset: str) -> int | None:
    """K from a `split` "fold:K" (or "fold:K/N" when the dataset's number of folds is free, i.e.
    `folds` is None: N then defaults to DEFAULT_FOLDS); None when `split` is not a fold."""
    if not split:
        return None
    m = FOLD_PATTERN.fullmatch(split.strip())
    if not m:
        return None
    k = int(m.group(1))
    n = folds_of(split, folds)
    if folds is not None and m.group(2) is not None and int(m.group(2)) != folds:
        raise UserError(f"{dataset} `split` {split}: {dataset} has {folds} folds; write fold:K "
                        f"with K in 1..{folds}")
    if not 1 <= k <= n:
        raise UserError(f"{dataset} `split` {split}: the fold must be in 1..{n}")
    return k


def folds_of(split: str, folds: int | None) -> int:
    """N of "fold:K/N" (the dataset's fixed number of folds, or DEFAULT_FOLDS)."""
    if folds is not None:
        return folds
    m = FOLD_PATTERN.fullmatch(split.strip())
    n = int(m.group(2)) if m and m.group(2) else DEFAULT_FOLDS
    if n < 2:
        raise UserError(f"`split` {split}: cross-validation needs at least 2 folds")
    return n


DEFAULT_FOLDS = 5  # seeded stratified k-fold where a dataset has no official folds


def stratified_kfold(clips: list[Clip], k: int, n: int, seed: int,
                     val_fraction: float) -> dict[str, list[Clip]]:
    """Seeded stratified k-fold: every class's clips are shuffled (by `seed`) and dealt into `n`
    folds in turn; fold `k` (1-based) is the test set, a stratified `val_fraction` of the rest
    the validation set. Every clip is in exactly one test fold over k = 1..n."""
    rng = np.random.default_rng(seed)
    by_class: dict[int, list[Clip]] = defaultdict(list)
    for c in sorted(clips, key=lambda c: c.key):
        by_class[c.targets[0] if c.targets else -1].append(c)
    test, rest = [], []
    offset = 0
    for cls in sorted(by_class):
        members = by_class[cls]
        for pos, i in enumerate(rng.permutation(len(members))):
            (test if (pos + offset) % n == k - 1 else rest).append(members[i])
        offset += len(members)  # deal the next class on from where this one stopped
    train, val = stratified_holdout(rest, val_fraction, seed)
    return {"train": train, "val": val, "test": sorted(test, key=lambda c: c.key)}


def reject_options(dataset: str, **given: object) -> None:
    """Fail clearly when an option that this dataset does not use was set."""
    bad = [k for k, v in given.items() if v not in (None, False)]
    if bad:
        opts = ", ".join(f"`{k}`" for k in bad)
        raise UserError(f"dataset {dataset!r} does not take {opts}")
