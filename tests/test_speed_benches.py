"""Smoke runs of issue 30's side-by-side benchmarks at tiny settings: what each writes and the
invariants it claims (the variants compute the same thing; int8 files are smaller) - never a
speed (no timed assertion)."""

from __future__ import annotations

from pathlib import Path

import pytest

from audioprune.fileio import read_json
from conftest import bench_module

_bench = bench_module


@pytest.mark.slow  # ~9 s
def test_bench_precision_times_every_precision_on_identical_models(tmp_path: Path) -> None:
    bench = _bench("bench_precision")
    out = tmp_path / "precision.json"
    assert bench.main(["--models", "dcase21net", "--precisions", "fp32", "bf16", "--rounds", "1",
                       "--budget", "0.01", "--batch", "2", "--clip-seconds", "0.5",
                       "--out", str(out)]) == 0
    doc = read_json(out)
    r = doc["models"]["dcase21net"]
    assert set(r["train_step"]) == set(r["inference"]) == {"fp32", "bf16"}
    assert r["train_step"]["fp32"]["ratio"] == 1.0 and r["train_step"]["bf16"]["rounds"] == 1
    # copies of one model on one batch: the first losses agree to bf16's rounding
    a, b = r["train_step"]["fp32"]["loss_first"], r["train_step"]["bf16"]["loss_first"]
    assert abs(a - b) < 0.05 * a
    assert doc["summary"]["dcase21net"]["train_bf16_over_fp32"] == r["train_step"]["bf16"]["ratio"]
    assert isinstance(doc["cpu_flags"], list) and "machine" in doc


def test_bench_memory_format_compares_layouts_on_the_same_function(tmp_path: Path) -> None:
    bench = _bench("bench_memory_format")
    out = tmp_path / "mf.json"
    assert bench.main(["--models", "dcase21net", "--no-compile", "--rounds", "1", "--budget",
                       "0.01", "--batch", "2", "--clip-seconds", "0.5", "--out", str(out)]) == 0
    r = read_json(out)["models"]["dcase21net"]
    assert set(r["variants"]) == {"eager", "channels_last"}
    assert r["variants"]["eager"]["ratio"] == 1.0
    assert r["max_first_loss_gap"] < 1e-3  # NHWC changes the rounding, not the function
    assert r["best"] in r["variants"]


@pytest.mark.slow  # ~20 s: export, three quantizations, timing
def test_bench_quantize_families_on_the_depthwise_net(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    bench = _bench("bench_quantize")
    out = tmp_path / "ql.json"
    assert bench.main(["--only", "depthwise", "--rounds", "1",
                       "--clip-seconds", "0.25", "--out", str(out)]) == 0
    row = read_json(out)["families"]["depthwise (mn04-like)"]
    assert row["bn_folded"] == 1 + 9 * 3 + 1  # every BN folded: stem, 9 blocks x 3, last 1x1
    assert row["bytes"]["int8 static"] < 0.5 * row["bytes"]["fp32"]
    for b in ("b1", "b8"):
        assert set(row["latency"][b]) == {"fp32", "int8 static", "int8 static 8-bit",
                                          "int8 dynamic"}
        assert row["latency"][b]["fp32"]["ratio"] == 1.0
