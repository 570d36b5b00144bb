"""`audioprune datasets check`: a report of files, classes, splits and problems, no training."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from bad_audio import SR, noise, write_bad

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
    assert main(argv) == 1  # problems are reported, and the exit status says so
    out = capsys.readouterr().out
    assert "files: 71 listed, 69 decode, 2 undecodable" in out
    assert "problems (4):" in out and "  undecodable (2):" in out
    assert "3_anna_9.wav: truncated: the header declares 16,000 bytes" in out
    assert "4_anna_9.wav: the file holds NaN or Inf samples" in out
    assert ("  identical audio (1):\n    recordings/5_anna_0.wav, recordings/5_anna_8.wav: in "
            "test and train (the same audio is trained and tested on)") in out
    assert ("  class without training clip (1):\n    1 class(es) without a usable training clip: "
            "9 (their 5 test clip(s) can only be misclassified)") in out
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


def test_check_reports_every_class_of_problem_in_one_pass(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture) -> None:
    """An ESC-50 tree as users have them: listed files missing, one of them on disk under a
    mistyped name, files on disk the table does not list, empty WAVs, a copy across folds and
    a file at another sample rate. All of it in one report; then training on what is there."""
    import soundfile as sf
    from fixtures_audio import write_table

    from audioprune.runs.data import DataSpec
    from audioprune.runs.train import train_run
    from audioprune.train.fit import TrainConfig

    header = ["filename", "fold", "target", "category", "esc10", "src_file", "take"]
    rows = []
    for fold in range(1, 6):
        for target, cat in ((0, "dog"), (1, "rooster")):
            for take in "AB":
                rows.append((f"{fold}-{100 * target + fold}-{take}-{target}.wav", fold, target, cat,
                             True, f"{fold}", take))
    audio = tmp_path / "audio"
    audio.mkdir()
    for name, *_ in rows:
        noise(audio / name)
    typo = [("2-2-A-0 wav",) + r[1:] if r[0] == "2-2-A-0.wav" else r for r in rows]  # a typo
    write_table(tmp_path / "meta" / "esc50.csv", header,
                [*typo, ("1-900-A-0.wav", 1, 0, "dog", True, "900", "A")])  # listed, never there
    noise(audio / "3-555-A-1.wav")                                      # on disk, not listed
    for name in ("4-4-A-0.wav", "4-4-B-0.wav"):                      # hold no samples
        sf.write(audio / name, np.zeros((0,), dtype=np.float32), SR)
    shutil.copy(audio / "1-1-A-0.wav", audio / "5-5-A-0.wav")       # the same clip, 2 folds
    sf.write(audio / "5-5-B-0.wav", np.random.default_rng(1).uniform(-.5, .5, 48000).astype(
        np.float32), 48000)                                             # another sample rate
    argv = ["datasets", "check", "esc50", "--data-root", str(tmp_path), "--no-progress"]
    assert main(argv) == 1
    out = capsys.readouterr().out
    assert "  missing (2):\n" in out and "    audio/1-900-A-0.wav is listed but not on disk" in out
    assert ("    audio/2-2-A-0 wav is listed but not on disk (audio/2-2-A-0.wav is on "
            "disk: a renamed or mistyped entry?)") in out
    assert ("  unlisted (2):\n    audio/2-2-A-0.wav is on disk but not in the metadata; closest "
            "listed name: audio/2-2-A-0 wav") in out
    assert "    audio/3-555-A-1.wav is on disk but not in the metadata" in out
    assert "4-4-A-0.wav: the file holds no samples" in out and "4-4-B-0.wav: the file" in out
    assert "    audio/1-1-A-0.wav, audio/5-5-A-0.wav: in test and train" in out
    assert f"sample rates differ: {SR} Hz x" in out and "48000 Hz x 1" in out
    assert "problems (8):" in out  # 2 missing, 2 unlisted (incl. the mistyped), 2 empty, copy, rates
    assert "  fold 3: test 3; validation a part of the training groups" in out
    # training refuses the missing files, or trains on what is there and names what it left out
    spec = DataSpec("esc50", str(tmp_path), frontend={"clip_seconds": 0.5, "sample_rate": 8000,
                                                     "n_fft": 256, "hop_length": 80,
                                                     "n_mels": 32, "fmax": 4000.0})
    cfg = TrainConfig(epochs=1, batch_size=8, progress=False)
    with pytest.raises(Exception, match="2 of 21 clips listed .* are missing on disk"):
        train_run("dcase21net", {"width": 0.25}, spec, cfg, tmp_path / "r1")
    spec.skip_missing = True
    metrics = train_run("dcase21net", {"width": 0.25}, spec, cfg, tmp_path / "r2")
    assert sorted(metrics["missing_files"]) == ["audio/1-900-A-0.wav", "audio/2-2-A-0 wav"]
