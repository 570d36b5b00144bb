"""`audioprune datasets check`: a report of files, classes, splits and problems, no training."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from bad_audio import noise, write_bad

from audioprune.cli import main
from audioprune.data.check import check_dataset


def test_check_real_fsdd_is_clean(fsdd_small: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["datasets", "check", "fsdd", "--data-root", str(fsdd_small), "--no-progress",
                 "--strict"]) == 0
    out = capsys.readouterr().out
    assert "fsdd [official] single-label, 10 classes" in out
    assert "files: 240 listed, 240 decode, 0 undecodable" in out
    assert "sample rates: 8000 Hz x 240" in out and "channels: mono x 240" in out
    assert "splits: train 130, val 10, test 100" in out
    assert "groups (2): george 120, jackson 120" in out
    assert "problems: none" in out
    report = check_dataset("fsdd", fsdd_small, {"split": "speaker:george"}, progress=False)
    assert [len(report.index.splits[k]) for k in ("train", "val", "test")] == [110, 10, 120]
    assert not report.problems and len(report.durations) == 240


def test_check_names_every_problem(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    rec = tmp_path / "recordings"
    rec.mkdir()
    for d in range(10):
        for i in range(7):
            noise(rec / f"{d}_anna_{i}.wav")
    write_bad(rec / "3_anna_9.wav", "truncated wav")
    write_bad(rec / "4_anna_9.wav", "NaN sample")
    shutil.copy(rec / "5_anna_0.wav", rec / "5_anna_8.wav")  # a test clip copied into train
    for i in range(5, 7):
        (rec / f"9_anna_{i}.wav").unlink()  # digit 9: test clips only
    argv = ["datasets", "check", "fsdd", "--data-root", str(tmp_path), "--no-progress"]
    assert main(argv) == 0  # problems are reported; only --strict fails
    out = capsys.readouterr().out
    assert "files: 71 listed, 69 decode, 2 undecodable" in out
    assert "problems (4):" in out
    assert "3_anna_9.wav: truncated: the header declares 16,000 bytes" in out
    assert "4_anna_9.wav: the file holds NaN or Inf samples" in out
    assert ("identical audio: recordings/5_anna_0.wav, recordings/5_anna_8.wav (in test and "
            "train: the same audio is trained and tested on)") in out
    assert "1 class(es) without a usable training clip: 9" in out
    assert main([*argv, "--strict"]) == 1


def test_check_cli_errors_and_listing_still_work(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["datasets"]) == 0
    assert "fsdd " in capsys.readouterr().out
    assert main(["datasets", "check"]) == 2
    assert "needs a dataset name" in capsys.readouterr().err
    assert main(["datasets", "check", "nosuch", "--data-root", str(tmp_path)]) == 2
    assert "unknown dataset 'nosuch'" in capsys.readouterr().err
    assert main(["datasets", "check", "esc50", "--data-root", str(tmp_path)]) == 2
    assert "esc50.csv not found" in capsys.readouterr().err
    assert main(["datasets", "check", "synthetic", "--split", "sizes:20,10,10", "--no-progress"]) == 0
    assert "40 clips generated in memory" in capsys.readouterr().out
