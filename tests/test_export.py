"""`audioprune export`: a trained dcase21net, a pruned one and a fused quaternion model export to
ONNX and match PyTorch within 1e-4 in ONNX Runtime on real FSDD speech; the waveform-to-logits
graph exports at opset 18 and is refused, clearly, at 17; a parity failure is an error and
leaves no file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch

import audioprune.measure.onnx_export as onnx_export
from audioprune.cli import main
from audioprune.errors import UserError
from audioprune.measure.counting import count_params
from audioprune.measure.latency import ort_session
from audioprune.measure.onnx_export import check_parity, inference_model
from audioprune.models.registry import create_model
from audioprune.pruning.body import prune_body
from audioprune.pruning.plan import Plan
from audioprune.pruning.spec import PruneSpec
from audioprune.runs.data import DataSpec
from audioprune.runs.export import export_run, sample_inputs
from audioprune.runs.run_dir import load_model, save_model
from audioprune.runs.train import train_run
from audioprune.train.fit import TrainConfig


@pytest.fixture(scope="module")
def parent(fsdd_small: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """dcase21net trained for one epoch on real FSDD speech (0.5 s clips: fast)."""
    out = tmp_path_factory.mktemp("export") / "parent"
    spec = DataSpec("fsdd", str(fsdd_small), frontend={"clip_seconds": 0.5})
    train_run("dcase21net", {}, spec, TrainConfig(epochs=1, batch_size=8, lr=3e-3, progress=False),
              out)
    return out


def derived_run(parent: Path, out: Path, model) -> Path:
    """A run directory holding `model`, reading the parent's data (for real parity inputs)."""
    info = json.loads((parent / "model.json").read_text())
    save_model(out, model, info["class_names"], info["task"])
    shutil.copy(parent / "config.json", out / "config.json")
    return out


def conv_out_channels(path: Path) -> list[int]:
    """Output channels of each Conv node, read from its weight, which must be a stored
    initializer (a constant kernel), not computed in the graph."""
    graph = onnx.load(str(path)).graph
    dims = {t.name: list(t.dims) for t in graph.initializer}
    convs = [n for n in graph.node if n.op_type == "Conv"]
    assert all(n.input[1] in dims for n in convs), "a conv kernel is computed at run time"
    return [dims[n.input[1]][0] for n in convs]


def op_types(path: Path) -> set[str]:
    return {n.op_type for n in onnx.load(str(path)).graph.node}


def test_export_cli_dcase21net_on_real_fsdd(parent: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "dcase.onnx"
    assert main(["export", str(parent), "--onnx", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"{out.stat().st_size:,} bytes" in printed and "opset 18" in printed
    assert "clips of fsdd [official] test" in printed  # real speech, not noise

    # the batch axis is dynamic: batch 1 and 5 of real features match the run's model
    model, _ = load_model(parent)
    model.eval()
    waves, where = sample_inputs(parent, model, n=5)
    assert where.startswith("5 clips of fsdd")
    session = ort_session(out, threads=1)
    assert session.get_inputs()[0].name == "features"
    with torch.no_grad():
        feats = model.features(waves)
        want = model.classify(feats).numpy()
    for x, ref in ((feats[:1], want[:1]), (feats, want)):
        got = session.run(None, {"features": x.numpy()})[0]
        assert got.shape == ref.shape and np.abs(got - ref).max() < 1e-4
    assert "BatchNormalization" not in op_types(out)  # folded into the convs
    assert conv_out_channels(out) == [16, 16, 32]


def test_export_pruned_model(parent: Path, tmp_path: Path) -> None:
    model, _ = load_model(parent)
    plan = Plan(ratios={"conv1": 0.5, "conv2": 0.5})
    prune_body(model, PruneSpec("l1", plan))
    run = derived_run(parent, tmp_path / "pruned", model)
    r = export_run(run, tmp_path / "pruned.onnx")
    assert r["max_abs_diff"] <= 1e-4 and r["inputs"].startswith("8 clips of fsdd")
    assert conv_out_channels(tmp_path / "pruned.onnx") == [8, 8, 32]  # the pruned widths
    assert r["size_bytes"] == (tmp_path / "pruned.onnx").stat().st_size


def test_export_fused_quaternion_model(parent: Path, tmp_path: Path) -> None:
    fe = load_model(parent)[0].frontend_cfg
    torch.manual_seed(1)
    model = create_model("qdcase21net", 10, frontend=fe)
    with torch.no_grad():  # non-trivial BN statistics, so that folding them is tested
        for name in ("bn1", "bn2", "bn3"):
            bn = model.get_submodule(name).bn
            bn.running_mean.uniform_(-0.5, 0.5)
            bn.running_var.uniform_(0.5, 2.0)
            bn.weight.uniform_(0.5, 1.5)
    run = derived_run(parent, tmp_path / "qcnn", model)
    r = export_run(run, tmp_path / "qcnn.onnx")
    assert r["max_abs_diff"] <= 1e-4 and r["input_shape"][1] == 4  # the 4-channel delta stack
    # fused: plain real convs whose kernels are stored (16 x 4 x 7 x 7, ...), not assembled
    # from r, i, j, k at run time (conv_out_channels reads them from the initializers)
    assert conv_out_channels(tmp_path / "qcnn.onnx") == [16, 16, 32]
    assert "BatchNormalization" not in op_types(tmp_path / "qcnn.onnx")
    # the deployed form stores what a real dcase21net with 4 input channels stores, BNs folded:
    # convs 4->16, 16->16, 16->32 (7x7, bias), fc1 64->100, fc_out 100->10; the quaternion
    # model learns 13,094 (a quarter of the conv and fc1 weights, plus 128 BN parameters)
    deployed = (4 * 16 * 49 + 16) + (16 * 16 * 49 + 16) + (16 * 32 * 49 + 32) + 6_500 + 1_010
    assert count_params(model) == 13_094
    assert count_params(inference_model(model)) == deployed == 48_342


def test_export_with_frontend_at_18_not_17(parent: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "wave.onnx"
    r = export_run(parent, out, with_frontend=True)
    assert r["input"] == "waveform" and r["input_shape"] == ["batch", 4000]  # 0.5 s at 8 kHz
    assert r["max_abs_diff"] <= 1e-4 and r["inputs"].startswith("8 clips of fsdd")
    assert "STFT" in op_types(out)  # torch.stft became ONNX STFT
    # ONNX has STFT since opset 17, but the exporter cannot convert this graph below 18
    refused = tmp_path / "wave17.onnx"
    assert main(["export", str(parent), "--onnx", str(refused), "--with-frontend",
                 "--opset", "17"]) == 2
    err = capsys.readouterr().err
    assert "--opset 17" in err and "produced opset 18" in err and "STFT" in err
    assert not refused.exists()


def test_parity_failure_is_an_error_and_keeps_no_file(parent: Path, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    real_run = onnx_export._run_ort

    def perturbed(model, x, threads=None):
        return real_run(model, x, threads) + np.float32(3e-4)

    monkeypatch.setattr(onnx_export, "_run_ort", perturbed)
    out = tmp_path / "bad.onnx"
    with pytest.raises(UserError, match=r"parity check failed: max \|ONNX Runtime - PyTorch\| = "
                                        r"0.0003\d* > 0.0001"):
        export_run(parent, out)
    assert not out.exists()


def test_sample_inputs_fall_back_to_seeded_noise(parent: Path, tmp_path: Path,
                                                  fsdd_small: Path) -> None:
    moved = tmp_path / "moved"
    shutil.copytree(parent, moved)
    cfg = json.loads((moved / "config.json").read_text())
    cfg["data"]["data_root"] = str(tmp_path / "gone")
    (moved / "config.json").write_text(json.dumps(cfg))
    model, _ = load_model(moved)
    a, where = sample_inputs(moved, model, n=3)
    b, _ = sample_inputs(moved, model, n=3)
    assert where.startswith("3 clips of seeded noise") and "gone" in where
    assert a.shape == (3, 4000) and torch.equal(a, b)
    # --data-root points the parity inputs at the data's new place
    real, where = sample_inputs(moved, model, n=3, data_root=str(fsdd_small))
    assert where.startswith("3 clips of fsdd") and not torch.equal(real, a)


def identity_onnx() -> bytes:
    """A one-node ONNX model (y = x), to test the parity check without an export."""
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 3])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 3])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "id", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=9)
    return model.SerializeToString()


def test_check_parity_limits() -> None:
    model = identity_onnx()
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    assert check_parity(model, x, x) == 0.0
    assert check_parity(model, x + 9e-5, x) == pytest.approx(9e-5, rel=1e-3)  # within 1e-4
    with pytest.raises(UserError, match="parity check failed"):
        check_parity(model, x + 2e-4, x)
    nan = x.copy()
    nan[1, 2] = np.nan  # a NaN is never "within" the tolerance
    with pytest.raises(UserError, match="= nan"):
        check_parity(model, nan, x)
    with pytest.raises(UserError, match="shape"):
        check_parity(model, x[:, :2], x)
