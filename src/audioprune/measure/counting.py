"""Parameters and MACs counted at the operator level, for any nn.Module.

MACs come from torch.utils.flop_counter.FlopCounterMode, which sees every aten convolution and
matmul actually executed, so custom layers (quaternion convs assemble a real kernel and call one
convolution) are counted right; Torch-Pruning's counter would count custom modules as zero.
FlopCounterMode reports FLOPs = 2 x MACs for conv/matmul, so MACs = FLOPs / 2.

:func:`count` works on any model and example inputs (the public ``audioprune.count``). The
functions taking ``num_samples`` are for audio models with a front end inside - anything with
``features(wave)``, ``classify(features)``, ``feature_shape(n)`` and ``frontend_cfg``, as this
package's models have - and count the body (features -> logits) apart from the front end.
"""

from __future__ import annotations

import copy
import itertools
import logging
import re
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from audioprune.errors import ArgumentError
from audioprune.model_inputs import (ForwardFn, first_example, map_tensors, move_inputs,
                                     output_tensors, resolve_forward)
from audioprune.nn.layer_support import registered_layer_supports

log = logging.getLogger("audioprune")

AudioModel = Any  # duck-typed: features / classify / feature_shape / frontend_cfg


def count_params(model: nn.Module, include_frontend: bool = False) -> int:
    """Learnable parameters. The log-mel front end holds only buffers, so it adds nothing."""
    return sum(p.numel() for name, p in model.named_parameters()
               if include_frontend or not name.startswith("frontend."))


def count_keras_params(model: nn.Module) -> int:
    """Parameters plus BatchNorm running mean/variance, the way Keras' summary counts them."""
    stats = sum(b.numel() for name, b in model.named_buffers()
                if name.endswith("running_mean") or name.endswith("running_var"))
    return count_params(model) + stats


# torch 2.13 has no FLOP rule for the CPU attention kernel, so attention score matmuls would be
# missed on CPU (a transformer's count falls by 2*T^2*D per layer); count it as the generic SDPA.
_EXTRA_RULES = {
    torch.ops.aten._scaled_dot_product_flash_attention_for_cpu:
        lambda q, k, v, *a, out_shape=None, **kw: sdpa_flop_count(q, k, v),
}


def _rules() -> dict[Any, Callable[..., int]]:
    rules = dict(_EXTRA_RULES)
    for support in registered_layer_supports().values():
        rules.update(support.flop_rules)
    return rules


def _macs(fn, *args: torch.Tensor) -> int:
    with FlopCounterMode(display=False, custom_mapping=_rules()) as counter:
        fn(*args)
    return int(counter.get_total_flops()) // 2


@dataclass(frozen=True)
class LayerCount:
    """One module's own parameters and MACs (its children's not included)."""

    params: int
    macs: int


@dataclass(frozen=True)
class Counts:
    """Parameters and MACs of a model for ONE example (the first item of the inputs given).

    ``params`` counts every parameter, frozen ones too (``trainable`` only those with
    requires_grad); ``layers`` maps module names to their own share, so the rows add up to the
    totals ("(model)" holds work done in the top-level forward itself).
    """

    params: int
    trainable: int
    macs: int
    layers: dict[str, LayerCount] = field(default_factory=dict)


def meta_copy(model: nn.Module) -> nn.Module:
    """A deep copy of `model` whose parameters and buffers live on the meta device: shapes
    without memory or arithmetic, enough for FlopCounterMode and Torch-Pruning's tracer."""
    memo: dict[int, Any] = {}
    for t in itertools.chain(model.parameters(), model.buffers()):
        meta = torch.empty_like(t, device="meta")
        memo[id(t)] = (nn.Parameter(meta, requires_grad=t.requires_grad)
                       if isinstance(t, nn.Parameter) else meta)
    return copy.deepcopy(model, memo)


def run_on_meta(model: nn.Module, inputs: Any, forward: ForwardFn,
                then: Callable[[nn.Module, Any], Any]) -> Any:
    """then(meta copy of model, inputs on meta): counting without computing. A model whose
    forward needs real values (an op without a meta kernel, value-dependent control flow) is
    handled on the real model instead, which gives the same counts, only slower."""
    try:
        return then(meta_copy(model), move_inputs(inputs, "meta"))
    except Exception as exc:  # noqa: BLE001
        log.debug("counting on the meta device failed (%s); counting on the model itself", exc)
        return then(model, inputs)


# What calling a model on inputs it cannot take raises ('dict' object has no attribute
# 'unsqueeze' is an AttributeError); the message keeps the original error, and it is chained.
CALL_ERRORS = (RuntimeError, TypeError, ValueError, IndexError, AttributeError)
# torch's messages for an input shorter than a kernel, a pooling window or the STFT's padding
_TOO_SHORT = re.compile(r"Kernel size can't be greater than actual input size|Output size is too "
                        r"small|Invalid computed output size|Padding size should be less than")
_MAX_LENGTH = 1 << 26  # the longest input the search for a minimum length tries


def explain_call_failure(model: nn.Module, inputs: Any, forward: ForwardFn,
                         exc: BaseException, doing: str = "calling the model on") -> str:
    """One line for `exc`, raised by ``forward(model, inputs)``: for an input too short for a
    convolution or pooling layer, "input too short for <layer>: needs at least N samples"
    (frames for (batch, channels, frames, mels) features; N searched on a meta-device copy,
    left out where the model cannot run there), else what failed and what to pass instead."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if not _TOO_SHORT.search(str(exc)):
        if isinstance(inputs, dict) and isinstance(exc, (TypeError, AttributeError)):
            fix = ("a dict is ONE positional input, model(inputs): for a forward taking keywords "
                   "pass `forward_fn`=lambda m, kw: m(**kw)")
        else:
            fix = ("pass inputs the model accepts (a tensor, a tuple of positional inputs, or a "
                   "dict as one input), or a `forward_fn`")
        return f"{doing} `example_inputs` failed ({type(exc).__name__}: {first}); {fix}"
    meta, meta_inputs = meta_copy(model).eval(), move_inputs(first_example(inputs), "meta")
    layer, meta_exc = _failing_layer(meta, meta_inputs, forward)
    on_meta = meta_exc is not None and _TOO_SHORT.search(str(meta_exc)) is not None
    if not on_meta:  # an op without a meta kernel: find the layer on the model itself
        was_training = model.training
        try:
            layer, _ = _failing_layer(model.eval(), first_example(inputs), forward)
        finally:
            model.train(was_training)
    where = f" for {layer}" if layer else ""
    length = _time_axis(meta_inputs)
    needed = _min_length(meta, meta_inputs, forward, *length) if on_meta and length else None
    if needed is None:
        return f"input too short{where} ({first}); pass a longer `example_inputs`"
    return (f"input too short{where}: needs at least {needed} {length[1]}; `example_inputs` "
            f"has {length[2]}")


def _failing_layer(model: nn.Module, inputs: Any, forward: ForwardFn
                   ) -> tuple[str | None, BaseException | None]:
    """(the innermost module running when ``forward(model, inputs)`` raised, the exception);
    (None, None) when it does not raise."""
    names = {mod: name for name, mod in model.named_modules() if name}
    stack: list[str] = []
    done: list[str] = []  # the last module that finished, for an op outside any module
    handles = []

    def enter(name: str) -> Callable[..., None]:
        def hook(_mod: nn.Module, _args: object) -> None:
            stack.append(name)
        return hook

    def leave(_mod: nn.Module, _args: object, _out: object) -> None:  # returns None: output kept
        done[:] = [stack.pop()]

    for mod, name in names.items():
        handles.append(mod.register_forward_pre_hook(enter(name)))
        handles.append(mod.register_forward_hook(leave))
    try:
        forward(model, inputs)
    except Exception as exc:  # noqa: BLE001  (whatever it is, it is reported)
        if stack:
            return stack[-1], exc
        return (f"the operation after {done[0]}" if done else None), exc
    finally:
        for h in handles:
            h.remove()
    return None, None


def _time_axis(inputs: Any) -> tuple[int, str, int] | None:
    """(axis, unit, length) of the time axis of the inputs' first tensor of 2+ dimensions:
    samples on the last axis of (batch, samples) / (batch, channels, samples), frames on axis 2
    of (batch, channels, frames, mels) features (the package's layout, time first)."""
    tensors = [t for t in output_tensors(inputs) if t.dim() >= 2]
    if not tensors:
        return None
    t = tensors[0]
    axis, unit = (2, "frames") if t.dim() == 4 else (t.dim() - 1, "samples")
    return axis, unit, int(t.shape[axis])


def _resized(inputs: Any, axis: int, now: int, length: int) -> Any:
    """`inputs` with every tensor of `now` entries along `axis` made `length` long (zeros)."""
    def resize(t: torch.Tensor) -> torch.Tensor:
        if t.dim() <= axis or t.shape[axis] != now:
            return t
        shape = list(t.shape)
        shape[axis] = length
        return torch.zeros(shape, dtype=t.dtype, device=t.device)

    return map_tensors(inputs, resize)


def _min_length(meta: nn.Module, inputs: Any, forward: ForwardFn, axis: int, _unit: str,
                now: int) -> int | None:
    """The shortest length along `axis` at which no layer finds the input too short (doubling,
    then bisection, on the meta device); None when none up to _MAX_LENGTH is."""
    def long_enough(length: int) -> bool:
        try:
            forward(meta, _resized(inputs, axis, now, length))
        except Exception as exc:  # noqa: BLE001
            return not _TOO_SHORT.search(str(exc))
        return True

    lo, hi = max(now, 0), max(2 * now, 1)
    while not long_enough(hi):
        lo, hi = hi, 2 * hi
        if hi > _MAX_LENGTH:
            return None
    while hi - lo > 1:  # long_enough(lo) is False (or lo is the given length), hi is True
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if long_enough(mid) else (mid, hi)
    return hi


@torch.no_grad()
def count(model: nn.Module, example_inputs: Any, forward_fn: ForwardFn | str | None = None) -> Counts:
    """Parameters and MACs per example of any model, total and per layer.

    `example_inputs` is what the model takes: a tensor (``model(x)``), a tuple of tensors
    (``model(*xs)``) or a dict, which is ONE positional input (``model(batch)``) unless
    `forward_fn` says otherwise (see audioprune.model_inputs). Only its first item along the
    batch axis is run - on a meta-device copy, so counting a 20-GMAC model costs no arithmetic.
    `forward_fn(model, inputs)` (or a method name such as "classify") replaces ``model(inputs)``,
    e.g. ``lambda m, kw: m(**kw)`` for a forward taking keywords. The model itself is not run
    and not changed. Inputs the model cannot take raise ArgumentError in one line; an input too
    short for a convolution or pooling layer says which layer and how long it must be.
    """
    forward = resolve_forward(forward_fn, model)
    inputs = first_example(example_inputs)
    try:
        per_layer = run_on_meta(model, inputs, forward,
                                lambda m, x: module_macs(m, lambda: forward(m, x)))
    except CALL_ERRORS as exc:
        raise ArgumentError(explain_call_failure(model, inputs, forward, exc)) from exc
    params = {name or "(model)": sum(p.numel() for p in mod.parameters(recurse=False))
              for name, mod in model.named_modules()}
    names = [n for n in params if params[n] or per_layer.get(n)]
    names += [n for n in per_layer if n not in params]
    layers = {n: LayerCount(params.get(n, 0), per_layer.get(n, 0)) for n in names}
    return Counts(params=sum(p.numel() for p in model.parameters()),
                  trainable=sum(p.numel() for p in model.parameters() if p.requires_grad),
                  macs=sum(per_layer.values()), layers=layers)


def module_macs(model: nn.Module, run: Callable[[], Any],
                skip: Callable[[str], bool] = lambda name: False,
                rules: dict[Any, Callable[..., int]] | None = None) -> dict[str, int]:
    """MACs of one call of `run()` per module of `model` (by name), children excluded, so the
    values add up to the total; work outside any module is listed under "(model)".

    One FlopCounterMode spans the whole call and forward hooks read its running total at each
    module's entry and exit (FlopCounterMode's own module tracker names modules by class when
    the body is entered through a method other than `__call__`). A module's own share is its
    total minus that of the modules called inside it, so containers that are never called
    (ModuleList) and modules called twice are handled. Modules for which `skip(name)` is true
    are not hooked (their work counts towards their caller). `rules` replaces the counting
    rules (FlopCounterMode's custom mapping; measure.blocking counts in SIMD blocks this way).
    """
    flops: dict[str, int] = {}
    stack: list[list[int]] = [[0, 0]]  # per active call: [running total at entry, children's]
    handles = []
    with FlopCounterMode(display=False, custom_mapping=_rules() if rules is None else rules) \
            as counter:
        def enter(_mod: nn.Module, _args: object) -> None:
            stack.append([counter.get_total_flops(), 0])

        def leave(name: str) -> Callable[..., None]:
            def hook(_mod: nn.Module, _args: object, _out: object) -> None:
                start, inner = stack.pop()
                spent = counter.get_total_flops() - start
                flops[name] = flops.get(name, 0) + spent - inner
                stack[-1][1] += spent
            return hook

        for name, mod in model.named_modules():
            if name and not skip(name):
                handles.append(mod.register_forward_pre_hook(enter))
                handles.append(mod.register_forward_hook(leave(name)))
        was_training = model.training
        model.eval()
        try:
            run()
        finally:
            model.train(was_training)
            for h in handles:
                h.remove()
        flops["(model)"] = counter.get_total_flops() - stack[0][1]
    return {name: int(f) // 2 for name, f in flops.items() if f}


@torch.no_grad()
def count_macs(model: AudioModel, num_samples: int | None = None) -> dict[str, int]:
    """MACs for ONE example of `num_samples` samples (default: the front end's clip length).

    Returns {"model": body MACs from features to logits, "frontend": the front end's matmuls
    and convolutions (mel projection, delta filters)}. The STFT's FFT is not in "frontend":
    FlopCounterMode has no rule for it. The body count is what `metrics.json` reports as `macs`.
    """
    num_samples = num_samples or model.frontend_cfg.clip_samples or model.frontend_cfg.sample_rate
    was_training = model.training
    model.eval()
    try:
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
        wave = torch.zeros(1, num_samples, device=device)
        feats = torch.zeros(1, *model.feature_shape(num_samples), device=device)
        body = _macs(model.classify, feats)
        front = _macs(model.features, wave)
    finally:
        model.train(was_training)
    return {"model": body, "frontend": front}


def size_bytes(model: nn.Module, bytes_per_param: int = 4) -> int:
    """Storage of the learnable parameters and persistent buffers at `bytes_per_param` each."""
    n = count_params(model) + sum(b.numel() for name, b in model.named_buffers()
                                  if not name.startswith("frontend.") and b.is_floating_point())
    return n * bytes_per_param


def layer_params(model: nn.Module) -> dict[str, int]:
    """Learnable parameters held directly by each module (front end excluded), by module name.

    A quaternion layer's r/i/j/k weights and bias sum into its own row; the values add up to
    `count_params(model)`.
    """
    out: dict[str, int] = {}
    for name, mod in model.named_modules():
        if name.startswith("frontend"):
            continue
        n = sum(p.numel() for p in mod.parameters(recurse=False))
        if n:
            out[name or "(model)"] = n
    return out


@torch.no_grad()
def layer_macs(model: AudioModel, num_samples: int | None = None) -> dict[str, int]:
    """Body MACs of an audio model for one example, per module (by name), children excluded, so
    the values add up to `count_macs(model)["model"]` (see :func:`module_macs`). Work done in the
    model's own `classify` (e.g. a functional matmul) is listed under "(model)"."""
    num_samples = num_samples or model.frontend_cfg.clip_samples or model.frontend_cfg.sample_rate
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    feats = torch.zeros(1, *model.feature_shape(num_samples), device=device)
    return module_macs(model, lambda: model.classify(feats),
                       skip=lambda name: name.startswith("frontend"))


@torch.no_grad()
def frontend_macs(model: AudioModel, num_samples: int | None = None) -> int:
    """The front end's MACs for one example, as `count_macs(model)["frontend"]`, without also
    running the body (which can be large)."""
    num_samples = num_samples or model.frontend_cfg.clip_samples or model.frontend_cfg.sample_rate
    device = next((p.device for p in model.parameters()), torch.device("cpu"))
    return _macs(model.features, torch.zeros(1, num_samples, device=device))
