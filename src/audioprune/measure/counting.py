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
from dataclasses import dataclass, field
from typing import Any, Callable

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

from audioprune.model_inputs import ForwardFn, first_example, move_inputs, resolve_forward
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


@torch.no_grad()
def count(model: nn.Module, example_inputs: Any, forward_fn: ForwardFn | str | None = None) -> Counts:
    """Parameters and MACs per example of any model, total and per layer.

    `example_inputs` is what the model takes (a tensor, a tuple of tensors or a dict); only its
    first item along the batch axis is run - on a meta-device copy, so counting a 20-GMAC model
    costs no arithmetic. `forward_fn(model, inputs)` (or a method name such as "classify")
    replaces ``model(inputs)``. The model itself is not run and not changed.
    """
    forward = resolve_forward(forward_fn, model)
    inputs = first_example(example_inputs)
    per_layer = run_on_meta(model, inputs, forward,
                            lambda m, x: module_macs(m, lambda: forward(m, x)))
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
