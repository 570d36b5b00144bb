"""`audioprune import panns`: PANNs checkpoints become runs whose outputs equal PANNs' own models.

Equivalence is checked against PANNs' own code, built with seeded random weights (no download):
CNN14 from the `panns-inference` package (PyPI), CNN6, CNN10 and CNN14_16k from PANNs' repository
file copied into tests/panns_reference.py. Each is saved the way PANNs saves checkpoints
(``torch.save({"model": state_dict, ...})``), imported, and both run on real FSDD recordings
resampled to the model's rate: the clip-wise outputs (sigmoid of our logits vs PANNs'
`clipwise_output`) must agree within 1e-4.
"""

from __future__ import annotations

import importlib
import importlib.util
import pickle
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from audioprune.audio.io import load_audio
from audioprune.cli import main
from audioprune.models.panns_checkpoint import audioset_class_names
from audioprune.runs.run_dir import load_model, read_metrics

pytest.importorskip("torchlibrosa")
import panns_reference  # noqa: E402  (needs torchlibrosa)

TOL = 1e-4
CLIPS = ["0_george_0", "3_jackson_10", "7_nicolas_3", "9_yweweler_21"]


def panns_inference_models() -> types.ModuleType:
    """panns_inference.models without running the package's __init__, which downloads the
    AudioSet label list at import time (nothing may download in tests)."""
    spec = importlib.util.find_spec("panns_inference")
    if spec is None:
        pytest.skip("panns-inference is not installed")
    saved = sys.modules.get("panns_inference")
    package = types.ModuleType("panns_inference")
    package.__path__ = list(spec.submodule_search_locations)  # type: ignore[attr-defined]
    sys.modules["panns_inference"] = package
    try:
        return importlib.import_module("panns_inference.models")
    finally:
        if saved is not None:
            sys.modules["panns_inference"] = saved


def _randomise(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Non-trivial BN statistics and affine parameters, so a swapped or misnamed BN shows."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=gen) * 0.1)
                m.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
                m.weight.copy_(torch.rand(n, generator=gen) + 0.5)
                m.bias.copy_(torch.randn(n, generator=gen) * 0.1)
    return model.eval()


def _waves(fsdd_root: Path, sample_rate: int) -> torch.Tensor:
    out = []
    for name in CLIPS:
        wave = load_audio(fsdd_root / "recordings" / f"{name}.flac", sample_rate)
        padded = np.zeros(sample_rate, dtype=np.float32)  # 1 s
        padded[: min(len(wave), sample_rate)] = wave[:sample_rate]
        out.append(padded)
    return torch.from_numpy(np.stack(out))


def _import(peer: torch.nn.Module, variant: str, tmp_path: Path) -> Path:
    ckpt = tmp_path / f"{variant}.pth"
    torch.save({"iteration": 0, "model": peer.state_dict()}, ckpt)  # PANNs' checkpoint format
    run = tmp_path / f"run-{variant}"
    assert main(["import", "panns", str(ckpt), "--model", variant, "--out", str(run)]) == 0
    return run


@torch.no_grad()
def _max_diff(peer: torch.nn.Module, run: Path, waves: torch.Tensor) -> float:
    model, info = load_model(run)
    theirs = peer(waves)["clipwise_output"]
    ours = torch.sigmoid(model.eval()(waves))
    assert ours.shape == theirs.shape
    return float((ours - theirs).abs().max())


def test_cnn14_equals_panns_inference(fsdd_root: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    peer = _randomise(panns_inference_models().Cnn14(32000, 1024, 320, 64, 50, 14000, 527), 1)
    run = _import(peer, "cnn14", tmp_path)
    assert _max_diff(peer, run, _waves(fsdd_root, 32000)) <= TOL
    m = read_metrics(run)
    assert m["mAP"] is None and m["source"]["name"] == "panns" and m["params"] == 80_753_615
    assert m["class_names"] == audioset_class_names() and len(m["class_names"]) == 527
    assert m["class_names"][0] == "Speech" and m["class_names"][137] == "Music"
    model, info = load_model(run)
    assert info["frontend"]["log_mode"] == "clamp" and info["task"] == "multi-label"


@pytest.mark.parametrize("variant, cls, args", [
    ("cnn6", "Cnn6", (32000, 1024, 320, 64, 50, 14000, 527)),
    ("cnn10", "Cnn10", (32000, 1024, 320, 64, 50, 14000, 527)),
    ("cnn14-16k", "Cnn14_16k", (16000, 512, 160, 64, 50, 8000, 527)),
])
def test_other_variants_equal_panns_own_definitions(variant: str, cls: str, args: tuple,
                                                    fsdd_root: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    peer = _randomise(getattr(panns_reference, cls)(*args), 2)
    run = _import(peer, variant, tmp_path)
    assert _max_diff(peer, run, _waves(fsdd_root, args[0])) <= TOL


def test_wrong_variant_and_unreadable_files_are_refused(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture) -> None:
    torch.manual_seed(0)
    ckpt = tmp_path / "Cnn14_16k.pth"
    torch.save({"model": panns_reference.Cnn14_16k(16000, 512, 160, 64, 50, 8000, 527).state_dict()},
               ckpt)
    assert main(["import", "panns", str(ckpt), "--model", "cnn14", "--out",
                 str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "spectrogram_extractor.stft.conv_real.weight has shape (257, 1, 512)" in err
    assert not (tmp_path / "x").exists()
    cnn6 = tmp_path / "cnn6.pth"
    torch.save({"model": panns_reference.Cnn6(32000, 1024, 320, 64, 50, 14000, 527).state_dict()},
               cnn6)
    assert main(["import", "panns", str(cnn6), "--model", "cnn10", "--out", str(tmp_path / "y")]) == 2
    assert "conv_block1.conv1.weight has shape (64, 1, 5, 5)" in capsys.readouterr().err


def test_a_pickle_that_would_run_code_is_refused_and_never_runs(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture) -> None:
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    evil = tmp_path / "Cnn14_mAP=0.431.pth"
    evil.write_bytes(pickle.dumps({"model": Evil()}))
    assert main(["import", "panns", str(evil), "--model", "cnn14", "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "not a checkpoint audioprune can read safely" in err and "never runs code" in err
    assert not marker.exists() and not (tmp_path / "r").exists()


def test_cnn14_counts_of_the_centrality_papers_setting() -> None:
    """The centrality paper prunes CNN14 (527 classes, 10 s at 32 kHz) to 24% fewer MACs and
    41% fewer parameters. By arithmetic (our counter, README "Start from a pretrained model"):
    C7-C12 at 25% (the QCNN paper's "last three blocks") gives -22.0% / -41.3%; adding C6 at
    12.5% gives -24.0% / -41.5%."""
    from audioprune.audio.frontend import FrontEndConfig
    from audioprune.models.registry import create_model
    from audioprune.pruning.engine import PruningGraph
    from audioprune.pruning.plan import Plan, resolve_plan

    with torch.device("meta"):
        model = create_model("cnn14", 527, frontend=FrontEndConfig(clip_seconds=10.0))
    graph = PruningGraph(model, torch.zeros(1, 1, 1001, 64, device="meta"), "classify")
    base_params, base_macs = 80_753_615, 20_041_926_656
    last3 = resolve_plan(Plan(ratios={"C7-C12": 0.25}), graph).predicted
    assert last3 == {"params": 47_408_591, "macs": 15_641_970_688}
    paper = resolve_plan(Plan(ratios={"C6": 0.125, "C7-C12": 0.25}), graph).predicted
    assert paper == {"params": 47_224_207, "macs": 15_236_466_688}
    assert round(100 * (1 - paper["macs"] / base_macs), 1) == 24.0
    assert round(100 * (1 - paper["params"] / base_params), 1) == 41.5
