"""Quaternion layers: convolution, linear, batch norm and the polar-form initialisation.

A quaternion layer stores four weight tensors r, i, j, k of shape (out/4, in/4, *kernel) and
applies ONE real convolution (or matmul) with the kernel assembled by the Hamilton product::

    rows = output component, columns = input component
    [ r, -i, -j, -k ]
    [ i,  r, -k,  j ]
    [ j,  k,  r, -i ]
    [ k, -j,  i,  r ]

so it has a quarter of the parameters and the same MACs as a real layer of the same width.
Channel counts are REAL counts everywhere; component c of quaternion q is real channel
q + c * (channels / 4), i.e. quaternion q owns channels {q, q+O, q+2O, q+3O}.

The assembly and its transpose live inside one ``torch.autograd.Function`` so that an
autograd-graph tracer (Torch-Pruning's DependencyGraph) sees a single op per layer instead of
the ``torch.cat`` of parameters it cannot map (Torch-Pruning issue #188).

Under autocast (mixed-precision training) each Function does what autocast does to a real conv
or linear: the kernel, assembled in the components' precision, and the input are cast to the
autocast dtype and the convolution runs in it; the backward computes in that dtype and folds
the kernel gradient onto r, i, j, k in the components' precision (fp32). The layer input is
cast by the module, outside the Function, so the low-precision copy is what is saved.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.modules.utils import _pair, _single

__all__ = [
    "HamiltonConv",
    "HamiltonLinear",
    "QBatchNorm2d",
    "QConv1d",
    "QConv2d",
    "QLinear",
    "assemble_hamilton",
    "fold_hamilton",
    "is_quaternion",
    "quaternion_init",
]

InitCriterion = Literal["glorot", "he"]
IntOrTuple = int | Sequence[int]

# Block (row, col) of the real kernel is SIGN[row][col] * component[INDEX[row][col]],
# with components ordered (r, i, j, k). Assembly and its transpose (the gradient fold) both
# read this one table, so they cannot disagree.
_INDEX_TABLE = ((0, 1, 2, 3), (1, 0, 3, 2), (2, 3, 0, 1), (3, 2, 1, 0))
_SIGN_TABLE = ((1, -1, -1, -1), (1, 1, -1, 1), (1, 1, 1, -1), (1, -1, 1, 1))
# The same table as tensors. device="cpu" explicitly: this module may first be imported inside a
# `with torch.device("meta")` block (e.g. by the model registry).
_INDEX = torch.tensor(_INDEX_TABLE, device="cpu")
_SIGN = torch.tensor(_SIGN_TABLE, dtype=torch.int8, device="cpu")


def is_quaternion(module: nn.Module) -> bool:
    """True for modules whose channels follow the quaternion layout: a layer type declared in
    the layer-support table (nn/layer_support.py) with 4-channel units."""
    from audioprune.nn.layer_support import component_unit

    return component_unit(module) == 4


def _check_multiple_of_4(name: str, value: int) -> int:
    """Quaternion layers work on whole quaternions: a real count must split into 4 components."""
    if value <= 0 or value % 4 != 0:
        raise ValueError(
            f"{name} must be a positive multiple of 4 (real channels, 4 per quaternion), "
            f"got {value}"
        )
    return value


def _sign_like(ref: Tensor, extra_dims: int) -> Tensor:
    """The sign table as ``ref``'s dtype/device, shaped to broadcast over (4, 4, O, I, *kernel)."""
    sign = _SIGN.to(device=ref.device, dtype=ref.dtype)
    return sign.view(4, 4, *([1] * extra_dims))


def assemble_hamilton(r: Tensor, i: Tensor, j: Tensor, k: Tensor) -> Tensor:
    """Real kernel (4*O, 4*I, *kernel) from the components (O, I, *kernel) by the Hamilton rule.

    Without autograd (inside the layers' autograd Functions, fusing, inference) each block row is
    stacked straight into the output (one pass over the real kernel, plus -i, -j, -k); when a
    component needs a gradient, a differentiable gather builds the same kernel.
    """
    out_q, in_q, *kernel = r.shape
    comps = (r, i, j, k)
    if torch.is_grad_enabled() and any(c.requires_grad for c in comps):
        stacked = torch.stack(comps)  # (4, O, I, *kernel)
        blocks = stacked[_INDEX.to(r.device)] * _sign_like(stacked, r.dim())  # (4, 4, O, I, *k)
        # (row, col, O, I, *k) -> (row, O, col, I, *k) -> (4*O, 4*I, *k)
        return blocks.transpose(1, 2).reshape(4 * out_q, 4 * in_q, *kernel)
    signed = {(1, c): comp for c, comp in enumerate(comps)}
    signed.update({(-1, c): torch.neg(comps[c]) for c in (1, 2, 3)})  # r is never negated
    out = r.new_empty(4, out_q, 4, in_q, *kernel)  # (row, O, col, I, *k): out[row] is contiguous
    for row in range(4):
        blocks = [signed[(_SIGN_TABLE[row][col], _INDEX_TABLE[row][col])] for col in range(4)]
        torch.stack(blocks, dim=1, out=out[row])
    return out.view(4 * out_q, 4 * in_q, *kernel)


def fold_hamilton(grad_weight: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Transpose of :func:`assemble_hamilton`: real-kernel grad -> (grad_r, grad_i, grad_j, grad_k).

    Each component receives the signed sum of the four blocks it appears in (read in place as
    strided views of the real-kernel gradient; differentiable, for double backward).
    """
    out_real, in_real, *kernel = grad_weight.shape
    blocks = grad_weight.reshape(4, out_real // 4, 4, in_real // 4, *kernel)  # (row, O, col, I)
    grads: list[Tensor | None] = [None, None, None, None]
    for row in range(4):
        for col in range(4):
            c, sign = _INDEX_TABLE[row][col], _SIGN_TABLE[row][col]
            block = blocks[row, :, col]
            acc = grads[c]
            if acc is None:
                grads[c] = block.clone(memory_format=torch.contiguous_format) if sign > 0 \
                    else torch.neg(block).contiguous()
            else:
                acc.add_(block, alpha=sign)
    return grads[0], grads[1], grads[2], grads[3]  # type: ignore[return-value]


# --------------------------------------------------------------------------------------------
# autograd Functions


_CONV = {3: F.conv1d, 4: F.conv2d}
_AUTOCAST_DEVICES = ("cpu", "cuda", "mps", "xpu")


def _autocast_dtype(*tensors: Tensor | None) -> torch.dtype | None:
    """The dtype autocast runs a conv / matmul of `tensors` in here: its lower precision when
    autocast is on for their device and none is float64 (autocast leaves those alone), else
    None."""
    ref = tensors[0]
    assert ref is not None
    device = ref.device.type
    if device not in _AUTOCAST_DEVICES or not torch.is_autocast_enabled(device):
        return None
    if any(t is not None and t.dtype == torch.float64 for t in tensors):
        return None
    return torch.get_autocast_dtype(device)


def _autocast_input(x: Tensor) -> Tensor:
    """The layer input as autocast would hand it to a conv: cast to the autocast dtype, by a
    differentiable cast OUTSIDE the autograd Function, so that the Function saves the
    low-precision copy for its backward (what a native conv saves under autocast: half the
    activation memory) and double backward still reaches the original input."""
    dtype = _autocast_dtype(x)
    return x if dtype is None or x.dtype == dtype or not x.is_floating_point() else x.to(dtype)


def _cast_grads(
    grads: tuple[Tensor | None, ...], refs: tuple[Tensor | None, ...]
) -> tuple[Tensor | None, ...]:
    """Autograd wants each gradient in its input's dtype; under autocast they can differ."""
    return tuple(
        None if g is None or ref is None else g.to(ref.dtype) for g, ref in zip(grads, refs)
    )


def _backward_weight(saved: Tensor, r: Tensor, i: Tensor, j: Tensor, k: Tensor) -> Tensor:
    """The kernel the backward uses: the one saved by the forward, or -- when the backward is
    itself differentiated (create_graph) -- a re-assembly that autograd can follow to r, i, j, k."""
    return assemble_hamilton(r, i, j, k) if torch.is_grad_enabled() else saved


class HamiltonConv(torch.autograd.Function):
    """Quaternion convolution (1-d or 2-d, from the weight rank) as a single autograd op.

    ``HamiltonConv.apply(x, r, i, j, k, bias, stride, padding, dilation)``; bias may be None.
    The kernel is assembled once per forward and saved for the backward (the memory a real
    conv's saved weight takes), which takes the gradient of the real kernel and folds it back
    onto r, i, j, k. Under double backward the kernel is re-assembled differentiably.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        x: Tensor,
        r: Tensor,
        i: Tensor,
        j: Tensor,
        k: Tensor,
        bias: Tensor | None,
        stride: tuple[int, ...],
        padding: tuple[int, ...],
        dilation: tuple[int, ...],
    ) -> Tensor:
        if r.dim() not in _CONV:
            raise ValueError(f"HamiltonConv supports 1-d and 2-d kernels, got rank {r.dim()}")
        weight = assemble_hamilton(r, i, j, k)  # no autograd here: the one-pass assembly
        ctx.conv_args = (stride, padding, dilation)
        dtype = _autocast_dtype(x, weight, bias)
        if dtype is None:
            ctx.save_for_backward(x, r, i, j, k, bias, weight)
            return _CONV[r.dim()](x, weight, bias, stride, padding, dilation)
        # under autocast: the conv in `dtype`, as autocast runs a real conv; the kernel is
        # assembled in the components' precision (exact) and cast once
        weight = weight.to(dtype)
        ctx.save_for_backward(x, r, i, j, k, bias, weight)
        with torch.autocast(x.device.type, enabled=False):
            return _CONV[r.dim()](x.to(dtype), weight, None if bias is None else bias.to(dtype),
                                  stride, padding, dilation)

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        x, r, i, j, k, bias, weight = ctx.saved_tensors
        stride, padding, dilation = ctx.conv_args
        dtype = grad_out.dtype
        weight = _backward_weight(weight, r, i, j, k).to(dtype)
        need_x, *need_comps, need_bias = ctx.needs_input_grad[:6]
        need_w = any(need_comps)
        need_b = bias is not None and need_bias
        # ONE native convolution backward for the input, kernel and bias gradients, as a real
        # conv's autograd node runs (torch.nn.grad.conv*_input / _weight each fake the operand
        # they lack with an expanded tensor, which the CPU kernel copies to full size).
        grad_x, grad_w, grad_bias = torch.ops.aten.convolution_backward(
            grad_out, x.to(dtype), weight, None if bias is None else [bias.shape[0]],
            stride, padding, dilation, False, [0] * len(stride), 1, (need_x, need_w, need_b),
        )
        grad_r = grad_i = grad_j = grad_k = None
        if need_w:  # folded in the components' precision (fp32 under autocast): 4 blocks summed
            grad_r, grad_i, grad_j, grad_k = fold_hamilton(grad_w.to(r.dtype))
        grads = (grad_x, grad_r, grad_i, grad_j, grad_k, grad_bias)
        return (*_cast_grads(grads, (x, r, i, j, k, bias)), None, None, None)


class HamiltonLinear(torch.autograd.Function):
    """Quaternion fully-connected layer as a single autograd op: ``apply(x, r, i, j, k, bias)``.

    Components are (out/4, in/4) like ``nn.Linear.weight``; x is (..., in).
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any, x: Tensor, r: Tensor, i: Tensor, j: Tensor, k: Tensor, bias: Tensor | None
    ) -> Tensor:
        weight = assemble_hamilton(r, i, j, k)
        dtype = _autocast_dtype(x, weight, bias)
        if dtype is None:
            ctx.save_for_backward(x, r, i, j, k, bias, weight)
            return F.linear(x, weight, bias)
        weight = weight.to(dtype)  # as HamiltonConv: the matmul in autocast's dtype
        ctx.save_for_backward(x, r, i, j, k, bias, weight)
        with torch.autocast(x.device.type, enabled=False):
            return F.linear(x.to(dtype), weight, None if bias is None else bias.to(dtype))

    @staticmethod
    def backward(ctx: Any, grad_out: Tensor) -> tuple[Tensor | None, ...]:  # type: ignore[override]
        x, r, i, j, k, bias, weight = ctx.saved_tensors
        dtype = grad_out.dtype
        weight = _backward_weight(weight, r, i, j, k).to(dtype)
        need_x, *need_comps, need_bias = ctx.needs_input_grad
        grad_x = grad_r = grad_i = grad_j = grad_k = grad_bias = None
        grad_2d = grad_out.reshape(-1, grad_out.shape[-1])
        if need_x:
            grad_x = grad_out @ weight
        if any(need_comps):
            grad_w = grad_2d.t() @ x.reshape(-1, x.shape[-1]).to(dtype)
            grad_r, grad_i, grad_j, grad_k = fold_hamilton(grad_w.to(r.dtype))
        if bias is not None and need_bias:
            grad_bias = grad_2d.sum(0)
        grads = (grad_x, grad_r, grad_i, grad_j, grad_k, grad_bias)
        return _cast_grads(grads, (x, r, i, j, k, bias))


# --------------------------------------------------------------------------------------------
# initialisation


def _init_sigma(in_q: int, out_q: int, receptive_field: int, criterion: InitCriterion) -> float:
    """Per-component std of Parcollet et al.; fans are counted in quaternions x receptive field."""
    fan_in, fan_out = in_q * receptive_field, out_q * receptive_field
    if criterion == "glorot":
        return 1.0 / math.sqrt(2.0 * (fan_in + fan_out))
    if criterion == "he":
        return 1.0 / math.sqrt(2.0 * fan_in)
    raise ValueError(f"init criterion must be 'glorot' or 'he', got {criterion!r}")


def quaternion_init(
    out_q: int,
    in_q: int,
    kernel_size: Sequence[int] = (),
    criterion: InitCriterion = "glorot",
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype | None = None,
    device: torch.device | str | None = None,
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Polar-form quaternion weights (r, i, j, k), each (out_q, in_q, *kernel_size).

    modulus ~ sigma * chi(4 dof), a uniform random unit imaginary axis, phase ~ U[-pi, pi];
    r = mod cos(phase), (i, j, k) = mod sin(phase) axis. So E|w|^2 = 4 sigma^2 and the mean
    per-component variance is sigma^2 (r carries 2 sigma^2, each imaginary part 2/3 sigma^2).
    """
    kernel = tuple(int(s) for s in kernel_size)
    sigma = _init_sigma(in_q, out_q, math.prod(kernel), criterion)
    shape = (out_q, in_q, *kernel)
    opts: dict[str, Any] = {"generator": generator, "dtype": dtype, "device": device}
    # chi with 4 degrees of freedom = norm of a 4-d standard normal vector.
    modulus = sigma * torch.randn(4, *shape, **opts).norm(dim=0)
    axis = torch.randn(3, *shape, **opts)
    axis = axis / axis.norm(dim=0, keepdim=True).clamp_min(torch.finfo(axis.dtype).tiny)
    phase = (torch.rand(shape, **opts) * 2.0 - 1.0) * math.pi
    r = modulus * torch.cos(phase)
    i, j, k = modulus * torch.sin(phase) * axis
    return r, i, j, k


# --------------------------------------------------------------------------------------------
# modules


class _QuaternionWeights(nn.Module):
    """Four component Parameters + a real bias; shared by the conv and linear layers."""

    quaternion = True

    r_weight: nn.Parameter
    i_weight: nn.Parameter
    j_weight: nn.Parameter
    k_weight: nn.Parameter
    bias: nn.Parameter | None

    def _create(
        self, shape: tuple[int, ...], out_real: int, bias: bool, init: InitCriterion
    ) -> None:
        _init_sigma(1, 1, 1, init)  # validate the criterion before anything is allocated
        self.init = init
        for name in ("r_weight", "i_weight", "j_weight", "k_weight"):
            self.register_parameter(name, nn.Parameter(torch.empty(shape)))
        self.register_parameter("bias", nn.Parameter(torch.empty(out_real)) if bias else None)
        self.reset_parameters()

    def components(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(r, i, j, k) weight Parameters."""
        return self.r_weight, self.i_weight, self.j_weight, self.k_weight

    def assembled_weight(self) -> Tensor:
        """The equivalent real kernel (out, in, *kernel), differentiable w.r.t. the components."""
        return assemble_hamilton(*self.components())

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Polar quaternion init for the weights (global RNG), zeros for the bias as SpeechBrain."""
        out_q, in_q, *kernel = self.r_weight.shape
        comps = quaternion_init(
            out_q, in_q, kernel, self.init, dtype=self.r_weight.dtype, device=self.r_weight.device
        )
        for param, value in zip(self.components(), comps):
            param.copy_(value)
        if self.bias is not None:
            self.bias.zero_()


class _QConvNd(_QuaternionWeights):
    """Common body of QConv1d / QConv2d; subclasses fix the tuple helper."""

    _ntuple = staticmethod(_pair)

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: IntOrTuple,
        stride: IntOrTuple = 1,
        padding: IntOrTuple = 0,
        dilation: IntOrTuple = 1,
        groups: int = 1,
        bias: bool = True,
        init: InitCriterion = "glorot",
    ) -> None:
        super().__init__()
        if groups != 1:
            raise ValueError(
                f"groups={groups} is not supported by quaternion convolutions (only groups=1)"
            )
        if isinstance(padding, str):
            raise ValueError("string padding ('same'/'valid') is not supported; give integers")
        self.in_channels = _check_multiple_of_4("in_channels", in_channels)
        self.out_channels = _check_multiple_of_4("out_channels", out_channels)
        self.kernel_size: tuple[int, ...] = self._ntuple(kernel_size)
        self.stride: tuple[int, ...] = self._ntuple(stride)
        self.padding: tuple[int, ...] = self._ntuple(padding)
        self.dilation: tuple[int, ...] = self._ntuple(dilation)
        self.groups = 1
        shape = (out_channels // 4, in_channels // 4, *self.kernel_size)
        self._create(shape, out_channels, bias, init)

    def forward(self, x: Tensor) -> Tensor:
        return HamiltonConv.apply(
            _autocast_input(x), *self.components(), self.bias, self.stride, self.padding,
            self.dilation,
        )

    def extra_repr(self) -> str:
        return (
            f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
            f"stride={self.stride}, padding={self.padding}, dilation={self.dilation}, "
            f"bias={self.bias is not None}, init={self.init!r}"
        )


class QConv2d(_QConvNd):
    """2-d quaternion convolution; channels in REAL counts (multiples of 4)."""

    _ntuple = staticmethod(_pair)


class QConv1d(_QConvNd):
    """1-d quaternion convolution; channels in REAL counts (multiples of 4)."""

    _ntuple = staticmethod(_single)


class QLinear(_QuaternionWeights):
    """Quaternion fully-connected layer; features in REAL counts (multiples of 4).

    Components are (out/4, in/4) in ``nn.Linear`` order (SpeechBrain stores (in/4, out/4)),
    so the assembled weight drops straight into an ``nn.Linear``.
    """

    def __init__(
        self, in_features: int, out_features: int, bias: bool = True, init: InitCriterion = "glorot"
    ) -> None:
        super().__init__()
        self.in_features = _check_multiple_of_4("in_features", in_features)
        self.out_features = _check_multiple_of_4("out_features", out_features)
        self._create((out_features // 4, in_features // 4), out_features, bias, init)

    def forward(self, x: Tensor) -> Tensor:
        return HamiltonLinear.apply(_autocast_input(x), *self.components(), self.bias)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"bias={self.bias is not None}, init={self.init!r}"
        )


class QBatchNorm2d(nn.Module):
    """Batch norm for quaternion feature maps (N, C, H, W), C real channels.

    mode="quaternion" (SpeechBrain-style, whitening-free): a mean and a beta per real channel,
    ONE gamma and one variance per quaternion, the variance being the mean over its four
    components of the squared deviation, so the four components keep their relative scale.
    mode="real": a plain per-real-channel ``nn.BatchNorm2d`` (what the QCNN authors trained).
    """

    quaternion = True

    def __init__(
        self,
        num_features: int,
        mode: Literal["quaternion", "real"] = "quaternion",
        eps: float = 1e-5,
        momentum: float | None = 0.1,
    ) -> None:
        super().__init__()
        if mode not in ("quaternion", "real"):
            raise ValueError(f"mode must be 'quaternion' or 'real', got {mode!r}")
        self.num_features = _check_multiple_of_4("num_features", num_features)
        self.mode = mode
        self.eps = eps
        self.momentum = momentum
        if mode == "real":
            self.bn = nn.BatchNorm2d(num_features, eps=eps, momentum=momentum)
            return
        n_q = num_features // 4
        self.gamma = nn.Parameter(torch.ones(n_q))
        self.beta = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(n_q))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def _per_channel(self, per_quaternion: Tensor) -> Tensor:
        """Repeat a (C/4,) tensor onto the real layout: channel q + c*O gets entry q."""
        return per_quaternion.repeat(4)

    def _update_running(self, mean: Tensor, var_q: Tensor, n: int) -> None:
        """Exponential (cumulative if momentum is None) average; unbiased var as nn.BatchNorm."""
        self.num_batches_tracked.add_(1)
        factor = (
            1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        )
        unbiased = var_q * (n / max(n - 1, 1))
        self.running_mean.lerp_(mean.detach(), factor)
        self.running_var.lerp_(unbiased.detach(), factor)

    def forward(self, x: Tensor) -> Tensor:
        if self.mode == "real":
            return self.bn(x)
        if x.dim() < 2 or x.shape[1] != self.num_features:
            raise ValueError(f"expected (N, {self.num_features}, ...) input, got {tuple(x.shape)}")
        # statistics in at least the parameters' precision (fp16/bf16 under autocast), as
        # nn.BatchNorm does; the output keeps the input's dtype
        xs = x.to(torch.promote_types(x.dtype, self.beta.dtype))
        dims = [d for d in range(xs.dim()) if d != 1]
        view = (1, -1, *([1] * (xs.dim() - 2)))
        if self.training:
            mean = xs.mean(dim=dims)
            centred = xs - mean.view(view)
            var_q = centred.square().mean(dim=dims).view(4, -1).mean(dim=0)
            with torch.no_grad():
                self._update_running(mean, var_q, xs.numel() // xs.shape[1])
        else:
            centred = xs - self.running_mean.view(view)
            var_q = self.running_var
        scale = self._per_channel(self.gamma * torch.rsqrt(var_q + self.eps))
        return (centred * scale.view(view) + self.beta.view(view)).to(x.dtype)

    def extra_repr(self) -> str:
        return f"{self.num_features}, mode={self.mode!r}, eps={self.eps}, momentum={self.momentum}"
