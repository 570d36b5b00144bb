"""Cross-validation folds (`split="fold:K"`, `--fold K`, `train --folds all`): every dataset with
official folds or groups, each clip in exactly one test fold, groups never split across sets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fixtures_audio import write_audio
from test_datasets_layouts import ESC_ROWS, _gtzan_tree, _ravdess_tree, esc50_root  # noqa: F401

from audioprune.cli import main
from audioprune.data.folds import fold_count, fold_list
from audioprune.data.registry import load_dataset
from audioprune.errors import UserError


def _partition(name: str, root: Path | None, n: int, **opts) -> list:
    """The test sets of folds 1..n, checking each fold's three sets are disjoint."""
    tests = []
    for k in range(1, n + 1):
        ds = load_dataset(name, root, split=f"fold:{k}", **opts)
        assert ds.fold == (k, n) and ds.split_name == f"fold:{k}/{n}"
        parts = {p: {c.key for c in clips} for p, clips in ds.splits.items()}
        assert not (parts["train"] & parts["test"]) and not (parts["val"] & parts["test"])
        assert not (parts["train"] & parts["val"]) and parts["test"] and parts["train"]
        tests.append(parts["test"])
    return tests


def _each_clip_tested_once(tests: list[set[str]], total: int) -> None:
    assert sum(len(t) for t in tests) == total == len(set().union(*tests))


def test_fsdd_leave_one_speaker_out(fsdd_root: Path) -> None:
    speakers = ["george", "jackson", "lucas", "nicolas", "theo", "yweweler"]
    tests = _partition("fsdd", fsdd_root, 6)
    _each_clip_tested_once(tests, 3000)
    for k in range(1, 7):
        ds = load_dataset("fsdd", fsdd_root, split=f"fold:{k}")
        groups = {p: {c.group for c in clips} for p, clips in ds.splits.items()}
        assert groups["test"] == {speakers[k - 1]} and groups["val"] == {speakers[k % 6]}
        assert groups["train"] == set(speakers) - groups["test"] - groups["val"]
    # fold 4 is the earlier studies' speaker:nicolas,val:theo split, clip for clip
    old = load_dataset("fsdd", fsdd_root, split="speaker:nicolas,val:theo")
    new = load_dataset("fsdd", fsdd_root, split="fold:4")
    assert all([c.key for c in old.splits[p]] == [c.key for c in new.splits[p]] for p in old.splits)
    assert fold_count("fsdd", fsdd_root, {}) == 6
    with pytest.raises(UserError, match=r"the fold must be in 1..6"):
        load_dataset("fsdd", fsdd_root, split="fold:7")


def test_esc50_fold_is_the_official_test_fold(esc50_root: Path) -> None:  # noqa: F811
    by_fold = load_dataset("esc50", esc50_root, split="fold:3")
    by_test_fold = load_dataset("esc50", esc50_root, test_fold=3)
    assert [c.key for c in by_fold.splits["test"]] == [c.key for c in by_test_fold.splits["test"]]
    assert by_fold.split_name == "fold:3/5" and by_test_fold.split_name == "fold3"
    _each_clip_tested_once(_partition("esc50", esc50_root, 5), len(ESC_ROWS))
    with pytest.raises(UserError, match="name different folds"):
        load_dataset("esc50", esc50_root, split="fold:3", test_fold=2)
    with pytest.raises(UserError, match="esc50 has 5 folds"):
        load_dataset("esc50", esc50_root, split="fold:3/4")


def test_ravdess_actor_groups(tmp_path: Path) -> None:
    _ravdess_tree(tmp_path, actors=tuple(range(1, 25)))
    tests = _partition("ravdess", tmp_path, 6)
    _each_clip_tested_once(tests, 24 * 3)
    ds = load_dataset("ravdess", tmp_path, split="fold:2")
    actors = {p: sorted({c.group for c in clips}) for p, clips in ds.splits.items()}
    assert actors["test"] == ["Actor_05", "Actor_06", "Actor_07", "Actor_08"]
    assert actors["val"] == ["Actor_09", "Actor_10"] and len(actors["train"]) == 18


def test_seeded_stratified_kfold_for_datasets_without_folds(tmp_path: Path) -> None:
    _gtzan_tree(tmp_path / "genres")
    tests = _partition("gtzan", tmp_path, 5, seed=1)
    _each_clip_tested_once(tests, 15)
    assert all(len(t) == 3 for t in tests)  # stratified: one clip of each genre per fold
    for n in range(10):
        write_audio(tmp_path / "f" / "dog" / f"d{n}.wav")
        write_audio(tmp_path / "f" / "cat" / f"c{n}.wav")
    tests = [{c.key for c in load_dataset("folder", tmp_path / "f", split=f"fold:{k}/4").splits["test"]}
             for k in range(1, 5)]
    _each_clip_tested_once(tests, 20)
    tests = _partition("synthetic", None, 5)
    _each_clip_tested_once(tests, 1400)
    other_seed = load_dataset("synthetic", None, split="fold:1", seed=1).splits["test"]
    assert {c.key for c in other_seed} != tests[0]


def test_datasets_without_folds_say_so(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no cross-validation folds"):
        fold_count("audioset", tmp_path, {})
    assert fold_list("all", "synthetic", None, {}) == [1, 2, 3, 4, 5]
    assert fold_list("2,4", "synthetic", None, {}) == [2, 4]
    with pytest.raises(UserError, match="has folds 1..5"):
        fold_list("6", "synthetic", None, {})


def test_cli_fold_and_folds(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["train", "--model", "dcase21net", "--width", "0.125", "--dataset", "synthetic",
                 "--fold", "2", "--split", "default", "--epochs", "1", "--out",
                 str(tmp_path / "x")]) == 2
    assert "give --fold 2 or --split default, not both" in capsys.readouterr().err
    assert main(["train", "--model", "dcase21net", "--width", "0.125", "--dataset", "synthetic",
                 "--folds", "1,3", "--epochs", "1", "--batch-size", "64", "--no-progress",
                 "--out", str(tmp_path / "cv")]) == 0
    for k in (1, 3):
        m = json.loads((tmp_path / "cv" / f"fold{k}" / "metrics.json").read_text())
        assert (m["split"], m["fold"], m["folds"]) == (f"fold:{k}/5", k, 5)
    assert not (tmp_path / "cv" / "fold2").exists()
    mtime = (tmp_path / "cv" / "fold1" / "metrics.json").stat().st_mtime
    assert main(["train", "--model", "dcase21net", "--width", "0.125", "--dataset", "synthetic",
                 "--folds", "1", "--epochs", "1", "--no-progress", "--out",
                 str(tmp_path / "cv")]) == 0
    assert "done before, skipped" in capsys.readouterr().out
    assert (tmp_path / "cv" / "fold1" / "metrics.json").stat().st_mtime == mtime
