"""ap.export_onnx for any nn.Module (batch norms folded where the traced graph allows, parity
checked in ONNX Runtime) and ap.quantize_onnx's exclusions: a log-mel front end kept in fp32 by
default, ONNX Runtime's node / op-type exclusions passed through and checked."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxscript")

import audioprune as ap  # noqa: E402
from audioprune.errors import ArgumentError, UserError  # noqa: E402


class Depthwise(nn.Module):
    """A small MobileNet-like net written as a user would: stem conv-BN, a depthwise-separable
    block with a residual add, a BN that reads an add (cannot be folded), a classifier."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 16, 3, 2, 1, bias=False)
        self.bn0 = nn.BatchNorm2d(16)
        self.dw = nn.Conv2d(16, 16, 3, 1, 1, groups=16, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.pw = nn.Conv2d(16, 16, 1, bias=False)
        self.bn_after_add = nn.BatchNorm2d(16)
        self.fc = nn.Linear(16, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn0(self.stem(x)))
        y = torch.relu(self.bn1(self.dw(x)))
        y = torch.relu(self.bn_after_add(self.pw(y) + x))
        return self.fc(y.mean((2, 3)))


def _randomised(model: nn.Module) -> nn.Module:
    """Batch norms with statistics and affine terms far from identity (folding shows)."""
    torch.manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.3, 3)
            m.weight.data.uniform_(0.5, 2)
            m.bias.data.uniform_(-0.5, 0.5)
    return model


def _ops(data: bytes) -> list[str]:
    return [n.op_type for n in onnx.load_from_string(data).graph.node]


@pytest.mark.slow  # ~12 s: three exports, each parity-checked in ONNX Runtime
def test_any_module_exports_with_batch_norms_folded_and_parity_checked(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = _randomised(Depthwise()).train()
    x = torch.randn(1, 1, 24, 16)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    exported = ap.export_onnx(model, x, path=tmp_path / "dw.onnx")
    # folded exactly where the conv's output feeds the BN alone; the BN after the add is kept
    assert exported.folded == [("dw", "bn1"), ("stem", "bn0")]
    assert _ops(exported.data).count("BatchNormalization") == 1
    assert exported.checked_batches == [1, 3] and exported.max_abs_diff < 1e-4
    # the model is untouched: same weights, back in training mode
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    # the file computes the model at another batch size too (a dynamic batch axis)
    from audioprune.measure.latency import ort_session

    xb = torch.randn(4, 1, 24, 16)
    session = ort_session((tmp_path / "dw.onnx").read_bytes(), 1)
    got = session.run(None, {exported.input_names[0]: xb.numpy()})[0]
    with torch.no_grad():
        ref = model.eval()(xb).numpy()
    np.testing.assert_allclose(got, ref, atol=1e-4, rtol=1e-4)
    # unfolded when asked: every BN stays, the function is the same
    plain = ap.export_onnx(model, x, fold_bn=False)
    assert plain.folded == [] and _ops(plain.data).count("BatchNormalization") == 3


def test_export_of_a_quaternion_model_and_of_a_tuple_input() -> None:
    class TwoInputs(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = ap.nn.QConv2d(4, 8, 3, padding=1)
            self.bn = nn.BatchNorm2d(8)

        def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
            return torch.relu(self.bn(self.conv(a))).mean((2, 3)) * b

    model = _randomised(TwoInputs())
    exported = ap.export_onnx(model, (torch.randn(2, 4, 6, 6), torch.randn(2, 8)))
    assert exported.input_names == ["input_0", "input_1"] and exported.folded == [("conv", "bn")]
    ops = _ops(exported.data)
    assert "Conv" in ops and "BatchNormalization" not in ops  # fused to one real conv + BN folded


def test_export_arguments_are_named() -> None:
    model = Depthwise()
    with pytest.raises(TypeError, match="model"):
        ap.export_onnx("not a model", torch.randn(1, 1, 8, 8))  # type: ignore[arg-type]
    with pytest.raises(ArgumentError, match="opset"):
        ap.export_onnx(model, torch.randn(1, 1, 8, 8), opset=3)
    with pytest.raises(ArgumentError, match="tol"):
        ap.export_onnx(model, torch.randn(1, 1, 8, 8), tol=0)
    with pytest.raises(TypeError, match="example_inputs"):
        ap.export_onnx(model, [1, 2])


# -- quantize_onnx: the front end ------------------------------------------------------------

def _tone_batch(rng: np.random.Generator, n: int, samples: int = 4000) -> np.ndarray:
    """Tones of 4 pitches at levels spread over 60 dB: a power spectrum of many decades."""
    t = np.arange(samples) / 8000
    k = rng.integers(0, 4, n)
    level = 10 ** rng.uniform(-3, 0, (n, 1))
    return (level * np.sin(2 * np.pi * 200 * (k[:, None] + 1) * t)
            + 1e-3 * rng.standard_normal((n, samples))).astype(np.float32)


@pytest.fixture(scope="module")
def waveform_model() -> tuple[object, list[np.ndarray], np.ndarray]:
    """dcase21net (x0.5) with its log-mel front end in the graph: a waveform input."""
    from audioprune.audio.frontend import FrontEndConfig
    from audioprune.models.registry import create_model

    fe = FrontEndConfig(sample_rate=8000, n_fft=256, hop_length=80, n_mels=40, fmin=0.0,
                        fmax=None, clip_seconds=0.5, mean=-50.0, std=20.0)
    torch.manual_seed(0)
    model = create_model("dcase21net", 4, frontend=fe, width=0.5, dropout=0.0).eval()
    rng = np.random.default_rng(0)
    exported = ap.export_onnx(model, torch.from_numpy(_tone_batch(rng, 2)))
    return exported, [_tone_batch(rng, 8) for _ in range(4)], _tone_batch(rng, 64)


def _inputs_by_op(data: bytes) -> dict[str, list[str]]:
    """op type -> the op types producing each of its data inputs (of the first such node)."""
    graph = onnx.load_from_string(data).graph
    producer = {o: n.op_type for n in graph.node for o in n.output}
    out: dict[str, list[str]] = {}
    for n in graph.node:
        out.setdefault(n.op_type, [producer.get(i, "graph input or weight") for i in n.input])
    return out


@pytest.mark.slow  # ~8 s with the module's export of the waveform model
def test_front_end_stays_fp32_by_default_and_quantizing_it_costs_accuracy(waveform_model) -> None:
    from audioprune.measure.latency import ort_session
    from audioprune.measure.quantize import frontend_nodes

    exported, calibration, test = waveform_model
    front = frontend_nodes(onnx.load_from_string(exported.data).graph)
    assert front and any("STFT" in n for n in front) and any("matmul" in n for n in front)
    kept = ap.quantize_onnx(exported, calibration)
    everything = ap.quantize_onnx(exported, calibration, keep_frontend_fp32=False)
    k, e = _inputs_by_op(kept), _inputs_by_op(everything)
    # kept: the STFT and the mel projection (a MatMul) read fp32 tensors, no DequantizeLinear
    assert "DequantizeLinear" not in k["STFT"] and "DequantizeLinear" not in k["MatMul"]
    assert "DequantizeLinear" in k["Conv"]  # ... and the body is int8 (QDQ around its convs)
    # quantized too: the front end's inputs go through QDQ pairs
    assert "DequantizeLinear" in e["MatMul"] and "DequantizeLinear" in e["STFT"]
    ref = ort_session(exported.data, 1).run(None, {"input": test})[0]
    err = {name: float(np.abs(ort_session(q, 1).run(None, {"input": test})[0] - ref).max())
           for name, q in (("kept", kept), ("everything", everything))}
    # uint8 activations keep ~2 of the power spectrum's decades before the log: the logits
    # move several times further from fp32's with the front end quantized (seen: 0.005 / 0.031)
    assert err["everything"] > 3 * err["kept"], err


def test_node_and_op_type_exclusions_reach_onnx_runtime(waveform_model) -> None:
    exported, calibration, _ = waveform_model
    no_gemm = ap.quantize_onnx(exported, calibration, op_types_to_exclude=["Gemm"])
    assert "DequantizeLinear" not in _inputs_by_op(no_gemm)["Gemm"]
    assert "DequantizeLinear" in _inputs_by_op(no_gemm)["Conv"]
    graph = onnx.load_from_string(exported.data).graph
    first_conv = next(n.name for n in graph.node if n.op_type == "Conv")
    one = ap.quantize_onnx(exported, calibration, nodes_to_exclude=[first_conv])
    qgraph = onnx.load_from_string(one).graph
    producer = {o: n.op_type for n in qgraph.node for o in n.output}
    convs = [n for n in qgraph.node if n.op_type == "Conv"]
    fp32_convs = [n.name for n in convs if producer.get(n.input[1]) != "DequantizeLinear"]
    assert fp32_convs == [first_conv] and len(convs) == 3  # that one conv alone kept its weights
    with pytest.raises(ArgumentError, match="nodes_to_exclude.*no_such_node"):
        ap.quantize_onnx(exported, calibration, nodes_to_exclude=["no_such_node"])
    with pytest.raises(TypeError, match="op_types_to_exclude"):
        ap.quantize_onnx(exported, calibration, op_types_to_exclude="Gemm")


def test_a_front_end_without_a_convolution_after_it_is_refused_not_quantized_blind() -> None:
    from audioprune.audio.frontend import FrontEndConfig, LogMel

    class MelOnly(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.mel = LogMel(FrontEndConfig(sample_rate=8000, n_fft=256, hop_length=80,
                                             n_mels=20, fmin=0.0, fmax=None, clip_seconds=0.25))
            self.fc = nn.Linear(20, 3)

        def forward(self, wave: torch.Tensor) -> torch.Tensor:
            return self.fc(self.mel(wave).mean(dim=(1, 2)))

    exported = ap.export_onnx(MelOnly().eval(), 0.1 * torch.randn(2, 2000))
    rng = np.random.default_rng(1)
    with pytest.raises(UserError, match="no convolution follows"):
        ap.quantize_onnx(exported, [0.1 * rng.standard_normal((4, 2000)).astype(np.float32)])
    int8 = ap.quantize_onnx(exported, None, method="dynamic", keep_frontend_fp32=False)
    assert "MatMulInteger" in _ops(int8) or "DynamicQuantizeLinear" in _ops(int8)
