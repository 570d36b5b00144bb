"""Transfer learning end to end on real FSDD recordings: a PANNs-format checkpoint (a CNN14 at
1/16 width with random weights, written as PANNs writes checkpoints) is imported, fine-tuned on
digits with a new classifier, a frozen first block and a lower body learning rate, pruned in
C7-C12 (the centrality paper's CNN14 setting) and reported."""

from __future__ import annotations

import json
from pathlib import Path

import librosa
import pytest
import torch

from audioprune.cli import main
from audioprune.fileio import read_tensors
from audioprune.models.panns_checkpoint import PANNS_VARIANTS, _dft_kernels, _panns_name
from audioprune.models.registry import create_model


def write_panns_checkpoint(path: Path, width: float = 0.0625, seed: int = 0) -> None:
    """Our CNN14 at `width`, saved with PANNs' key names and torchlibrosa's front-end buffers."""
    fe = PANNS_VARIANTS["cnn14"].frontend
    torch.manual_seed(seed)
    model = create_model("cnn14", 527, frontend=fe, width=width)
    state = {_panns_name(k): v for k, v in model.state_dict().items() if not k.startswith("frontend")}
    real, imag = _dft_kernels(fe.n_fft)
    state["spectrogram_extractor.stft.conv_real.weight"] = torch.from_numpy(real).float()
    state["spectrogram_extractor.stft.conv_imag.weight"] = torch.from_numpy(imag).float()
    mel = librosa.filters.mel(sr=fe.sample_rate, n_fft=fe.n_fft, n_mels=fe.n_mels, fmin=fe.fmin,
                              fmax=fe.fmax).T
    state["logmel_extractor.melW"] = torch.from_numpy(mel).float()
    torch.save({"iteration": 0, "model": state}, path)


def _metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


def test_import_finetune_prune_report(fsdd_small: Path, tmp_path: Path) -> None:
    ckpt = tmp_path / "Cnn14_small.pth"
    write_panns_checkpoint(ckpt)
    pre, tuned, pruned = tmp_path / "pretrained", tmp_path / "tuned", tmp_path / "pruned"
    assert main(["import", "panns", str(ckpt), "--model", "cnn14", "--out", str(pre)]) == 0
    assert main(["train", "--init", str(pre), "--dataset", "fsdd", "--data-root", str(fsdd_small),
                 "--frontend", "clip_seconds=1", "--epochs", "1", "--batch-size", "16",
                 "--lr", "1e-3", "--body-lr-scale", "0.1", "--freeze", "bn0,block1.*",
                 "--no-progress", "--out", str(tuned)]) == 0
    m = _metrics(tuned)
    init = m["init"]
    assert init["run"] == str(pre.resolve()) and init["classes_before"] == 527
    assert init["classifier_replaced"] == "fc_out (527 -> 10 classes)"
    assert init["frozen"] == ["bn0", "block1.conv1", "block1.bn1", "block1.conv2", "block1.bn2"]
    assert init["body_lr_scale"] == 0.1
    info = json.loads((tuned / "model.json").read_text())
    assert info["frontend"]["sample_rate"] == 32000 and info["frontend"]["clip_seconds"] == 1
    assert info["frontend"]["log_mode"] == "clamp" and info["num_classes"] == 10
    before, after = read_tensors(pre / "model.safetensors"), read_tensors(tuned / "model.safetensors")
    for key in ("bn0.running_mean", "block1.conv1.weight", "block1.bn2.running_var"):
        assert torch.equal(before[key], after[key]), key  # frozen: weights and BN statistics
    assert not torch.equal(before["block6.conv2.weight"], after["block6.conv2.weight"])
    assert after["fc_out.weight"].shape == (10, 128)

    assert main(["prune", str(tuned), "--criterion", "wdc", "--layers", "C7-C12", "--ratio", "0.5",
                 "--finetune-epochs", "1", "--no-progress", "--out", str(pruned)]) == 0
    p = _metrics(pruned)
    assert set(p["pruning"]["layers"]) == {f"block{b}.conv{c}" for b in (4, 5, 6) for c in (1, 2)}
    assert p["reduction"]["macs"] > 0 and p["parent"]["run"] == str(tuned.resolve())
    assert main(["report", str(pruned), str(pre), "--out", str(tmp_path / "report")]) == 0
    text = (tmp_path / "report" / "report.md").read_text()
    assert "| pruned | cnn14 | fsdd [official] | wdc | 50% of C7-C12 |" in text
    assert "| pretrained | cnn14 | audioset [imported] | unpruned | - | - |" in text  # no fake mAP


def test_init_refuses_a_changed_front_end_and_a_typo_in_freeze(fsdd_small: Path, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture) -> None:
    ckpt = tmp_path / "c.pth"
    write_panns_checkpoint(ckpt)
    pre = tmp_path / "pre"
    assert main(["import", "panns", str(ckpt), "--model", "cnn14", "--out", str(pre)]) == 0
    common = ["train", "--init", str(pre), "--dataset", "fsdd", "--data-root", str(fsdd_small),
              "--epochs", "1", "--no-progress"]
    assert main([*common, "--frontend", "n_mels=40", "--out", str(tmp_path / "a")]) == 2
    assert "only clip_seconds can change, not n_mels" in capsys.readouterr().err
    assert main([*common, "--freeze", "blok1.*", "--out", str(tmp_path / "b")]) == 2
    assert "--freeze 'blok1.*' names no layer" in capsys.readouterr().err
    assert main([*common, "--model", "cnn6", "--out", str(tmp_path / "c")]) == 2
    assert "holds a cnn14, not a cnn6" in capsys.readouterr().err


def test_transfer_recipe_runs_import_finetune_prune(fsdd_small: Path, tmp_path: Path) -> None:
    """recipes/panns_transfer.yaml, scaled down: our small PANNs-format checkpoint, FSDD instead
    of ESC-50, one epoch each, on the CPU."""
    from audioprune.pipeline.recipe import load_recipe
    from audioprune.pipeline.runner import run_recipe

    recipe = load_recipe(Path(__file__).resolve().parents[1] / "recipes" / "panns_transfer.yaml")
    ckpt = tmp_path / "Cnn14_mAP=0.431.pth"
    write_panns_checkpoint(ckpt)
    model = recipe.models[0]
    small = recipe.model_copy(update={
        "dataset": recipe.dataset.model_copy(update={"name": "fsdd", "root": str(fsdd_small)}),
        "folds": None, "device": "cpu",
        "models": [model.model_copy(update={
            "init": model.init.model_copy(update={"panns": str(ckpt)}),
            "train": model.train.model_copy(update={"epochs": 1, "batch_size": 16})})],
        "prune": [recipe.prune[0].model_copy(update={
            "criteria": recipe.prune[0].criteria[:1], "ratios": [0.5],
            "finetune": recipe.prune[0].finetune.model_copy(update={"epochs": 1})})]})
    result = run_recipe(small, tmp_path / "runs", progress=False)
    assert sorted(p.name for p in result.runs) == ["cnn14-esc50", "cnn14-esc50-wdc-r50"]
    tuned = _metrics(tmp_path / "runs" / "cnn14-esc50")
    assert tuned["init"]["run"] == str((tmp_path / "runs" / "cnn14-esc50-pretrained").resolve())
    assert tuned["init"]["classes"] == 10
    assert json.loads((tmp_path / "runs" / "cnn14-esc50" / "model.json").read_text())[
        "frontend"]["clip_seconds"] == 5.0
    again = run_recipe(small, tmp_path / "runs", progress=False)  # everything done: skipped
    assert not again.ran
