"""int8 deployment on real FSDD recordings: `audioprune quantize` (ONNX Runtime static QDQ and
dynamic, quantization-aware fine-tuning), DCASE complexity budgets in prune / profile / report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from audioprune.cli import main
from audioprune.errors import UserError
from audioprune.measure.budget import (
    BUDGETS,
    check_budget,
    complexity,
    parse_budget,
    targets_for,
)
from audioprune.runs.data import DataSpec
from audioprune.runs.train import train_run
from audioprune.train.fit import TrainConfig

ort = pytest.importorskip("onnxruntime")


def _metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


def test_budgets_parse_count_and_check() -> None:
    """DCASE 2022-2025: 128,000 B and 30M MACs per second; parameters cost 1/2/4 B."""
    b = parse_budget("dcase2024")
    assert b is BUDGETS["dcase2024"] and (b.params_bytes, b.macs_per_second) == (128_000, 30_000_000)
    custom = parse_budget("params_bytes=64k, macs=1.5M")
    assert (custom.params_bytes, custom.macs_per_second) == (64_000, 1_500_000)
    assert parse_budget("macs=2G").params_bytes is None
    c = complexity(40_000, 60_000_000, clip_seconds=2.0, precision="fp32")
    assert c["params_bytes"] == 160_000 and c["macs_per_second"] == 30_000_000
    ok, lines = check_budget(b, c)
    assert not ok and lines[0].startswith("FAIL: 160,000 B of fp32 parameters > 128,000 (1.25x)")
    assert lines[1].startswith("pass: 30,000,000 MACs per second")
    assert check_budget(b, complexity(40_000, 60_000_000, 2.0, "int8"))[0]
    assert targets_for(b, 10.0, "int8") == {"target_params": 128_000, "target_macs": 300_000_000}
    assert targets_for(b, 1.0, "fp32")["target_params"] == 32_000
    for bad, what in (("dcase1999", "give a name"), ("flops=3", "unknown limit 'flops'"),
                      ("macs=lots", "not a number"), ("", "sets no limit")):
        with pytest.raises(ValueError, match=what):
            parse_budget(bad)
    with pytest.raises(ValueError, match="precision"):
        complexity(1, 1, 1.0, "int4")


def test_fake_quantization_trains_on_the_grid_the_int8_file_deploys() -> None:
    """QAT must round weights as `quantize_onnx` will: 7-bit (-64..64) by default, 8-bit when
    asked; a mismatch trains the model for rounding it never meets."""
    import torch
    from torch import nn

    from audioprune.measure.quantize import strip_fake_quant, with_fake_quant

    torch.manual_seed(0)
    for reduce_range, top in ((True, 64), (False, 127)):
        model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(4 * 6 * 6, 3))
        weights = [m.weight.detach().clone() for m in (model[0], model[2])]
        assert with_fake_quant(model, reduce_range=reduce_range) == ["0", "2"]
        model(torch.randn(2, 1, 8, 8))  # the observers see the weights
        for wrapped, w in zip((model[0], model[2]), weights):
            fq = wrapped.weight_fq
            q = fq(w) / fq.scale.view(-1, *([1] * (w.dim() - 1)))
            assert torch.allclose(q, q.round(), atol=1e-3)  # on the grid ...
            assert int(q.round().abs().max()) == top  # ... whose largest step is the range's
        strip_fake_quant(model)
        assert isinstance(model[0], nn.Conv2d) and torch.equal(model[0].weight, weights[0])


@pytest.fixture(scope="module")
def fp32_run(fsdd_small: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("quantize") / "fp32"
    train_run("dcase21net", {}, DataSpec("fsdd", str(fsdd_small)),  # 49% on 100 test clips
              TrainConfig(epochs=20, batch_size=8, lr=3e-3, progress=False), out)
    return out


def _int8_accuracy(run: Path, fsdd_small: Path) -> float:
    """The int8 model's accuracy recomputed here, from the file alone: ONNX Runtime on the
    features of the official test clips (recordings 0-4 of each speaker and digit), centred."""
    import soundfile as sf
    import torch

    from audioprune.audio.clip import fit_length
    from audioprune.runs.run_dir import load_model

    model, _ = load_model(run)
    session = ort.InferenceSession(str(run / "model.int8.onnx"), providers=["CPUExecutionProvider"])
    clips = sorted(p for p in (fsdd_small / "recordings").iterdir() if int(p.stem.split("_")[2]) < 5)
    waves, labels = [], []
    for path in clips:
        wave, _ = sf.read(path, dtype="float32")
        waves.append(torch.from_numpy(fit_length(wave, model.frontend_cfg.clip_samples)))
        labels.append(int(path.stem.split("_")[0]))
    with torch.no_grad():
        feats = model.features(torch.stack(waves)).numpy()
    logits = session.run(None, {session.get_inputs()[0].name: feats})[0]
    return float(np.mean(logits.argmax(1) == np.array(labels)))


def test_static_int8_run_is_evaluated_as_deployed(fp32_run: Path, fsdd_small: Path,
                                                  tmp_path: Path, capsys) -> None:
    out = tmp_path / "int8"
    assert main(["quantize", str(fp32_run), "--out", str(out), "--calibration-batches", "2"]) == 0
    assert "int8 (static) accuracy" in capsys.readouterr().out
    m, parent = _metrics(out), _metrics(fp32_run)
    q = m["quantization"]
    assert m["precision"] == "int8" and m["parent"]["run"] == str(fp32_run.resolve())
    assert m["size_bytes"] == (out / "model.int8.onnx").stat().st_size
    assert m["size_ratio"] == pytest.approx(m["size_bytes"] / (out / "model.fp32.onnx").stat().st_size, abs=1e-4)
    assert m["size_ratio"] < 0.35  # int8 weights: about a quarter of fp32
    assert q["calibration_split"] == "train" and q["calibration_batches"] == 2
    assert q["calibration_examples"] == 64  # two batches of 32 training clips
    assert q["ops"]["QuantizeLinear"] > 0 and q["ops"]["DequantizeLinear"] > 0 and q["per_channel"]
    assert m["num_examples"] == 100 and m["params"] == parent["params"] and m["macs"] == parent["macs"]
    assert m["params_deployed"] < m["params"]  # batch norm folded into the convs
    # the fp32 ONNX model scores what the PyTorch run scored; the int8 file scores what it says
    assert m["fp32_onnx"]["accuracy"] == pytest.approx(parent["accuracy"], abs=0.011)
    # (one clip of 100 may flip: batches of 64 there, of 100 here, round differently in int8)
    assert m["accuracy"] == pytest.approx(_int8_accuracy(out, fsdd_small), abs=0.011)
    assert abs(m["accuracy_change_vs_fp32_onnx"]) <= 0.05
    capsys.readouterr()
    assert main(["quantize", str(fp32_run), "--out", str(out)]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert main(["quantize", str(fp32_run), "--out", str(fp32_run)]) == 2
    assert "--out must differ" in capsys.readouterr().err

    prof_budget = ["profile", str(out), "--batch-sizes", "1,4", "--budget"]
    assert main(prof_budget + ["dcase2024"]) == 1  # 57.9M MACs per second of audio: over 30M
    text = capsys.readouterr().out
    assert "budget       dcase2024: FAIL" in text and "pass: " in text and "B of int8 parameters" in text
    assert main(prof_budget + ["params_bytes=128k,macs=60M"]) == 0
    prof = json.loads((out / "profile.json").read_text())
    assert prof["precision"] == "int8" and set(prof["latency_ms"]["onnxruntime-int8"]) == {"b1", "b4"}
    c = prof["complexity"]
    assert c["params_bytes"] == m["params_deployed"] and c["macs_per_second"] == m["macs"]
    assert prof["budget"]["pass"] and prof["onnx_int8"]["size_bytes"] == m["size_bytes"]

    rep = tmp_path / "report"
    assert main(["report", str(out), "--out", str(rep), "--budget", "dcase2024"]) == 0
    text = (rep / "report.md").read_text()
    assert "| precision | param memory (kB) | MMACs/s | budget |" in text
    lines = {line.split(" | ")[0].strip("| "): line for line in text.splitlines() if line.startswith("| ")}
    assert "int8 static" in lines["int8"] and "| int8 |" in lines["int8"] and "| FAIL |" in lines["int8"]
    assert "| fp32 |" in lines["fp32"]
    assert (rep / "accuracy_vs_memory.png").is_file()
    csv = (rep / "report.csv").read_text().splitlines()
    head = csv[0].split(",")
    row = dict(zip(head, next(r for r in csv[1:] if r.startswith("int8,")).split(",")))
    assert row["kind"] == "quantized" and int(row["params_bytes"]) == m["params_deployed"]
    assert float(row["delta_value"]) == pytest.approx(m["accuracy"] - parent["accuracy"])
    assert row["within_budget"] == "False" and float(row["macs_per_second"]) == m["macs"]


def _onnx_weights(path: Path) -> dict[str, np.ndarray]:
    import onnx
    from onnx import numpy_helper

    return {t.name: numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer}


def test_dynamic_and_quantization_aware_runs(fp32_run: Path, fsdd_small: Path, tmp_path: Path,
                                             capsys) -> None:
    dyn = tmp_path / "dynamic"
    assert main(["quantize", str(fp32_run), "--out", str(dyn), "--method", "dynamic"]) == 0
    m = _metrics(dyn)
    assert m["quantization"]["calibration_batches"] == 0 and m["size_ratio"] < 0.35
    assert any(op.startswith("ConvInteger") or op == "DynamicQuantizeLinear"
               for op in m["quantization"]["ops"])
    # 7-bit weights by default (ONNX Runtime saturates without VNNI), 8-bit when asked
    full = tmp_path / "dynamic-8bit"
    assert main(["quantize", str(fp32_run), "--out", str(full), "--method", "dynamic",
                 "--full-range-weights"]) == 0
    assert "7-bit" in m["quantization"]["weights"]
    assert _metrics(full)["quantization"]["weights"] == "int8, symmetric, full range"
    top = {run: max(int(np.abs(w.astype(int)).max()) for w in _onnx_weights(run / "model.int8.onnx")
                    .values() if w.dtype == np.int8) for run in (dyn, full)}
    assert top == {dyn: 64, full: 127}
    qat = tmp_path / "qat"
    assert main(["quantize", str(fp32_run), "--out", str(qat), "--qat-epochs", "1",
                 "--calibration-batches", "2"]) == 0
    m, parent = _metrics(qat), _metrics(fp32_run)
    assert m["quantization"]["qat"]["epochs"] == 1 and m["quantization"]["qat"]["layers"] == 5  # 3 convs, 2 linears
    # the fine-tuning changed the weights that were quantized: the fp32 graph quantized after
    # QAT is not the parent's deployed graph (the dynamic run quantized that one)
    tuned, plain = _onnx_weights(qat / "model.fp32.onnx"), _onnx_weights(dyn / "model.fp32.onnx")
    assert tuned.keys() == plain.keys()
    assert any(not np.array_equal(tuned[k], plain[k]) for k in tuned)
    # ... and did not wreck the model: the int8 file (scored here, from the file alone) keeps
    # the parent's accuracy and what its own fp32 graph scores
    assert m["accuracy"] == pytest.approx(_int8_accuracy(qat, fsdd_small), abs=0.011)
    # 100 test clips give a ~50% model a standard error of 5 points, and one epoch of fine-tuning
    # moves it by that much with the CPU's float order (0.45 and 0.46 on an AVX2 EPYC, >= 0.47 on a
    # Xeon): two standard errors; a broken QAT (lost weights, wrong rounding) lands near chance
    assert m["accuracy"] >= parent["accuracy"] - 0.10, (m["accuracy"], parent["accuracy"])
    assert abs(m["accuracy_change_vs_fp32_onnx"]) <= 0.05
    assert main(["quantize", str(fp32_run), "--out", str(tmp_path / "x"),
                 "--calibration-batches", "0"]) == 2
    assert "--calibration-batches must be at least 1" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()  # refused before anything was written


def test_unquantizable_bytes_are_refused_with_the_reason() -> None:
    from audioprune.measure.quantize import quantize_onnx

    with pytest.raises(UserError, match="ONNX Runtime could not quantize the model"):
        quantize_onnx(b"not an onnx model", [np.zeros((1, 1, 4, 4), np.float32)])
    with pytest.raises(UserError, match="calibration"):
        quantize_onnx(b"", None, method="static")


def test_prune_to_a_budget_at_the_deployed_precision(fp32_run: Path, tmp_path: Path,
                                                     capsys) -> None:
    """--target-budget turns the limits into parameter and MAC targets for int8; the pruned
    model's profile passes the budget that the parent fails."""
    parent = _metrics(fp32_run)
    budget = f"params_bytes=20k,macs={parent['macs'] // 2}"
    assert main(["profile", str(fp32_run), "--no-onnx", "--batch-sizes", "1", "--budget",
                 budget]) == 1
    out = tmp_path / "pruned"
    assert main(["prune", str(fp32_run), "--criterion", "l1", "--target-budget", budget,
                 "--precision", "fp32", "--finetune-epochs", "1", "--no-progress",
                 "--out", str(out)]) == 0
    m = _metrics(out)
    assert m["macs"] <= parent["macs"] // 2 and m["params"] * 4 <= 20_000
    assert m["pruning"]["plan"]["requested"]["budget"] == budget
    assert main(["profile", str(out), "--no-onnx", "--batch-sizes", "1", "--budget", budget]) == 0
    capsys.readouterr()
    assert main(["prune", str(fp32_run), "--criterion", "l1", "--target-budget", "dcase2024",
                 "--ratio", "0.5", "--out", str(tmp_path / "both")]) == 2
    assert "--ratio, --target-budget" in capsys.readouterr().err
