"""Quaternion layers: Hamilton assembly, hand-written backward, init, batch norm, fuse-to-real."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from audioprune.nn.fuse import fold_batchnorm, fuse_quaternion
from audioprune.nn.quaternion import (
    HamiltonConv,
    HamiltonLinear,
    QBatchNorm2d,
    QConv1d,
    QConv2d,
    QLinear,
    assemble_hamilton,
    is_quaternion,
    quaternion_init,
)


def _cat_assembly(r: Tensor, i: Tensor, j: Tensor, k: Tensor) -> Tensor:
    """Reference assembly written the SpeechBrain way (torch.cat), for cross-checks."""
    rows = [
        torch.cat([r, -i, -j, -k], dim=1),
        torch.cat([i, r, -k, j], dim=1),
        torch.cat([j, k, r, -i], dim=1),
        torch.cat([k, -j, i, r], dim=1),
    ]
    return torch.cat(rows, dim=0)


def _hamilton(w: Tensor, x: Tensor) -> Tensor:
    """w (x) x for quaternions given as (..., 4) = (a, b, c, d), the textbook formula."""
    a1, b1, c1, d1 = w.unbind(-1)
    a2, b2, c2, d2 = x.unbind(-1)
    return torch.stack(
        [
            a1 * a2 - b1 * b2 - c1 * c2 - d1 * d2,
            a1 * b2 + b1 * a2 + c1 * d2 - d1 * c2,
            a1 * c2 - b1 * d2 + c1 * a2 + d1 * b2,
            a1 * d2 + b1 * c2 - c1 * b2 + d1 * a2,
        ],
        dim=-1,
    )


# ------------------------------------------------------------------ construction


@pytest.mark.parametrize(
    ("factory", "arg"),
    [
        (lambda: QConv2d(6, 8, 3), "in_channels"),
        (lambda: QConv2d(8, 10, 3), "out_channels"),
        (lambda: QConv1d(4, 2, 3), "out_channels"),
        (lambda: QLinear(3, 8), "in_features"),
        (lambda: QLinear(8, 0), "out_features"),
        (lambda: QBatchNorm2d(10), "num_features"),
    ],
)
def test_channel_counts_must_be_multiples_of_4(factory, arg: str) -> None:
    with pytest.raises(ValueError, match=arg):
        factory()


def test_unsupported_options_raise_clear_errors() -> None:
    with pytest.raises(ValueError, match="groups"):
        QConv2d(8, 8, 3, groups=2)
    with pytest.raises(ValueError, match="glorot"):
        QConv2d(8, 8, 3, init="xavier")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="mode"):
        QBatchNorm2d(8, mode="whiten")  # type: ignore[arg-type]


def test_parameters_and_attributes() -> None:
    conv = QConv2d(8, 12, (3, 5), stride=2, padding=(1, 2), dilation=(1, 2))
    assert conv.quaternion is True and QConv2d.quaternion is True
    assert (conv.in_channels, conv.out_channels) == (8, 12)
    assert conv.kernel_size == (3, 5) and conv.stride == (2, 2)
    assert conv.padding == (1, 2) and conv.dilation == (1, 2)
    names = {n: tuple(p.shape) for n, p in conv.named_parameters()}
    assert names == {
        "r_weight": (3, 2, 3, 5),
        "i_weight": (3, 2, 3, 5),
        "j_weight": (3, 2, 3, 5),
        "k_weight": (3, 2, 3, 5),
        "bias": (12,),
    }
    assert conv.assembled_weight().shape == (12, 8, 3, 5)
    assert QConv1d(4, 8, 3, bias=False).bias is None
    assert QConv1d(4, 8, 3).r_weight.shape == (2, 1, 3)
    lin = QLinear(16, 8)
    assert lin.r_weight.shape == (2, 4) and lin.assembled_weight().shape == (8, 16)
    # a quarter of the weights of a real layer of the same width
    assert sum(p.numel() for n, p in conv.named_parameters() if n != "bias") == 12 * 8 * 15 // 4


# ------------------------------------------------------------------ Hamilton assembly


def test_assembled_kernel_block_structure() -> None:
    # constant components 1, 2, 3, 4 (r, i, j, k) make every block readable
    shape = (2, 3, 1, 1)
    r, i, j, k = (torch.full(shape, float(v)) for v in (1, 2, 3, 4))
    w = assemble_hamilton(r, i, j, k)
    assert w.shape == (8, 12, 1, 1)
    expected = [  # rows: output component r,i,j,k; columns: input component r,i,j,k
        [1, -2, -3, -4],
        [2, 1, -4, 3],
        [3, 4, 1, -2],
        [4, -3, 2, 1],
    ]
    for row in range(4):
        for col in range(4):
            block = w[row * 2 : (row + 1) * 2, col * 3 : (col + 1) * 3]
            assert torch.all(block == expected[row][col]), (row, col)


def test_assembly_matches_cat_reference_and_real_channel_layout() -> None:
    comps = [torch.randn(3, 2, 3, 3) for _ in range(4)]
    w = assemble_hamilton(*comps)
    torch.testing.assert_close(w, _cat_assembly(*comps), rtol=0, atol=0)
    # quaternion q = 1 owns real output channels {1, 4, 7, 10} (O = 3): rows r, i, j, k
    q, o = 1, 3
    torch.testing.assert_close(w[q, :2], comps[0][q])  # r row, r column block
    torch.testing.assert_close(w[q + o, :2], comps[1][q])  # i row, r column block
    torch.testing.assert_close(w[q + 2 * o, :2], comps[2][q])
    torch.testing.assert_close(w[q + 3 * o, :2], comps[3][q])


def test_one_quaternion_linear_is_the_hamilton_product() -> None:
    layer = QLinear(4, 4, bias=False).double()
    wq = torch.tensor([0.3, -1.2, 0.7, 2.0], dtype=torch.float64)
    with torch.no_grad():
        for p, v in zip(layer.components(), wq):
            p.fill_(v)
    x = torch.randn(5, 4, dtype=torch.float64)  # five quaternions (r, i, j, k)
    torch.testing.assert_close(layer(x), _hamilton(wq.expand(5, 4), x))


def test_qconv_equals_real_conv_with_assembled_weight() -> None:
    conv2 = QConv2d(8, 12, 3, stride=(2, 1), padding=1, dilation=(1, 2))
    x2 = torch.randn(2, 8, 9, 10)
    w2 = conv2.assembled_weight()
    ref2 = F.conv2d(x2, w2, conv2.bias, conv2.stride, conv2.padding, conv2.dilation)
    torch.testing.assert_close(conv2(x2), ref2)
    conv1 = QConv1d(4, 8, 5, stride=2, padding=2, bias=False)
    x1 = torch.randn(3, 4, 17)
    torch.testing.assert_close(conv1(x1), F.conv1d(x1, conv1.assembled_weight(), None, 2, 2))
    lin = QLinear(12, 8)
    x = torch.randn(2, 3, 12)
    torch.testing.assert_close(lin(x), F.linear(x, lin.assembled_weight(), lin.bias))


# ------------------------------------------------------------------ hand-written backward


def _double(module: nn.Module) -> nn.Module:
    torch.manual_seed(0)
    return module.double()


_CONV2D_CASES = [
    dict(kernel_size=3),
    dict(kernel_size=(3, 2), stride=(2, 1), padding=(1, 0)),
    dict(kernel_size=2, dilation=2, padding=1, bias=False),
    dict(kernel_size=3, stride=2, padding=2, dilation=(2, 1)),
]


@pytest.mark.parametrize("kw", _CONV2D_CASES)
def test_gradcheck_conv2d(kw: dict) -> None:
    conv = _double(QConv2d(8, 4, **kw))
    x = torch.randn(2, 8, 6, 5, dtype=torch.float64, requires_grad=True)

    def fn(x: Tensor, *params: Tensor | None) -> Tensor:
        return HamiltonConv.apply(x, *params, conv.stride, conv.padding, conv.dilation)

    # fast mode: random projections of the full Jacobian (the slow mode takes minutes here)
    assert torch.autograd.gradcheck(fn, (x, *conv.components(), conv.bias), fast_mode=True)


@pytest.mark.parametrize("kw", [dict(), dict(stride=2, padding=1, dilation=2), dict(bias=False)])
def test_gradcheck_conv1d(kw: dict) -> None:
    conv = _double(QConv1d(4, 8, 3, **kw))
    x = torch.randn(2, 4, 11, dtype=torch.float64, requires_grad=True)

    def fn(x: Tensor, *params: Tensor | None) -> Tensor:
        return HamiltonConv.apply(x, *params, conv.stride, conv.padding, conv.dilation)

    assert torch.autograd.gradcheck(fn, (x, *conv.components(), conv.bias), fast_mode=True)


@pytest.mark.parametrize("bias", [True, False])
def test_gradcheck_linear(bias: bool) -> None:
    lin = _double(QLinear(8, 12, bias=bias))
    x = torch.randn(3, 2, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(HamiltonLinear.apply, (x, *lin.components(), lin.bias))
    assert torch.autograd.gradgradcheck(
        HamiltonLinear.apply, (x, *lin.components(), lin.bias), fast_mode=True
    )


def test_gradcheck_conv2d_full_jacobian_small() -> None:
    """One exhaustive (slow-mode) check, on a case small enough to stay quick."""
    conv = _double(QConv2d(4, 4, 2, stride=2, padding=1))
    x = torch.randn(1, 4, 3, 3, dtype=torch.float64, requires_grad=True)

    def fn(x: Tensor, *params: Tensor | None) -> Tensor:
        return HamiltonConv.apply(x, *params, conv.stride, conv.padding, conv.dilation)

    assert torch.autograd.gradcheck(fn, (x, *conv.components(), conv.bias))


@pytest.mark.parametrize("layer_cls", ["conv2d", "conv1d"])
def test_backward_equals_autograd_through_cat_assembly(layer_cls: str) -> None:
    if layer_cls == "conv2d":
        layer = _double(QConv2d(8, 12, 3, stride=2, padding=1, dilation=(1, 2)))
        x = torch.randn(2, 8, 9, 8, dtype=torch.float64, requires_grad=True)
        conv = F.conv2d
    else:
        layer = _double(QConv1d(8, 4, 5, stride=1, padding=2))
        x = torch.randn(2, 8, 13, dtype=torch.float64, requires_grad=True)
        conv = F.conv1d
    params = [x, *layer.components(), layer.bias]
    grad_out = torch.randn_like(layer(x))
    ours = torch.autograd.grad(layer(x), params, grad_out)
    w = _cat_assembly(*layer.components())
    ref_out = conv(x, w, layer.bias, layer.stride, layer.padding, layer.dilation)
    ref = torch.autograd.grad(ref_out, params, grad_out)
    for a, b in zip(ours, ref):
        torch.testing.assert_close(a, b)


def test_conv_double_backward() -> None:
    conv = _double(QConv2d(4, 4, 2, padding=1))
    x = torch.randn(1, 4, 3, 3, dtype=torch.float64, requires_grad=True)

    def fn(x: Tensor, *params: Tensor | None) -> Tensor:
        return HamiltonConv.apply(x, *params, conv.stride, conv.padding, conv.dilation)

    assert torch.autograd.gradgradcheck(fn, (x, *conv.components(), conv.bias), fast_mode=True)


def test_autocast_bfloat16_gives_float32_grads() -> None:
    conv, bn, lin = QConv2d(4, 8, 3), QBatchNorm2d(8), QLinear(8, 4)
    x = torch.randn(2, 4, 5, 5, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        h = bn(conv(x))
        assert h.dtype == torch.bfloat16
        y = lin(h.mean(dim=(2, 3)))
    assert y.dtype == torch.bfloat16
    assert bn.running_mean.dtype == torch.float32
    y.float().sum().backward()
    for p in [x, *conv.parameters(), *bn.parameters(), *lin.parameters()]:
        assert p.grad is not None and p.grad.dtype == torch.float32
        assert torch.isfinite(p.grad).all()


# ------------------------------------------------------------------ initialisation


def test_init_variance_matches_target() -> None:
    gen = torch.Generator().manual_seed(1)
    out_q, in_q, kernel = 256, 256, (3, 3)
    sigma = 1.0 / math.sqrt(2 * (in_q * 9 + out_q * 9))  # glorot, fans in quaternions x rf
    r, i, j, k = quaternion_init(out_q, in_q, kernel, "glorot", generator=gen, dtype=torch.float64)
    assert r.shape == (out_q, in_q, 3, 3)
    mod2 = r**2 + i**2 + j**2 + k**2
    assert mod2.mean().item() == pytest.approx(4 * sigma**2, rel=0.02)
    variances = [c.var().item() for c in (r, i, j, k)]
    assert sum(variances) / 4 == pytest.approx(sigma**2, rel=0.02)
    # polar form: cos^2 averages 1/2; the imaginary half spreads over a uniform 3-d axis
    assert variances[0] == pytest.approx(2 * sigma**2, rel=0.03)
    for v in variances[1:]:
        assert v == pytest.approx(2 * sigma**2 / 3, rel=0.03)
    for c in (r, i, j, k):
        assert abs(c.mean().item()) < 0.01 * sigma


def test_init_he_and_linear_sigma() -> None:
    gen = torch.Generator().manual_seed(2)
    r, i, j, k = quaternion_init(512, 128, (), "he", generator=gen, dtype=torch.float64)
    mod2 = (r**2 + i**2 + j**2 + k**2).mean().item()
    assert mod2 == pytest.approx(4 / (2 * 128), rel=0.02)


def test_init_is_deterministic_under_a_seed() -> None:
    torch.manual_seed(123)
    a = QConv2d(8, 8, 3)
    torch.manual_seed(123)
    b = QConv2d(8, 8, 3)
    torch.manual_seed(124)
    c = QConv2d(8, 8, 3)
    for pa, pb, pc in zip(a.components(), b.components(), c.components()):
        assert torch.equal(pa, pb)
        assert not torch.equal(pa, pc)
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    first = quaternion_init(2, 3, (3,), generator=g1)
    second = quaternion_init(2, 3, (3,), generator=g2)
    for u, v in zip(first, second):
        assert torch.equal(u, v)


# ------------------------------------------------------------------ batch norm


def _quaternion_stats(y: Tensor) -> tuple[Tensor, Tensor]:
    """Per-real-channel mean and per-quaternion variance (mean over its 4 components)."""
    dims = (0, 2, 3)
    mean = y.mean(dim=dims)
    var_q = (y - mean.view(1, -1, 1, 1)).square().mean(dim=dims).view(4, -1).mean(dim=0)
    return mean, var_q


def test_qbatchnorm_train_normalises_each_quaternion() -> None:
    bn = QBatchNorm2d(12).double()
    scale = torch.linspace(0.5, 4.0, 12, dtype=torch.float64).view(1, 12, 1, 1)
    x = torch.randn(8, 12, 5, 6, dtype=torch.float64) * scale + 3.0
    y = bn(x)
    mean, var_q = _quaternion_stats(y)
    torch.testing.assert_close(mean, torch.zeros(12, dtype=torch.float64), atol=1e-10, rtol=0)
    torch.testing.assert_close(var_q, torch.ones(3, dtype=torch.float64), atol=1e-4, rtol=0)
    # components keep their relative scale (no per-channel whitening)
    per_channel_std = y.std(dim=(0, 2, 3))
    assert per_channel_std[0] < per_channel_std[3 * 3]  # channel 0 vs 9 of quaternion 0


def test_qbatchnorm_gamma_shared_by_a_quaternion_and_beta_per_channel() -> None:
    bn = QBatchNorm2d(8).double()
    assert bn.gamma.shape == (2,) and bn.beta.shape == (8,)
    with torch.no_grad():
        bn.gamma.copy_(torch.tensor([2.0, 0.5]))
        bn.beta.copy_(torch.arange(8.0))
    y = bn(torch.randn(4, 8, 3, 3, dtype=torch.float64))
    mean, var_q = _quaternion_stats(y)
    torch.testing.assert_close(mean, torch.arange(8.0, dtype=torch.float64), atol=1e-10, rtol=0)
    expected_var = torch.tensor([4.0, 0.25], dtype=torch.float64)  # gamma^2
    torch.testing.assert_close(var_q, expected_var, atol=1e-3, rtol=0)


def test_qbatchnorm_running_stats_and_eval() -> None:
    bn = QBatchNorm2d(8, momentum=0.1).double()
    x = torch.randn(4, 8, 3, 5, dtype=torch.float64) * 2 + 1
    bn(x)
    n = 4 * 3 * 5
    mean, var_q = _quaternion_stats(x)
    torch.testing.assert_close(bn.running_mean, 0.1 * mean)
    torch.testing.assert_close(bn.running_var, 0.9 + 0.1 * var_q * n / (n - 1))
    assert int(bn.num_batches_tracked) == 1
    bn.eval()
    z = torch.randn(2, 8, 3, 3, dtype=torch.float64)
    expected = (z - bn.running_mean.view(1, -1, 1, 1)) / torch.sqrt(
        bn.running_var.repeat(4).view(1, -1, 1, 1) + bn.eps
    )
    torch.testing.assert_close(bn(z), expected)
    before = bn.running_mean.clone()
    bn(z)
    assert torch.equal(bn.running_mean, before)  # eval leaves the statistics alone


def test_qbatchnorm_real_mode_equals_batchnorm2d() -> None:
    qbn, ref = QBatchNorm2d(8, mode="real"), nn.BatchNorm2d(8)
    for _ in range(3):
        x = torch.randn(4, 8, 5, 5) * 3 + 1
        torch.testing.assert_close(qbn(x), ref(x))
    qbn.eval(), ref.eval()
    x = torch.randn(2, 8, 5, 5)
    torch.testing.assert_close(qbn(x), ref(x))


# ------------------------------------------------------------------ fuse to real


def _stack(bn_mode: str) -> nn.Sequential:
    torch.manual_seed(3)
    return nn.Sequential(
        QConv2d(4, 8, 3, padding=1),
        QBatchNorm2d(8, mode=bn_mode),  # type: ignore[arg-type]
        nn.ReLU(),
        QConv2d(8, 8, 3, stride=2),
        nn.Flatten(),
        QLinear(8 * 3 * 3, 12),
    )


def _trained_stats(model: nn.Module) -> nn.Module:
    """Give the batch norm non-trivial running stats and affine values, then switch to eval."""
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(6, 4, 8, 8) * 2 + 0.5)
        for name, p in model.named_parameters():
            if name.startswith("1."):
                p.add_(torch.randn_like(p) * 0.3)
    return model.eval()


@pytest.mark.parametrize("bn_mode", ["quaternion", "real"])
def test_fuse_quaternion_is_exact_and_real(bn_mode: str) -> None:
    model = _trained_stats(_stack(bn_mode))
    fused = fuse_quaternion(model)
    x = torch.randn(5, 4, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(fused(x), model(x), atol=1e-5, rtol=1e-5)
    assert not any(is_quaternion(m) for m in fused.modules())
    expected = [nn.Conv2d, nn.BatchNorm2d, nn.ReLU, nn.Conv2d, nn.Flatten, nn.Linear]
    assert [type(m) for m in fused] == expected
    assert not fused.training
    assert isinstance(model[0], QConv2d)  # the original is untouched


def test_fuse_conv1d_and_nested_modules() -> None:
    torch.manual_seed(4)
    model = nn.Module()
    model.body = nn.Sequential(QConv1d(4, 8, 3, padding=1, dilation=1), nn.GELU())
    model.head = QLinear(8, 4, bias=False)
    model.forward = lambda x: model.head(model.body(x).mean(-1))  # type: ignore[method-assign]
    fused = fuse_quaternion(model)
    assert isinstance(fused.body[0], nn.Conv1d) and isinstance(fused.head, nn.Linear)
    assert fused.head.bias is None
    x = torch.randn(3, 4, 10)
    out = fused.head(fused.body(x).mean(-1))
    torch.testing.assert_close(out, model(x), atol=1e-5, rtol=1e-5)
    assert isinstance(fuse_quaternion(QConv2d(4, 4, 1)), nn.Conv2d)


def test_fold_batchnorm_into_conv() -> None:
    model = _trained_stats(_stack("quaternion"))
    folded = fold_batchnorm(model, [("0", "1")])
    assert isinstance(folded[0], nn.Conv2d) and isinstance(folded[1], nn.Identity)
    x = torch.randn(5, 4, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(folded(x), model(x), atol=1e-5, rtol=1e-5)
    with pytest.raises(TypeError, match="cannot fold"):
        fold_batchnorm(model, [("2", "1")])


# ------------------------------------------------------------------ Torch-Pruning tracing


def test_torch_pruning_traces_quaternion_convs_as_single_ops() -> None:
    tp = pytest.importorskip("torch_pruning")
    model = nn.Sequential(
        QConv2d(4, 8, 3, padding=1), nn.ReLU(), QConv2d(8, 8, 3), nn.Flatten(), nn.Linear(288, 5)
    )
    x = torch.randn(1, 4, 8, 8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "unwrapped parameters": no pruner is registered here
        tp.DependencyGraph().build_dependency(model, example_inputs=x)

    class TracingOnly(tp.pruner.function.BasePruningFunc):
        """Declares channel counts so the tracer maps QConv2d; prunes nothing (not a pruner)."""

        def prune_out_channels(self, layer: nn.Module, idxs: list[int]) -> nn.Module:
            return layer

        def prune_in_channels(self, layer: nn.Module, idxs: list[int]) -> nn.Module:
            return layer

        def get_out_channels(self, layer: nn.Module) -> int:
            return layer.out_channels

        def get_in_channels(self, layer: nn.Module) -> int:
            return layer.in_channels

    stub = TracingOnly()
    dg = tp.DependencyGraph().build_dependency(
        model, example_inputs=x, customized_pruners={QConv2d: stub}
    )
    # one node per module/op: no torch.cat or neg of the weight assembly leaks into the graph
    node_names = [str(n) for n in dg.module2node.values()]
    assert not any("Concat" in s or "Neg" in s for s in node_names), node_names
    group = dg.get_pruning_group(model[0], stub.prune_out_channels, idxs=[0, 4])
    targets = {(dep.target.module, dep.handler.__name__) for dep, _ in group}
    assert (model[2], "prune_in_channels") in targets
