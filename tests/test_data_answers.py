"""Data a new user brings: classes left without training clips by --skip-missing, the folder
layout's front end read from the data, --frontend sample_rate alone, a tree that is another
known layout, and progress bars that stay out of output that is not a terminal."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pytest
from fixtures_audio import write_audio, write_table

from audioprune.cli import main
from audioprune.errors import UserError
from audioprune.progress import bars_enabled, progress_bar
from audioprune.runs.data import DataSpec, prepare_data
from audioprune.runs.train import train_run
from audioprune.train.fit import TrainConfig

ESC_HEADER = ("filename", "fold", "target", "category", "esc10", "src_file", "take")
SMALL_FE = {"clip_seconds": 0.5, "sample_rate": 8000, "n_fft": 256, "hop_length": 80,
            "n_mels": 32, "fmax": 4000.0}


def _esc50(root: Path, missing_train: set[str]) -> Path:
    """Three classes x five folds x two takes in ESC-50's layout, and "cow" in the training folds
    only; the `missing_train` classes' clips outside fold 1 (the test fold) are listed but not
    on disk."""
    rows = []
    for target, cat in enumerate(("dog", "rain", "owl", "cow")):
        for fold in range(1 + (cat == "cow"), 6):
            for take in "AB":
                name = f"{fold}-{100 * target + fold}-{take}-{target}.wav"
                rows.append((name, fold, target, cat, "False", str(fold), take))
                if not (cat in missing_train and fold > 1):
                    write_audio(root / "audio" / name)
    write_table(root / "meta" / "esc50.csv", ESC_HEADER, rows)
    return root


def test_skip_missing_names_classes_left_without_training_clips(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = _esc50(tmp_path / "esc", missing_train={"owl"})
    spec = DataSpec("esc50", str(root), frontend=SMALL_FE, skip_missing=True, cache=False)
    with caplog.at_level(logging.WARNING, logger="audioprune"):
        metrics = train_run("dcase21net", {"width": 0.25}, spec,
                            TrainConfig(epochs=1, batch_size=8, progress=False), tmp_path / "run")
    warned = [r.getMessage() for r in caplog.records if "no training clip" in r.getMessage()]
    assert warned == ["1 class(es) have test clips but no training clip: owl (8 listed file(s) "
                      "missing on disk were left out); their 2 test clip(s) can only be "
                      "misclassified (metrics.json lists them as untrained_classes)"]
    assert metrics["untrained_classes"] == ["owl"]
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["untrained_classes"] == ["owl"]


def test_skip_missing_refuses_when_no_test_class_was_trained_on(tmp_path: Path) -> None:
    root = _esc50(tmp_path / "esc", missing_train={"dog", "rain", "owl"})
    spec = DataSpec("esc50", str(root), frontend=SMALL_FE, skip_missing=True, cache=False,
                    options={"val_fraction": 0.0})
    with pytest.raises(UserError) as err:
        prepare_data(spec, progress=False)
    message = str(err.value)
    assert "\n" not in message and "no test clip's class has a training clip (dog, rain, owl)" in message
    assert "so the test score could only be 0; restore the training files" in message


def _folder(root: Path, rate: int, seconds: float, classes=("cat", "dog", "owl")) -> Path:
    for c in classes:
        for i in range(5):
            write_audio(root / c / f"{c}{i}.wav", rate, seconds)
    return root


def test_folder_reads_clip_length_and_sample_rate_from_the_data(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    root = _folder(tmp_path / "clips", 16000, 1.0)
    with caplog.at_level(logging.INFO, logger="audioprune"):
        bundle = prepare_data(DataSpec("folder", str(root), cache=False), progress=False)
    fe = bundle.frontend
    assert (fe.sample_rate, fe.clip_seconds, fe.fmax) == (16000, 1.0, None)  # fmax: Nyquist
    assert bundle.train.clip_samples == 16000
    said = [r.getMessage() for r in caplog.records if "front end from the data" in r.getMessage()]
    assert said == ["folder: front end from the data (15 files read: 95% are 1.00 s or shorter, "
                    "most at 16000 Hz): clip_seconds=1.0, sample_rate=16000, fmax=Nyquist "
                    "(8000 Hz) instead of the layout's clip_seconds=5.0, sample_rate=32000; give "
                    "frontend settings to override"]
    # what the user gives wins; the rest is still read from the data
    given = prepare_data(DataSpec("folder", str(root), frontend={"clip_seconds": 2.0},
                                  cache=False), progress=False).frontend
    assert (given.clip_seconds, given.sample_rate) == (2.0, 16000)
    # 48 kHz recordings are resampled to the layout's 32 kHz as before, never above
    loud = prepare_data(DataSpec("folder", str(_folder(tmp_path / "hi", 48000, 0.5)),
                                 cache=False), progress=False).frontend
    assert (loud.sample_rate, loud.clip_seconds, loud.fmax) == (32000, 0.5, 14000.0)


def test_frontend_sample_rate_alone_puts_fmax_at_nyquist() -> None:
    fe = DataSpec("esc50", frontend={"sample_rate": 16000}).frontend_config()
    assert (fe.sample_rate, fe.fmax) == (16000, None)
    kept = DataSpec("esc50", frontend={"sample_rate": 16000, "fmax": 7000}).frontend_config()
    assert kept.fmax == 7000
    with pytest.raises(UserError, match="fmax=9000"):
        DataSpec("esc50", frontend={"sample_rate": 16000, "fmax": 9000}).frontend_config()


def test_datasets_check_folder_says_which_known_layout_a_tree_is(
        tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    us = tmp_path / "UrbanSound8K"
    for fold in (1, 2):
        write_audio(us / "audio" / f"fold{fold}" / f"1{fold}-3-0-0.wav")
    write_table(us / "metadata" / "UrbanSound8K.csv", ["slice_file_name"], [])
    esc = tmp_path / "ESC-50-master"
    write_audio(esc / "audio" / "1-100032-A-0.wav")
    write_table(esc / "meta" / "esc50.csv", list(ESC_HEADER), [])
    for root, name, mark in ((us, "urbansound8k", "metadata/UrbanSound8K.csv"),
                             (esc, "esc50", "meta/esc50.csv")):
        assert main(["datasets", "check", "folder", "--data-root", str(root), "--no-progress"]) == 2
        err = capsys.readouterr().err.strip()
        assert err == (f"audioprune datasets: error: {root} looks like the {name} layout ({mark} "
                       f"is there), not one folder per class: folder takes audio as its classes; "
                       f"use dataset '{name}' (`audioprune datasets check {name}` checks it)")
    # class folders beside a known layout's marker: checked, with the resemblance as a problem
    _folder(esc, 8000, 0.05, classes=("cat", "dog"))
    assert main(["datasets", "check", "folder", "--data-root", str(esc), "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert "  another layout (1):\n" in out and "looks like the esc50 layout" in out


def test_progress_bars_stay_out_of_output_that_is_not_a_terminal(
        tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _folder(tmp_path / "clips", 8000, 0.1)
    monkeypatch.delenv("AUDIOPRUNE_PROGRESS", raising=False)
    assert main(["datasets", "check", "folder", "--data-root", str(root)]) in (0, 1)  # bars asked
    err = capsys.readouterr().err
    assert "\r" not in err and "file/s" not in err and "checking folder" not in err
    assert not bars_enabled() and progress_bar(range(3)).disable

    class Terminal:
        def isatty(self) -> bool:
            return True

        def write(self, text: str) -> int:
            return len(text)

        def flush(self) -> None:
            pass

    monkeypatch.setattr(sys, "stderr", Terminal())
    assert bars_enabled() and not bars_enabled(False)
    monkeypatch.setenv("AUDIOPRUNE_PROGRESS", "0")
    assert not bars_enabled()
    monkeypatch.undo()
    monkeypatch.setenv("AUDIOPRUNE_PROGRESS", "1")  # forced: drawn into a pipe too
    assert bars_enabled() and not progress_bar(range(3)).disable
