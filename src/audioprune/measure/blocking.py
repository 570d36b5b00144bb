"""MACs as a vector CPU computes them: output channels in whole SIMD blocks.

Why: a convolution's time on a CPU does not follow its MACs when its output channels are not a
multiple of the vector width. ONNX Runtime (MLAS, NCHWc layout) and PyTorch (oneDNN) compute
output channels in blocks of the fp32 lanes of the widest vector unit - 16 with AVX-512, 8 with
AVX2 - so a conv with 8 output channels takes as long as one with 16, and 17 as long as 32. We
measured it (bench/bench_latency_gap.py, BENCHMARKS.md section 7): a 7x7 conv's time is
proportional to c_in x ceil(c_out / 16) on an AVX-512 machine in both runtimes. Pruning a
16-filter layer to 8 then halves its MACs and none of its time, which is most of why pruned
models got less faster than their MAC ratio.

`blocked_macs` counts MACs with every convolution's and matmul's output width rounded up to
`lanes` (depthwise/grouped convs: the total output channels), per layer like
`measure.counting.count`; the ratio of blocked MACs predicts the latency ratio where MACs
dominate. `PlanSpec.round_to` (prune --round-to) keeps pruned widths on block boundaries.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn
from torch.utils.flop_counter import conv_flop_count

from audioprune.errors import ArgumentError
from audioprune.measure.counting import _rules, module_macs, run_on_meta
from audioprune.model_inputs import ForwardFn, first_example, resolve_forward

__all__ = ["BlockedCounts", "blocked_macs", "simd_lanes"]

_LANES = {"AVX512": 16, "AVX2": 8}


def simd_lanes() -> int:
    """fp32 lanes of the vector unit PyTorch dispatches to on this CPU (AVX-512: 16, AVX2: 8,
    anything else - NEON, no SIMD build - 4)."""
    return _LANES.get(torch.backends.cpu.get_cpu_capability(), 4)


def _up(n: int, lanes: int) -> int:
    return math.ceil(n / lanes) * lanes


def _rules_in_blocks(lanes: int) -> dict[Any, Callable[..., int]]:
    # FlopCounterMode hands custom rules shapes, not tensors
    def conv(x_shape, w_shape, bias, stride, padding, dilation, transposed, *args,
             out_shape=None, **kwargs) -> int:
        w = list(w_shape)
        if transposed:  # weight (c_in, c_out / groups, ...): time follows the output channels
            flops = conv_flop_count(list(x_shape), w, list(out_shape), transposed=True)
            return flops * _up(w[1], lanes) // w[1]
        w[0] = _up(w[0], lanes)
        return conv_flop_count(list(x_shape), w, list(out_shape))

    def mm(a_shape, b_shape, *args, out_shape=None, **kwargs) -> int:
        return 2 * a_shape[0] * a_shape[1] * _up(b_shape[1], lanes)

    def addmm(self_shape, a_shape, b_shape, out_shape=None, **kwargs) -> int:
        return mm(a_shape, b_shape)

    aten = torch.ops.aten
    rules = dict(_rules())
    for op in (aten.convolution, aten._convolution):
        rules[op] = conv
    rules[aten.mm] = mm
    rules[aten.addmm] = addmm
    return rules


@dataclass(frozen=True)
class BlockedCounts:
    """MACs per example with output widths rounded up to `lanes`, total and per module."""

    lanes: int
    macs: int
    layers: dict[str, int] = field(default_factory=dict)


@torch.no_grad()
def blocked_macs(model: nn.Module, example_inputs: Any, forward_fn: ForwardFn | str | None = None,
                 lanes: int | None = None) -> BlockedCounts:
    """MACs per example as a CPU with `lanes` fp32 lanes computes them (default: this CPU's,
    `simd_lanes()`); `example_inputs` and `forward_fn` as for `audioprune.count`."""
    if lanes is None:
        lanes = simd_lanes()
    if isinstance(lanes, bool) or not isinstance(lanes, int) or lanes < 1:
        raise ArgumentError(f"`lanes` must be a positive integer (16 for AVX-512, 8 for AVX2), "
                            f"got {lanes!r}")
    forward = resolve_forward(forward_fn, model)
    rules = _rules_in_blocks(lanes)
    per_layer = run_on_meta(model, first_example(example_inputs), forward,
                            lambda m, x: module_macs(m, lambda: forward(m, x), rules=rules))
    return BlockedCounts(lanes, sum(per_layer.values()), per_layer)
