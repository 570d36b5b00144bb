"""Per-layer parameter and MAC tables against hand arithmetic (dcase21net, CNN14, QCNN6),
the latency timer's adaptive repetitions (on a fake clock: no timed assertions), and
`profile_run` / `audioprune profile` on a small trained run (the profile.json layout that the
report pipeline reads)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import audioprune.measure.latency as latency
from audioprune.audio.frontend import FrontEndConfig
from audioprune.cli import main
from audioprune.measure.counting import (
    count_macs,
    count_params,
    frontend_macs,
    layer_macs,
    layer_params,
)
from audioprune.measure.latency import Timing, time_call, torch_threads
from audioprune.models.dcase21net import DCASE21_FRONTEND
from audioprune.models.registry import create_model
from audioprune.runs.data import DataSpec
from audioprune.runs.profile import PROFILE_JSON, profile_run
from audioprune.runs.train import train_run
from audioprune.train.fit import TrainConfig


# ---------------------------------------------------------------- hand arithmetic
def conv(c_in: int, c_out: int, k: int, bias: bool) -> int:
    return c_in * c_out * k * k + (c_out if bias else 0)


def conv_macs(t: int, m: int, c_in: int, c_out: int, k: int) -> int:
    """A same-padded conv at a (t frames x m mels) plane: one MAC per output value per weight."""
    return t * m * c_out * c_in * k * k


def test_dcase21net_per_layer_by_hand() -> None:
    # 10 s at 44.1 kHz, hop 882: 501 frames x 40 mels. conv1/conv2 at 501 x 40, MaxPool 5 ->
    # 100 x 8, conv3 there; max over time and MaxPool(1, 4) leave 32 channels x 2 mels = 64.
    with torch.device("meta"):  # shapes only: no 287 M MACs computed
        model = create_model("dcase21net", 10, frontend=DCASE21_FRONTEND)
    params = {"conv1": conv(1, 16, 7, True), "bn1": 2 * 16,
              "conv2": conv(16, 16, 7, True), "bn2": 2 * 16,
              "conv3": conv(16, 32, 7, True), "bn3": 2 * 32,
              "fc1": 64 * 100 + 100, "fc_out": 100 * 10 + 10}
    macs = {"conv1": conv_macs(501, 40, 1, 16, 7), "conv2": conv_macs(501, 40, 16, 16, 7),
            "conv3": conv_macs(100, 8, 16, 32, 7), "fc1": 64 * 100, "fc_out": 100 * 10}
    assert params == {"conv1": 800, "bn1": 32, "conv2": 12_560, "bn2": 32, "conv3": 25_120,
                      "bn3": 64, "fc1": 6_500, "fc_out": 1_010}
    assert sum(params.values()) == 46_118  # the Keras 46,246 less the 128 BN statistics
    assert sum(macs.values()) == 287_170_920
    assert layer_params(model) == params
    assert layer_macs(model) == macs  # default: the front end's 10 s clip
    assert sum(layer_params(model).values()) == count_params(model)


CNN14_WIDTHS = (64, 128, 256, 512, 1024, 2048)


def test_cnn14_per_layer_by_hand_on_meta() -> None:
    # PANNs CNN14 at 527 classes, 10 s at 32 kHz: 1001 frames x 64 mels; each of the first five
    # blocks ends with a 2x2 average pool (floor), the sixth does not.
    with torch.device("meta"):  # counts without filling 80 M weights or computing 20 GMACs
        model = create_model("cnn14", 527).eval()
    planes = [(1001, 64), (500, 32), (250, 16), (125, 8), (62, 4), (31, 2)]
    params, macs = {"bn0": 2 * 64}, {}
    c_in = 1
    for b, ((t, m), w) in enumerate(zip(planes, CNN14_WIDTHS), start=1):
        for c, (i, o) in enumerate(((c_in, w), (w, w)), start=1):
            params[f"block{b}.conv{c}"] = conv(i, o, 3, False)
            params[f"block{b}.bn{c}"] = 2 * o
            macs[f"block{b}.conv{c}"] = conv_macs(t, m, i, o, 3)
        c_in = w
    params |= {"fc1": 2048 * 2048 + 2048, "fc_out": 2048 * 527 + 527}
    macs |= {"fc1": 2048 * 2048, "fc_out": 2048 * 527}
    assert sum(params.values()) == 80_753_615  # PANNs' 80.75 M
    assert sum(macs.values()) == 20_041_926_656
    assert macs["block1.conv2"] == 1001 * 64 * 64 * 64 * 9 == 2_361_655_296
    assert layer_params(model) == params
    assert layer_macs(model, 320_000) == macs


def test_qcnn6_per_layer_by_hand_on_meta() -> None:
    # Quaternion CNN6 (4 blocks of one 5x5 QConv, no bias) on the 4-channel delta stack, 10 s at
    # 32 kHz (1001 x 64). A QConv c_in -> c_out stores 4 components of (c_out/4) x (c_in/4) x 5 x 5
    # = a quarter of the real conv, but runs ONE real conv: the same MACs as the real conv. fc1
    # is a QLinear (512^2 / 4 + 512 bias); bn0 and the classifier stay real.
    with torch.device("meta"):
        model = create_model("qcnn6", 527).eval()
    planes = [(1001, 64), (500, 32), (250, 16), (125, 8)]
    params, macs = {"bn0": 2 * 64}, {}
    c_in = 4
    for b, ((t, m), w) in enumerate(zip(planes, (64, 128, 256, 512)), start=1):
        params[f"block{b}.conv1"] = 4 * (w // 4) * (c_in // 4) * 5 * 5
        assert params[f"block{b}.conv1"] == conv(c_in, w, 5, False) // 4
        params[f"block{b}.bn1.bn"] = 2 * w  # QBatchNorm2d in "real" mode wraps a BatchNorm2d
        macs[f"block{b}.conv1"] = conv_macs(t, m, c_in, w, 5)
        c_in = w
    params |= {"fc1": 512 * 512 // 4 + 512, "fc_out": 512 * 527 + 527}
    macs |= {"fc1": 512 * 512, "fc_out": 512 * 527}
    assert params["block1.conv1"] == 1_600 and params["block4.conv1"] == 819_200
    assert layer_params(model) == params
    assert layer_macs(model, 320_000) == macs
    assert sum(params.values()) == count_params(model)


def test_layer_macs_sum_to_the_total_with_module_lists() -> None:
    # ast-tiny keeps its encoder layers in a ModuleList that is never called itself and does a
    # functional add / cat in `classify`: every MAC lands in exactly one row.
    fe = FrontEndConfig(sample_rate=8000, n_fft=256, hop_length=80, n_mels=32, fmin=0.0,
                        fmax=None, clip_seconds=1.0)
    model = create_model("ast-tiny", 5, frontend=fe, depth=2, width=0.5)
    rows = layer_macs(model)
    assert sum(rows.values()) == count_macs(model)["model"]
    # 101 x 32 -> 6 x 2 = 12 patches, 13 tokens; dim 96, MLP 384
    assert rows["blocks.0.linear1"] == rows["blocks.1.linear1"] == 13 * 96 * 384
    assert rows["patch_embed"] == 12 * 96 * 16 * 16
    assert frontend_macs(model) == count_macs(model)["frontend"] == 101 * 129 * 32


# ---------------------------------------------------------------- the timer
class FakeClock:
    """perf_counter stand-in: every timed call takes `step` seconds."""

    def __init__(self, step: float) -> None:
        self.now, self.step, self.calls = 0.0, step, 0

    def perf_counter(self) -> float:
        return self.now

    def work(self) -> None:
        self.calls += 1
        self.now += self.step


def test_time_call_adapts_repeats_to_the_budget(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = FakeClock(0.010)
    monkeypatch.setattr(latency, "perf_counter", clock.perf_counter)
    stats = time_call(clock.work, Timing(warmup=2, budget_s=0.1))
    assert stats == {"median": 10.0, "p10": 10.0, "p90": 10.0, "repeats": 10, "warmup": 2}
    assert clock.calls == 12  # warm-up calls are made but not reported
    # a slow call is still timed min_repeats times; a fast one at most max_repeats times
    slow = FakeClock(1.0)
    monkeypatch.setattr(latency, "perf_counter", slow.perf_counter)
    stats = time_call(slow.work, Timing(warmup=3, budget_s=0.1))
    assert (stats["warmup"], stats["repeats"], slow.calls) == (1, 5, 6)  # one warm-up is enough
    fast = FakeClock(1e-5)
    monkeypatch.setattr(latency, "perf_counter", fast.perf_counter)
    assert time_call(fast.work, Timing(budget_s=10.0, max_repeats=50))["repeats"] == 50
    assert time_call(fast.work, Timing(repeats=7))["repeats"] == 7
    with pytest.raises(ValueError):
        Timing(warmup=0)


def test_torch_threads_sets_and_restores() -> None:
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


# ---------------------------------------------------------------- profile_run
@pytest.fixture(scope="module")
def small_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """dcase21net trained for one epoch on 40 synthetic clips (40 mels, 1 s at 16 kHz)."""
    out = tmp_path_factory.mktemp("measure") / "run"
    spec = DataSpec("synthetic", options={"split": "sizes:40,10,20"}, frontend={"n_mels": 40})
    train_run("dcase21net", {}, spec, TrainConfig(epochs=1, batch_size=8, progress=False), out)
    return out


FAST = Timing(repeats=2, warmup=1)
STATS = {"median", "p10", "p90", "repeats", "warmup"}


def test_profile_run_writes_the_agreed_layout(small_run: Path) -> None:
    threads_before = torch.get_num_threads()
    prof = profile_run(small_run, threads=1, timing=FAST)
    assert torch.get_num_threads() == threads_before
    assert json.loads((small_run / PROFILE_JSON).read_text()) == prof

    metrics = json.loads((small_run / "metrics.json").read_text())
    assert set(prof["params"]) >= {"total", "trainable", "per_layer"}
    assert prof["params"]["total"] == prof["params"]["trainable"] == metrics["params"] == 46_118
    assert sum(prof["params"]["per_layer"].values()) == prof["params"]["total"]
    # BN folded into the convs: the 3 BNs' 128 parameters are gone, nothing else changed
    assert prof["params"]["deployed"] == 46_118 - 128
    assert prof["macs"]["model"] == metrics["macs"] == sum(prof["macs"]["per_layer"].values())
    assert prof["macs"]["frontend"] == metrics["macs_frontend"] > 0
    # 46,118 parameters + 2 x 64 BN running statistics (num_batches_tracked is an integer)
    assert prof["size_bytes"] == {"fp32": 4 * 46_246, "fp16": 2 * 46_246, "int8": 46_246}
    assert prof["size_bytes"]["fp32"] == metrics["size_bytes"]
    # conv2: 16 x 101 x 40 floats in and out
    assert prof["peak_activation_bytes"] == 2 * 16 * 101 * 40 * 4
    assert prof["threads"] == 1
    assert prof["input"] == {"samples": 16000, "sample_rate": 16000, "features": [1, 101, 40]}

    for runtime in ("eager", "onnxruntime"):
        assert set(prof["latency_ms"][runtime]) == {"b1", "b32"}
        for stats in prof["latency_ms"][runtime].values():
            assert set(stats) == STATS and stats["repeats"] == 2
            assert 0 < stats["p10"] <= stats["median"] <= stats["p90"]
    assert set(prof["frontend_latency_ms"]["eager"]) == {"b1", "b32"}
    assert prof["onnx"]["opset"] == 18 and prof["onnx"]["max_abs_diff"] < 1e-4


def test_profile_cli_table_json_and_errors(small_run: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["profile", str(small_run), "--threads", "1", "--batch-sizes", "1"]) == 0
    capsys.readouterr()
    earlier = json.loads((small_run / PROFILE_JSON).read_text())  # timed ONNX Runtime, 1 thread
    assert main(["profile", str(small_run), "--threads", "1", "--batch-sizes", "1,2",
                 "--no-onnx"]) == 0
    out = capsys.readouterr().out
    assert "params       46,118" in out and "conv2" in out
    assert "ONNX Runtime: not timed now (onnx=False); the ONNX Runtime rows are those of the " \
           "earlier" in out  # same model, same threads: the earlier columns are kept
    prof = json.loads((small_run / PROFILE_JSON).read_text())
    assert set(prof["latency_ms"]["eager"]) == {"b1", "b2"}
    assert prof["latency_ms"]["onnxruntime"] == earlier["latency_ms"]["onnxruntime"]
    assert prof["onnx"] == earlier["onnx"] and prof["onnx_kept"]["why"] == "onnx=False"

    (small_run / PROFILE_JSON).unlink()  # nothing earlier to keep
    assert main(["profile", str(small_run), "--threads", "1", "--batch-sizes", "1,2",
                 "--no-onnx"]) == 0
    assert "ONNX Runtime: skipped (--no-onnx)" in capsys.readouterr().out
    prof = json.loads((small_run / PROFILE_JSON).read_text())
    assert prof["latency_ms"]["onnxruntime"] is None and prof["onnx"] is None

    assert main(["profile", str(small_run), "--batch-sizes", "1,x"]) == 2
    assert main(["profile", str(small_run), "--batch-sizes", "0"]) == 2
    assert main(["profile", str(small_run.parent / "missing")]) == 2
    assert "--batch-sizes" in capsys.readouterr().err
