"""bench/gpu_check.py's dry run: every section of the GPU check run on the CPU with tiny shapes
through the same code (the DDP one under torchrun, on gloo), and the JSON it writes checked for
what each section must show - not timed (no assertion on a speed)."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

from audioprune.fileio import read_json

BENCH = Path(__file__).resolve().parents[1] / "bench"

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")


def _gpu_check():
    sys.path.insert(0, str(BENCH))
    try:
        import gpu_check
    finally:
        sys.path.remove(str(BENCH))
    return gpu_check


def _learned(run: dict) -> None:
    """Finite losses, one per step, falling over the steps on the one fixed batch."""
    losses = run["losses"]
    assert all(math.isfinite(v) for v in losses) and run["finite"]
    assert len(losses) == run["steps_timed"] + 1  # tiny: 1 warm-up step + the timed ones
    assert run["falling"] and losses[-1] < 0.5 * losses[0], losses
    assert run["clips_per_s"] > 0 and run["peak_memory_mb"] > 0


@pytest.mark.slow  # ~35 s on one busy core: a torchrun child, two ONNX exports, a quantization
def test_dry_run_runs_every_section_and_writes_one_json(tmp_path: Path) -> None:
    gpu_check = _gpu_check()
    out = tmp_path / "gpu_check.json"
    assert gpu_check.main(["--dry-run", "--out", str(out)]) == 0
    doc = read_json(out)
    assert doc["mode"] == "dry-run" and doc["device"] == "cpu"
    sections = doc["sections"]
    assert list(sections) == list(gpu_check.SECTIONS)
    assert {s["status"] for s in sections.values()} == {"ok"}, \
        {k: s.get("error") for k, s in sections.items()}

    train = sections["train_precision"]
    assert set(train["runs"]) == {"fp32", "bf16", "fp16"}  # bf16 and fp16 autocast run on CPUs
    for precision, run in train["runs"].items():
        assert run["precision"] == precision and run["batch"] == gpu_check.TINY.batch
        _learned(run)
    # same weights, same batch: the first loss differs by the precision's rounding only ...
    first = {p: r["losses"][0] for p, r in train["runs"].items()}
    assert abs(first["bf16"] - first["fp32"]) < 0.05 * first["fp32"], first
    # ... and fp16 alone had a GradScaler, whose scale is reported
    assert "grad_scale_final" in train["runs"]["fp16"]
    assert "grad_scale_final" not in train["runs"]["bf16"]
    assert train["all_finite_and_falling"] is True
    assert train["speedup_over_fp32"]["fp32"] == 1.0

    mf = sections["memory_format"]
    assert mf["channels_last"]["channels_last"] is True and mf["contiguous"]["channels_last"] is False
    _learned(mf["channels_last"])
    assert mf["first_loss_gap"] < 0.05  # the layout changes rounding, not the function

    ddp = sections["ddp"]
    assert ddp["backend"] == "gloo" and ddp["world_size"] == 1 and ddp["rank"] == 0
    assert ddp["wrapped"] == "DistributedDataParallel" and ddp["all_reduce_ok"] is True
    assert ddp["steps_timed"] == gpu_check.TINY.ddp_steps
    _learned(ddp)
    # the DDP rank trained the same model on the same batch as the single-process fp32 run
    assert ddp["losses"][:3] == pytest.approx(train["runs"]["fp32"]["losses"][:3], rel=1e-3)

    prune = sections["prune"]
    assert prune["criterion"] == "taylor" and prune["calibration_batches"] == 2
    assert prune["calibration_device"] == prune["model_device_after"] == "cpu"
    assert "cpu" in prune["forward_devices_seen"]  # calibration ran the model on its device
    assert prune["macs_after"] < 0.8 * prune["macs_before"]
    assert prune["params_after"] < 0.8 * prune["params_before"]
    assert prune["pruned_output_shape"] == [gpu_check.TINY.batch, gpu_check.CLASSES]
    assert prune["pruned_output_finite"] is True

    lat = sections["latency"]
    keys = {f"{p}_b{b}" for p in ("fp32", "bf16") for b in gpu_check.TINY.latency_batches}
    for model in ("cnn14", "cnn14_pruned"):
        assert set(lat["eager"][model]) == keys and all(v > 0 for v in lat["eager"][model].values())
        assert set(lat["ort"][model]) == {f"b{b}" for b in gpu_check.TINY.latency_batches}
    assert lat["ort"]["provider"] == "CPUExecutionProvider"  # the dry run's stand-in for CUDA

    int8 = sections["int8_cpu"]
    assert int8["int8_bytes"] < 0.35 * int8["fp32_bytes"]  # int8 weights: about a quarter
    assert set(int8["ms"]) == {f"{k}_b{b}" for k in ("fp32", "int8")
                               for b in gpu_check.TINY.cpu_batches}
    assert 0.5 <= int8["top1_agreement_with_fp32"] <= 1.0
    assert doc["seconds"] >= sum(s["seconds"] for s in sections.values()) - 1


def test_without_cuda_the_gpu_sections_are_skipped_with_the_reason(tmp_path: Path,
                                                                    monkeypatch) -> None:
    gpu_check = _gpu_check()
    monkeypatch.setattr(gpu_check.torch.cuda, "is_available", lambda: False)
    out = tmp_path / "gpu.json"
    sections = ["environment", "train_precision", "ddp", "prune", "latency"]
    assert gpu_check.main(["--sections", *sections, "--out", str(out)]) == 0
    doc = read_json(out)
    assert doc["mode"] == "gpu" and doc["device"] == "cuda"
    assert doc["sections"]["environment"]["status"] == "ok"
    assert doc["sections"]["environment"]["cuda_available"] is False
    for name in sections[1:]:
        s = doc["sections"][name]
        assert s["status"] == "skipped" and "CUDA is not available" in s["reason"], s


def test_a_section_past_the_budget_is_skipped_and_a_failed_one_is_reported(monkeypatch) -> None:
    gpu_check = _gpu_check()

    def boom(ctx: dict) -> dict:
        raise RuntimeError("kernel exploded")

    monkeypatch.setitem(gpu_check.RUNNERS, "environment", boom)
    doc = gpu_check.run(dry=True, sections=["environment", "prune"], budget_s=-1.0)
    env = doc["sections"]["environment"]
    assert env["status"] == "skipped" and "time budget" in env["reason"]
    doc = gpu_check.run(dry=True, sections=["environment", "latency"], budget_s=60.0)
    assert doc["sections"]["environment"]["status"] == "failed"
    assert "kernel exploded" in doc["sections"]["environment"]["error"]
    # latency needs the pruned twin of the prune section, which did not run: said, not crashed
    lat = doc["sections"]["latency"]
    assert lat["status"] == "failed" and "prune section did not run" in lat["error"]
