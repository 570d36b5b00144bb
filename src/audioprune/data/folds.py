"""Cross-validation folds by dataset: which folds "--folds all" (or a recipe's `folds: all`) means.

Every dataset with official folds or groups takes `split="fold:K"` (see each loader): esc50 5,
urbansound8k 10, fsdd one per speaker (6: leave one speaker out, the next validates), ravdess 6
actor groups, speech_commands 5 speaker folds (hashed speaker ids, "fold:K/N" for N), gtzan /
folder / synthetic seeded stratified 5-fold ("fold:K/N" for N). tau2020 and audioset have one
official split and no folds.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from audioprune.data.registry import load_dataset
from audioprune.errors import UserError

__all__ = ["fold_list", "fold_count"]


def fold_count(dataset: str, data_root: Any, options: Mapping[str, Any]) -> int:
    """How many folds `dataset` has under `data_root` (reads its metadata, decodes nothing)."""
    split = str(options.get("split") or "fold:1")
    probe = {**options, "split": split if split.startswith("fold:") else "fold:1"}
    try:
        index = load_dataset(dataset, data_root, **probe)
    except UserError as exc:
        raise UserError(f"dataset {dataset!r} has no cross-validation folds ({exc})") from None
    if index.fold is None:
        raise UserError(f"dataset {dataset!r} has no cross-validation folds")
    return index.fold[1]


def fold_list(folds: str | int | list[int], dataset: str, data_root: Any,
              options: Mapping[str, Any]) -> list[int]:
    """`folds` ("all", "1,3,5", 2 or [1, 2]) as fold numbers, checked against the dataset."""
    n = fold_count(dataset, data_root, {k: v for k, v in options.items() if k != "test_fold"})
    if folds == "all":
        return list(range(1, n + 1))
    if isinstance(folds, int):
        wanted = [folds]
    elif isinstance(folds, str):
        try:
            wanted = [int(x) for x in folds.split(",") if x.strip()]
        except ValueError:
            raise UserError(f"`folds` must be 'all' or fold numbers like 1,2,3; got {folds!r}") from None
    else:
        wanted = [int(x) for x in folds]
    bad = [k for k in wanted if not 1 <= k <= n]
    if bad or not wanted:
        raise UserError(f"`folds` {folds!r}: {dataset} has folds 1..{n}")
    return sorted(set(wanted))
