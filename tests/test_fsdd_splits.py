"""FSDD split schemes on real recordings: which speaker lands in which split."""

from __future__ import annotations

from pathlib import Path

import pytest

from audioprune.data.registry import load_dataset
from audioprune.errors import UserError
from conftest import make_fsdd_subset


@pytest.fixture(scope="module")
def three_speakers(fsdd_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_fsdd_subset(tmp_path_factory.mktemp("fsdd3"), ("george", "jackson", "theo"), range(3))


def speakers(index, split: str) -> set[str]:
    return {c.group for c in index.splits[split]}


def test_speaker_holdout_validates_on_the_training_speakers(three_speakers: Path) -> None:
    index = load_dataset("fsdd", three_speakers, split="speaker:theo")
    assert speakers(index, "test") == {"theo"}
    assert speakers(index, "train") == speakers(index, "val") == {"george", "jackson"}
    assert len(index.splits["test"]) == 30 and len(index.splits["train"]) + len(index.splits["val"]) == 60


def test_speaker_holdout_with_a_validation_speaker(three_speakers: Path) -> None:
    index = load_dataset("fsdd", three_speakers, split="speaker:theo,val:george")
    assert speakers(index, "test") == {"theo"}
    assert speakers(index, "val") == {"george"}
    assert speakers(index, "train") == {"jackson"}
    assert [len(index.splits[s]) for s in ("train", "val", "test")] == [30, 30, 30]
    assert index.split_name == "speaker:theo,val:george"
    # the three splits are disjoint and cover every clip
    keys = [c.key for s in ("train", "val", "test") for c in index.splits[s]]
    assert len(keys) == len(set(keys)) == 90


@pytest.mark.parametrize("split, message", [
    ("speaker:theo,val:theo", "must differ from the test speaker"),
    ("speaker:theo,val:nobody", "no speaker 'nobody'"),
    ("speaker:theo,george", "after the comma write val:SPEAKER"),
])
def test_bad_validation_speaker_is_named(three_speakers: Path, split: str, message: str) -> None:
    with pytest.raises(UserError, match=message):
        load_dataset("fsdd", three_speakers, split=split)


def test_a_validation_speaker_and_a_validation_fraction_conflict(three_speakers: Path) -> None:
    with pytest.raises(UserError, match="drop val_fraction"):
        load_dataset("fsdd", three_speakers, split="speaker:theo,val:george", val_fraction=0.2)
    index = load_dataset("fsdd", three_speakers, split="speaker:theo", val_fraction=0.5)
    assert len(index.splits["val"]) == 30 == len(index.splits["train"])


def test_synthetic_refuses_a_validation_fraction() -> None:
    with pytest.raises(UserError, match="sizes:TRAIN,VAL,TEST"):
        load_dataset("synthetic", None, split="small", val_fraction=0.2)
