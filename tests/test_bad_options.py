"""Bad options and bad run directories through the real CLI: exit status 2, one clear line that
names the option or file and what to do, never a traceback."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from bad_audio import noise

from audioprune.cli import main

SYNTH = ["--dataset", "synthetic", "--split", "sizes:20,10,20"]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("opts") / "run"
    assert main(["train", "--model", "dcase21net", "--width", "0.25", *SYNTH, "--epochs", "1",
                 "--batch-size", "10", "--no-progress", "--out", str(out)]) == 0
    return out


def _fails(argv: list[str], capsys: pytest.CaptureFixture, *expected: str) -> None:
    assert main(argv) == 2, argv
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    last = err.strip().splitlines()[-1]  # progress lines may come first; the error is one line
    assert last.startswith(f"audioprune {argv[0]}: error: "), err
    for text in expected:
        assert text in last, (argv, err)


@pytest.mark.parametrize("args, expected", [
    (["--ratio", "-0.1"], "--ratio must be in [0, 1)"),
    (["--ratio", "1"], "--ratio must be in [0, 1)"),
    (["--ratio", "nan"], "got nan"),
    (["--ratios", "conv1=1.5"], "--ratios conv1 must be in [0, 1)"),
    (["--ratio", "0.5", "--layers", "conv9"], "--layers: 'conv9' matches no prunable layer; prunable layers: conv1"),
    (["--ratio", "0.5", "--layers", "fc_out"], "--layers: fc_out is left alone because its channels reach a model output"),
    (["--target-params", "1"], "cannot be met"),
    # one reading of a budget everywhere (pruning/targets.py): fractions in (0, 1), whole counts
    (["--target-macs", "lots"], "--target-macs 'lots': not a number; give a fraction of the "
     "model's own in (0, 1), such as 0.5 or 50%, or a count >= 1, such as 30M"),
    (["--target-macs", "1.5"], "--target-macs '1.5': a count must be a whole number >= 1"),
    (["--target-macs", "1.0"], "--target-macs '1.0': that keeps the whole model: nothing to prune"),
    (["--target-macs", "100%"], "--target-macs '100%': that keeps the whole model"),
    (["--target-macs", "-0.5"], "--target-macs '-0.5': it must be positive"),
    (["--target-macs", "1e-3"], "--target-macs cannot be met"),  # a fraction: 0.1% of the MACs
    (["--ratio", "0.5", "--iterative", "0"], "--iterative needs at least 1 round"),
    (["--ratio", "0.5", "--finetune-epochs", "-2"], "--finetune-epochs must be >= 0"),
    (["--ratio", "0.5", "--criterion-arg", "bogus=1"], "has no option bogus"),
])
def test_prune_option_errors(run: Path, tmp_path: Path, capsys: pytest.CaptureFixture,
                             args: list[str], expected: str) -> None:
    _fails(["prune", str(run), "--criterion", "l1", *args, "--out", str(tmp_path / "p"),
            "--no-progress"], capsys, expected)
    assert not (tmp_path / "p").exists()  # checked before anything is written


def test_unknown_criterion(run: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _fails(["prune", str(run), "--criterion", "nope", "--ratio", "0.5", "--out", str(tmp_path / "p")],
           capsys, "unknown criterion 'nope'")


@pytest.mark.parametrize("args, expected", [
    (["--epochs", "0"], "--epochs must be at least 1"),
    (["--batch-size", "0"], "--batch-size must be at least 1"),
    (["--lr", "-1"], "--lr must be a positive number"),
    (["--mixup", "-0.5"], "--mixup must be >= 0"),
    (["--workers", "-1"], "--workers must be >= 0"),
    (["--device", "tpu"], "--device 'tpu' is not a device"),
    (["--width", "-1"], "--width must be a positive number"),
    (["--model-arg", "bogus=1"], "model 'dcase21net' has no option 'bogus'"),
    (["--model-arg", "dropout=2"], "dropout probability"),
    (["--frontend", "nmels=40"], "--frontend (nmels=40): unknown front-end settings ['nmels']"),
    (["--frontend", "log_offset=0"], "log_offset must be a positive number"),
    (["--frontend", "sample_rate=abc"], "sample_rate must be a positive integer"),
    (["--frontend", "fmax=20000"], "fmax <= sample_rate/2"),
    (["--frontend", "clip_seconds=-1"], "clip_seconds must be a positive number"),
])
def test_train_option_errors(tmp_path: Path, capsys: pytest.CaptureFixture, args: list[str],
                             expected: str) -> None:
    _fails(["train", "--model", "dcase21net", *SYNTH, *args, "--no-progress",
            "--out", str(tmp_path / "t")], capsys, expected)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_cuda_without_a_gpu(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _fails(["train", "--model", "dcase21net", *SYNTH, "--device", "cuda", "--out",
            str(tmp_path / "t")], capsys, "--device cuda: no CUDA GPU", "use --device cpu")


def test_run_directory_errors(run: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    _fails(["evaluate", str(tmp_path / "none")], capsys, "does not exist")
    _fails(["train", "--resume", str(tmp_path / "none")], capsys, "config.json not found")
    other = tmp_path / "other-version"
    shutil.copytree(run, other)
    info = json.loads((other / "model.json").read_text())
    (other / "model.json").write_text(json.dumps({**info, "format_version": 99}))
    _fails(["evaluate", str(other)], capsys, "unsupported model format 'audioprune-model' version 99",
           "reads audioprune-model version 1")
    _fails(["prune", str(other), "--criterion", "l1", "--ratio", "0.5", "--out",
            str(tmp_path / "p")], capsys, "version 99")
    (other / "model.json").write_text("{not json")
    _fails(["evaluate", str(other)], capsys, "model.json is not valid JSON")
    (other / "config.json").write_text("[1, 2]")
    _fails(["train", "--resume", str(other)], capsys, "config.json holds a JSON list")
    (other / "config.json").write_text(json.dumps({"command": "train", "train": {"epochs": 2}}))
    _fails(["train", "--resume", str(other)], capsys, "written by another audioprune version")
    (other / "config.json").write_text(json.dumps({"command": "prune"}))
    _fails(["train", "--resume", str(other)], capsys, "it is a 'prune' run")
    _fails(["prune", "--resume", str(run)], capsys, "it is a 'train' run, not a prune run")


def test_class_count_mismatch(run: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    for cls in ("cat", "dog", "owl"):
        (tmp_path / "data" / cls).mkdir(parents=True)
        for i in range(5):
            noise(tmp_path / "data" / cls / f"{i}.wav", sr=16000)
    _fails(["evaluate", str(run), "--dataset", "folder", "--data-root", str(tmp_path / "data"),
            "--no-progress"], capsys, "predicts 10 classes but folder has 3",
           "evaluate on a dataset with the same classes")
    _fails(["prune", str(run), "--criterion", "l1", "--ratio", "0.5", "--dataset", "folder",
            "--data-root", str(tmp_path / "data"), "--finetune-epochs", "0", "--no-progress",
            "--out", str(tmp_path / "p")], capsys, "predicts 10 classes but folder has 3")


def test_corrupt_prune_run_config(run: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(run, broken)
    (broken / "config.json").write_text('{"command": "prune", ')  # cut off mid-write by hand
    _fails(["prune", "--resume", str(broken)], capsys, "config.json is not readable JSON")
    _fails(["prune", str(broken), "--criterion", "l1", "--ratio", "0.5", "--out",
            str(tmp_path / "p"), "--no-progress"], capsys, "config.json is not readable JSON")


def test_a_reader_that_leaves_early_gets_no_traceback() -> None:
    """`audioprune datasets -v | head -1`: the pipe closes before we write; before the fix the
    interpreter's exit flush printed "Exception ignored ... BrokenPipeError" and exited 120."""
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "audioprune", "datasets", "-v"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()
    err = proc.stderr.read().decode()
    proc.stderr.close()
    assert proc.wait() == 141, err
    assert "BrokenPipeError" not in err and "Traceback" not in err
