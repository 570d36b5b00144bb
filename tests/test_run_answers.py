"""Run directories as a new user drives them: a quantized (int8) run predicts with its int8
model and refuses to be pruned, `quantize --no-progress`, quantize logging once, `predict DIR`,
and `profile` without the measure extras keeping an earlier profile's ONNX Runtime columns."""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from fixtures_audio import write_audio

from audioprune.cli import main
from audioprune.measure.latency import Timing
from audioprune.runs.profile import profile_run
from audioprune.runs.run_dir import load_model

ort = pytest.importorskip("onnxruntime")

SYNTH = ["--dataset", "synthetic", "--split", "sizes:20,10,20"]
FAST = Timing(repeats=3, warmup=1)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(an fp32 run, its int8 run by `quantize --method dynamic --no-progress`)."""
    base = tmp_path_factory.mktemp("int8")
    fp32, int8 = base / "fp32", base / "int8"
    assert main(["train", "--model", "dcase21net", "--width", "0.25", *SYNTH, "--epochs", "1",
                 "--batch-size", "10", "--no-progress", "--out", str(fp32)]) == 0
    assert main(["quantize", str(fp32), "--out", str(int8), "--method", "dynamic",
                 "--no-progress"]) == 0
    return fp32, int8


def _fails(argv: list[str], capsys: pytest.CaptureFixture) -> str:
    assert main(argv) == 2, argv
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return err.strip().splitlines()[-1]


def test_predict_runs_an_int8_run_through_onnx_runtime(runs: tuple[Path, Path], tmp_path: Path,
                                                       capsys: pytest.CaptureFixture) -> None:
    fp32, int8 = runs
    clip = write_audio(tmp_path / "clip.wav", 16000, 1.0)
    assert main(["predict", str(int8), str(clip), "--json", "--top-k", "10"]) == 0
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert doc["model"] == "the int8 model model.int8.onnx in ONNX Runtime"
    assert f"{int8}: the int8 model model.int8.onnx in ONNX Runtime" in captured.err
    got = {t["label"]: t["score"] for t in doc["predictions"][0]["top"]}
    # the same scores computed here from the file alone: PyTorch features, ONNX Runtime int8
    model, info = load_model(int8)
    from audioprune.audio.io import load_audio

    wave = torch.from_numpy(load_audio(clip, model.frontend_cfg.sample_rate))[None]
    with torch.no_grad():
        feats = model.eval().features(wave).numpy()
        fp32_probs = torch.softmax(model(wave), -1)[0].numpy()
    session = ort.InferenceSession(str(int8 / "model.int8.onnx"), providers=["CPUExecutionProvider"])
    logits = session.run(None, {session.get_inputs()[0].name: feats})[0][0]
    int8_probs = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    expected = dict(zip(info["class_names"], int8_probs))
    for label, score in got.items():
        assert score == pytest.approx(float(expected[label]), abs=2e-6)
    assert not np.allclose([got[n] for n in info["class_names"]], fp32_probs, atol=1e-6)
    assert main(["predict", str(fp32), str(clip)]) == 0
    assert f"{fp32}: the fp32 model model.safetensors in PyTorch" in capsys.readouterr().err


def test_prune_and_quantize_refuse_an_int8_run_naming_its_parent(
        runs: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    fp32, int8 = runs
    line = _fails(["prune", str(int8), "--criterion", "l1", "--ratio", "0.5", "--no-progress",
                   "--out", str(tmp_path / "p")], capsys)
    assert line == (f"audioprune prune: error: {int8} is an int8 run (model.int8.onnx by "
                    f"`audioprune quantize`); prune needs fp32 weights: prune its fp32 parent "
                    f"{fp32.resolve()} instead, and quantize the result")
    assert not (tmp_path / "p").exists()
    line = _fails(["quantize", str(int8), "--out", str(tmp_path / "q")], capsys)
    assert f"quantize its fp32 parent {fp32.resolve()} instead" in line


def test_quantizing_leaves_the_root_logger_unconfigured(monkeypatch: pytest.MonkeyPatch) -> None:
    """ONNX Runtime's quantizer logs through the root logger, which configured it once: every
    log line after that printed twice (`quantize --method dynamic`)."""
    from audioprune.audio.frontend import FrontEndConfig
    from audioprune.measure.onnx_export import export_onnx
    from audioprune.measure.quantize import quantize_onnx
    from audioprune.models.registry import create_model

    fe = FrontEndConfig(sample_rate=8000, n_fft=256, hop_length=80, n_mels=32, fmin=0.0,
                        fmax=4000.0, clip_seconds=0.5)
    data = export_onnx(create_model("dcase21net", 4, frontend=fe, width=0.25).eval())
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])  # as in a plain `audioprune` process
    quantize_onnx(data, method="dynamic")
    assert root.handlers == []


def test_predict_on_a_directory_says_to_pass_its_files(runs: tuple[Path, Path], tmp_path: Path,
                                                       capsys: pytest.CaptureFixture) -> None:
    folder = tmp_path / "clips"
    write_audio(folder / "a.wav", 16000, 0.2)
    line = _fails(["predict", str(runs[0]), str(folder)], capsys)
    assert line == (f"audioprune predict: error: {folder} is a directory; pass its audio files "
                    f"(e.g. {folder / '*.wav'})")
    assert main(["predict", str(runs[0]), str(folder / "a.wav"), str(tmp_path / "none.wav")]) == 0
    assert f"skipped {tmp_path / 'none.wav'}: no such file" in capsys.readouterr().err


def test_profile_without_the_extras_keeps_the_earlier_onnx_runtime_columns(
        runs: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    run = runs[1]  # the int8 run: also its int8 latency
    first = profile_run(run, batch_sizes=(1,), threads=1, timing=FAST)
    assert first["latency_ms"]["onnxruntime"] and first["latency_ms"]["onnxruntime-int8"]
    with monkeypatch.context() as m:
        for name in ("onnx", "onnxruntime", "onnxscript"):
            m.setitem(sys.modules, name, None)  # the `measure` extra not installed
        with caplog.at_level(logging.WARNING, logger="audioprune"):
            profile_run(run, batch_sizes=(1,), threads=1, timing=FAST)
    saved = json.loads((run / "profile.json").read_text())
    for key in ("onnxruntime", "onnxruntime-int8"):
        assert saved["latency_ms"][key] == first["latency_ms"][key]
    assert saved["onnx"] == first["onnx"] and saved["onnx_int8"] == first["onnx_int8"]
    assert saved["onnx_kept"]["why"].startswith("ONNX export needs onnx, which is not installed")
    assert any(r.getMessage().startswith(f"kept the ONNX Runtime columns of the earlier "
                                         f"{run / 'profile.json'}") for r in caplog.records)
    # an earlier profile of another model: its columns are dropped, and that is said
    saved["model_sha256"] = "another model"
    (run / "profile.json").write_text(json.dumps(saved))
    caplog.clear()
    with monkeypatch.context() as m:
        for name in ("onnx", "onnxruntime", "onnxscript"):
            m.setitem(sys.modules, name, None)
        with caplog.at_level(logging.WARNING, logger="audioprune"):
            profile_run(run, batch_sizes=(1,), threads=1, timing=FAST)
    dropped = json.loads((run / "profile.json").read_text())
    assert dropped["latency_ms"]["onnxruntime"] is None and "onnx_kept" not in dropped
    assert any("timed ONNX Runtime on another model; its ONNX Runtime columns are dropped"
               in r.getMessage() for r in caplog.records)
