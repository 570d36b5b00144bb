"""Blocked MACs (output widths in SIMD blocks) and plans that keep widths on block boundaries."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

import audioprune as ap
from audioprune.data.registry import get_dataset_info
from audioprune.measure.blocking import blocked_macs, simd_lanes
from audioprune.models.registry import create_model
from audioprune.nn.quaternion import QConv2d
from audioprune.pruning.costs import make_cost_fn
from audioprune.pruning.engine import PruningGraph
from audioprune.pruning.plan import Plan, resolve_plan, round_counts

FSDD_FE = get_dataset_info("fsdd").frontend


def _dcase() -> nn.Module:
    torch.manual_seed(0)
    return create_model("dcase21net", 10, frontend=FSDD_FE).eval()


def test_blocked_macs_round_output_widths_up_to_the_lanes() -> None:
    """dcase21net on FSDD (101 x 40 features, 7x7 convs): conv2 16 -> 16 is 16*16*49*4040 MACs.
    Pruned to 8 -> 8 its MACs quarter, but in blocks of 16 outputs only halve (8 x 16)."""
    model = _dcase()
    x = model.example_features()
    full = blocked_macs(model, x, "classify", lanes=16)
    assert full.layers["conv2"] == 16 * 16 * 49 * 4040 == ap.count(model, x, "classify").layers["conv2"].macs
    pruned = copy.deepcopy(model)
    ap.prune(pruned, x, "l1", ap.Plan(ratios={"C1": 0.5, "C2": 0.5}), forward_fn="classify")
    plain = ap.count(pruned, x, "classify")
    blocked = blocked_macs(pruned, x, "classify", lanes=16)
    assert plain.layers["conv2"].macs == 8 * 8 * 49 * 4040
    assert blocked.layers["conv2"] == 8 * 16 * 49 * 4040  # outputs padded to one block
    assert blocked.layers["conv1"] == full.layers["conv1"]  # 8 of 16 outputs: no saving at all
    assert blocked.layers["conv3"] == full.layers["conv3"] // 2  # 32 outputs, half the inputs
    assert blocked.macs / full.macs == pytest.approx(0.5274, abs=1e-4)
    assert plain.macs / ap.count(model, x, "classify").macs == pytest.approx(0.2811, abs=1e-4)
    assert blocked_macs(pruned, x, "classify", lanes=1).macs == plain.macs  # lanes 1: plain MACs
    assert simd_lanes() in (4, 8, 16)


def test_blocked_macs_of_linear_grouped_transposed_and_quaternion_layers() -> None:
    x = torch.randn(1, 8, 10, 10)
    lin = nn.Sequential(nn.Flatten(), nn.Linear(800, 20))
    assert blocked_macs(lin, x, lanes=16).macs == 800 * 32
    depthwise = nn.Conv2d(8, 8, 3, padding=1, groups=8)
    assert blocked_macs(depthwise, x, lanes=16).macs == 100 * 9 * 16  # 8 channels -> a block
    up = nn.ConvTranspose2d(8, 12, 2, stride=2)
    plain = ap.count(up, x).macs
    assert blocked_macs(up, x, lanes=16).macs == plain * 16 // 12
    q = QConv2d(16, 24, 3, padding=1)  # 24 real output channels (6 quaternions) -> 32
    xq = torch.randn(1, 16, 6, 6)
    assert blocked_macs(q, xq, lanes=16).macs == ap.count(q, xq).macs * 32 // 24
    with pytest.raises(ValueError, match="lanes"):
        blocked_macs(lin, x, lanes=0)


def test_round_to_keeps_widths_on_block_boundaries() -> None:
    assert round_counts({"a": 5, "b": 10, "c": 3}, {"a": 16, "b": 16, "c": 4}, 8) == \
        {"a": 0, "b": 8, "c": 0}  # keeps 16 (11 -> 16), 8 (6 -> 8), 4 (1 -> all 4)
    torch.manual_seed(0)
    body = nn.Sequential(nn.Conv2d(1, 64, 3, padding=1), nn.ReLU(), nn.Conv2d(64, 48, 3, padding=1),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(48, 5))
    x = torch.randn(1, 1, 20, 20)
    graph = PruningGraph(body, x)
    plan = resolve_plan(Plan(ratio=0.3, round_to=16), graph)
    kept = {n: plan.n_units[n] - c for n, c in plan.counts.items()}
    assert kept == {"0": 48, "2": 48}  # 64 * 0.7 = 44.8 -> 45 kept -> 48; 48 * 0.7 -> 34 -> 48
    target = int(0.4 * ap.count(body, x).macs)
    budget = resolve_plan(Plan(target_macs=target, round_to=16), graph)
    widths = {n: budget.n_units[n] - c for n, c in budget.counts.items()}
    assert all(w % 16 == 0 for w in widths.values()) and budget.predicted["macs"] <= target
    macs = make_cost_fn(body, graph, "macs")
    for name, c in budget.counts.items():  # no layer can take a whole block back
        if c >= 16:
            assert macs({**budget.counts, name: c - 16}) > target
    with pytest.raises(ValueError, match="round_to"):
        Plan(ratio=0.5, round_to=0)


def test_the_public_names_are_the_working_functions() -> None:
    """ap.blocked_macs and ap.quantize_onnx (loaded lazily from audioprune's top level) compute
    what they promise: blocked MACs of known layers, and an int8 model of a known fp32 graph."""
    assert {"blocked_macs", "quantize_onnx"} <= set(ap.__all__)
    x = torch.randn(1, 8, 10, 10)
    net = nn.Sequential(nn.Conv2d(8, 12, 3, padding=1, bias=False), nn.ReLU(), nn.Conv2d(12, 20, 1))
    counted = ap.blocked_macs(net, x, lanes=16)
    # 3x3 conv: 12 outputs -> one block of 16; 1x1 conv: 20 outputs -> two blocks (32)
    assert counted.layers == {"0": 100 * 8 * 9 * 16, "2": 100 * 12 * 32}
    assert counted.macs == 153_600 and counted.lanes == 16
    assert ap.blocked_macs(net, x, lanes=4).macs == ap.count(net, x).macs == 100 * (8 * 9 * 12 + 12 * 20)

    ort = pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w, b = rng.standard_normal((16, 4)).astype(np.float32), rng.standard_normal(4).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["h"]), helper.make_node("Add", ["h", "b"], ["y"])],
        "affine", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 4])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    fp32 = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    calibration = [rng.standard_normal((8, 16)).astype(np.float32) for _ in range(4)]
    int8 = ap.quantize_onnx(fp32.SerializeToString(), calibration)
    initializers = onnx.load_from_string(int8).graph.initializer
    stored = {t.name: t.data_type for t in initializers}
    assert TensorProto.INT8 in stored.values() and "w" not in stored  # the weights are int8 now
    x_test = rng.standard_normal((5, 16)).astype(np.float32)
    session = ort.InferenceSession(int8, providers=["CPUExecutionProvider"])
    got, want = session.run(None, {"x": x_test})[0], x_test @ w + b
    err = np.abs(got - want).max()
    assert 0 < err < 0.05 * np.abs(want).max()  # quantized (not a copy), and close to fp32
    # 7-bit weights by default: ONNX Runtime's u8s8 kernels saturate on x86 CPUs without VNNI
    # (the check above failed on an AVX2 EPYC with full-range weights: max error 1.20)
    def int8_weight_tops(tensors) -> list[int]:  # the largest |w| of each int8 weight tensor
        return [int(np.abs(numpy_helper.to_array(t)).max()) for t in tensors
                if t.data_type == TensorProto.INT8 and t.dims]

    full = ap.quantize_onnx(fp32.SerializeToString(), calibration, reduce_range=False)
    tops = int8_weight_tops(initializers)
    assert tops and max(tops) <= 64
    assert max(int8_weight_tops(onnx.load_from_string(full).graph.initializer)) == 127
