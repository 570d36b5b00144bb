"""Training end to end on real FSDD speech: run directory contract, resume equals an
uninterrupted run, evaluation, and the CLI's behaviour on good and bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import audioprune.train.fit as fit_module
from audioprune.cli import main
from audioprune.errors import UserError
from audioprune.fileio import read_tensors
from audioprune.measure.counting import count_macs, count_params
from audioprune.runs.data import DataSpec
from audioprune.runs.evaluate import evaluate_run
from audioprune.runs.run_dir import load_model
from audioprune.runs.train import resume_run, train_run
from audioprune.train.fit import TrainConfig

FAST = dict(batch_size=8, lr=3e-3, progress=False, seed=0)


def _spec(root: Path, **kw) -> DataSpec:
    return DataSpec("fsdd", str(root), frontend={"clip_seconds": 0.8}, **kw)


@pytest.fixture(scope="module")
def trained(fsdd_small: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("runs") / "base"
    metrics = train_run("dcase21net", {"width": 0.5}, _spec(fsdd_small), TrainConfig(epochs=8, **FAST), out)
    return out, metrics


def test_run_directory_contract(trained: tuple[Path, dict]) -> None:
    out, metrics = trained
    for name in ("model.safetensors", "model.json", "metrics.json", "config.json", "log.txt"):
        assert (out / name).is_file(), name
    on_disk = json.loads((out / "metrics.json").read_text())
    for key in ("task", "accuracy", "params", "macs", "size_bytes", "dataset", "split"):
        assert key in on_disk, key
    assert on_disk["task"] == "single-label" and on_disk["dataset"] == "fsdd"
    assert on_disk["split"] == "official" and on_disk["num_examples"] == 100
    model, info = load_model(out)
    assert info["widths"] == {"conv1": 8, "conv2": 8, "conv3": 16, "fc1": 100}
    assert on_disk["params"] == count_params(model)
    assert on_disk["macs"] == count_macs(model)["model"]
    # the front end's standardisation was estimated from training audio and saved with the model
    assert info["frontend"]["std"] > 1.0 and info["frontend"]["mean"] != 0.0
    # learning happened on real speech: far above the 10% chance level after 8 short epochs
    assert on_disk["accuracy"] > 0.3
    assert len(on_disk["history"]) == 8 and on_disk["history"][-1]["train_loss"] < on_disk["history"][0]["train_loss"]
    assert "epoch 8/8" in (out / "log.txt").read_text()


def test_evaluate_reproduces_the_test_metrics(trained: tuple[Path, dict]) -> None:
    out, metrics = trained
    again, path = evaluate_run(out, progress=False)
    assert path == out / "metrics.json"
    assert again["accuracy"] == metrics["accuracy"]
    assert again["confusion_matrix"] == metrics["confusion_matrix"]
    assert again["history"] == metrics["history"]  # training record kept


def test_resume_after_a_crash_equals_an_uninterrupted_run(fsdd_small: Path, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = TrainConfig(epochs=3, **FAST)
    full = train_run("dcase21net", {"width": 0.5}, _spec(fsdd_small), cfg, tmp_path / "full")

    real_save = fit_module.save_checkpoint
    calls = {"n": 0}

    def crash_after_first_epoch(*args, **kwargs):
        real_save(*args, **kwargs)
        calls["n"] += 1
        if calls["n"] == 1:
            raise KeyboardInterrupt  # killed right after epoch 1 was checkpointed

    monkeypatch.setattr(fit_module, "save_checkpoint", crash_after_first_epoch)
    with pytest.raises(KeyboardInterrupt):
        train_run("dcase21net", {"width": 0.5}, _spec(fsdd_small), cfg, tmp_path / "cut")
    monkeypatch.setattr(fit_module, "save_checkpoint", real_save)
    resumed = resume_run(tmp_path / "cut")
    assert [h["train_loss"] for h in resumed["history"]] == [h["train_loss"] for h in full["history"]]
    assert resumed["accuracy"] == full["accuracy"]
    a = read_tensors(tmp_path / "full" / "model.safetensors")
    b = read_tensors(tmp_path / "cut" / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_refuses_to_overwrite_a_run(trained: tuple[Path, dict], fsdd_small: Path) -> None:
    out, _ = trained
    with pytest.raises(UserError, match="already holds a run"):
        train_run("dcase21net", {}, _spec(fsdd_small), TrainConfig(epochs=1, **FAST), out)


def test_pickled_checkpoint_is_refused_and_never_executed(trained: tuple[Path, dict], tmp_path: Path) -> None:
    out, _ = trained
    evil = tmp_path / "evil"
    evil.mkdir()
    (evil / "model.json").write_text((out / "model.json").read_text())
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    torch.save({"x": Payload()}, evil / "model.safetensors")
    with pytest.raises(UserError, match="never loads pickled"):
        load_model(evil)
    assert not marker.exists()


def test_cli_train_evaluate_and_errors(fsdd_small: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cli-run"
    code = main(["train", "--model", "dcase21net", "--width", "0.25", "--dataset", "fsdd",
                 "--data-root", str(fsdd_small), "--split", "speaker:jackson", "--epochs", "1",
                 "--batch-size", "16", "--frontend", "clip_seconds=0.8", "--no-progress",
                 "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "fsdd [speaker:jackson] test accuracy" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["split"] == "speaker:jackson"
    assert "accuracy_per_group" not in metrics  # one test speaker: it would repeat the accuracy
    assert main(["evaluate", str(out), "--no-progress"]) == 0
    assert "metrics written to" in capsys.readouterr().out

    assert main(["train", "--model", "nosuchnet", "--dataset", "fsdd", "--data-root",
                 str(fsdd_small), "--out", str(tmp_path / "x")]) == 2
    assert "unknown model 'nosuchnet'" in capsys.readouterr().err
    assert main(["train", "--model", "dcase21net", "--dataset", "fsdd", "--data-root",
                 str(tmp_path / "missing"), "--out", str(tmp_path / "y")]) == 2
    assert "is not a directory" in capsys.readouterr().err
    assert main(["train", "--model", "dcase21net", "--dataset", "fsdd", "--data-root",
                 str(fsdd_small), "--split", "speaker:nobody", "--out", str(tmp_path / "z")]) == 2
    assert "no speaker 'nobody'" in capsys.readouterr().err
    assert main(["evaluate", str(tmp_path / "not-a-run")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_cli_lists_datasets_and_models(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["datasets", "-v"]) == 0
    text = capsys.readouterr().out
    for name in ("esc50", "urbansound8k", "gtzan", "ravdess", "audioset", "tau2020", "fsdd",
                 "folder", "synthetic"):
        assert f"\n{name} " in "\n" + text, name
    assert "recordings/{digit}_{speaker}_{index}.wav" in text
    assert main(["models"]) == 0
    assert "dcase21net" in capsys.readouterr().out


def test_multi_label_training_reports_map(tmp_path: Path) -> None:
    """AudioSet layout (fixture tree): BCE training and mAP/AUC evaluation end to end."""
    from test_datasets_layouts import write_audioset_tree

    root = write_audioset_tree(tmp_path / "as")
    fe = {"sample_rate": 8000, "n_fft": 256, "hop_length": 80, "n_mels": 40, "fmin": 0,
          "fmax": 4000, "clip_seconds": 0.5}
    metrics = train_run("dcase21net", {"width": 0.25}, DataSpec("audioset", str(root), frontend=fe),
                        TrainConfig(epochs=2, batch_size=2, progress=False), tmp_path / "run")
    assert metrics["task"] == "multi-label"
    assert "mAP" in metrics and "accuracy" not in metrics
    assert 0.0 <= metrics["mAP"] <= 1.0 and metrics["classes_scored"] == 3  # eval has 3 labels
    assert metrics["num_classes"] == 5


def test_per_group_accuracy_by_hand() -> None:
    import numpy as np

    from audioprune.train.metrics import single_label_metrics

    logits = np.eye(3)[[0, 1, 2, 0, 0, 2]]  # predictions 0 1 2 0 0 2
    targets = np.array([0, 1, 1, 0, 2, 2])  # right: yes yes no yes no yes
    m = single_label_metrics(logits, targets, 3, groups=["a", "a", "a", "b", "b", "b"])
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["accuracy_per_group"] == pytest.approx({"a": 2 / 3, "b": 2 / 3})
    m = single_label_metrics(logits, targets, 3, groups=["a", "a", "b", "b", "b", "b"])
    assert m["accuracy_per_group"] == pytest.approx({"a": 1.0, "b": 0.5})
    assert "accuracy_per_group" not in single_label_metrics(logits, targets, 3, groups=["a"] * 6)


def test_unweighted_average_recall_by_hand() -> None:
    """UAR weighs every class alike: a model that always answers the majority class scores
    1/classes, whatever its accuracy on an unbalanced set (RAVDESS: neutral has half the clips)."""
    import numpy as np

    from audioprune.train.metrics import single_label_metrics

    targets = np.array([0, 0, 0, 0, 0, 0, 1, 1, 2, 2])  # class 0 is the majority
    always_0 = np.eye(3)[np.zeros(10, dtype=int)]
    m = single_label_metrics(always_0, targets, 3)
    assert m["accuracy"] == pytest.approx(0.6) and m["uar"] == pytest.approx(1 / 3)
    pred = np.eye(3)[[0, 0, 0, 1, 1, 1, 1, 2, 2, 0]]  # recalls 3/6, 1/2, 1/2
    m = single_label_metrics(pred, targets, 3)
    assert m["uar"] == pytest.approx((3 / 6 + 1 / 2 + 1 / 2) / 3)
    # a class absent from the targets is not averaged in (its recall is undefined)
    assert single_label_metrics(np.eye(3)[[0, 1]], np.array([0, 1]), 3)["uar"] == 1.0
