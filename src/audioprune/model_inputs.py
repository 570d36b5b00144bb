"""Example inputs of any model: how to call it, its first example, and a JSON description.

How example inputs are passed to a model (the contract every entry point follows - ap.prune,
ap.count, ap.load_pruned, calibration, the pruning record):

* a tensor is ONE positional input: ``model(x)``;
* a tuple or list is several positional inputs: ``model(*xs)``;
* a dict is ONE positional input too - ``model(batch)`` for a ``forward(self, batch)`` that reads
  ``batch["wave"]`` - never unpacked into keyword arguments;
* a ``forward_fn(model, inputs)`` says otherwise: ``forward_fn=lambda m, kw: m(**kw)`` for a
  forward that takes keywords, or a method name such as ``"classify"`` (``model.classify(x)``)
  to run an audio model's body on features and skip its front end.

Counting, tracing, calibration and the pruning record all call models through these helpers, so
they agree on what "the model's forward" is. The record keeps the inputs' shapes (a dict stays a
dict, see :func:`inputs_spec`), so ``load_pruned`` replays a pruning without the inputs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from audioprune.errors import ArgumentError, ArgumentTypeError

ForwardFn = Callable[[nn.Module, Any], Any]

__all__ = ["ForwardFn", "call_model", "first_example", "inputs_from_spec", "inputs_spec",
           "map_tensors", "move_inputs", "output_tensors", "resolve_forward"]


def resolve_forward(forward_fn: ForwardFn | str | None, model: nn.Module) -> ForwardFn:
    """`forward_fn` as a callable: None -> the model's own call, "name" -> ``model.name(inputs)``."""
    if forward_fn is None:
        return lambda m, x: call_model(m, x)
    if isinstance(forward_fn, str):
        if not callable(getattr(model, forward_fn, None)):
            raise ArgumentError(f"`forward_fn` {forward_fn!r} is not a method of "
                                f"{type(model).__name__}")
        name = forward_fn
        return lambda m, x: getattr(m, name)(x)
    if not callable(forward_fn):
        raise ArgumentTypeError(f"`forward_fn` must be a callable (model, inputs) -> outputs or a "
                            f"method name, got {type(forward_fn).__name__}")
    return forward_fn


def call_model(model: nn.Module, inputs: Any) -> Any:
    """model(inputs) for a tensor or a dict (one positional input), model(*inputs) for a
    tuple/list. A model whose forward takes keywords needs ``forward_fn=lambda m, kw: m(**kw)``."""
    if isinstance(inputs, (tuple, list)):
        return model(*inputs)
    return model(inputs)


def _check(inputs: Any, what: str = "example_inputs") -> None:
    tensors = _tensors(inputs)
    if not tensors:
        raise ArgumentTypeError(f"`{what}` must be a tensor, a tuple/list of tensors or a dict of "
                            f"tensors, got {type(inputs).__name__}")


def _tensors(inputs: Any) -> list[torch.Tensor]:
    if torch.is_tensor(inputs):
        return [inputs]
    if isinstance(inputs, Mapping):
        return [t for v in inputs.values() for t in _tensors(v)]
    if isinstance(inputs, (tuple, list)):
        return [t for v in inputs for t in _tensors(v)]
    return []


def map_tensors(inputs: Any, fn: Callable[[torch.Tensor], Any]) -> Any:
    """`inputs` with every tensor t replaced by fn(t), the structure (tuple, list, dict) kept."""
    if torch.is_tensor(inputs):
        return fn(inputs)
    if isinstance(inputs, Mapping):
        return {k: map_tensors(v, fn) for k, v in inputs.items()}
    if isinstance(inputs, (tuple, list)):
        return type(inputs)(map_tensors(v, fn) for v in inputs)
    return inputs


def first_example(inputs: Any) -> Any:
    """The first item along the batch axis of every tensor in `inputs` (batch of one)."""
    _check(inputs)
    for t in _tensors(inputs):
        if t.dim() == 0 or t.shape[0] < 1:
            raise ArgumentError(f"`example_inputs` tensors need a batch axis with at least one "
                                f"example, got shape {tuple(t.shape)}")
    return map_tensors(inputs, lambda t: t[:1])


def move_inputs(inputs: Any, device: torch.device | str) -> Any:
    return map_tensors(inputs, lambda t: t.to(device))


def inputs_spec(inputs: Any) -> Any:
    """A JSON-able description (shapes and dtypes) from which equal-shaped inputs can be rebuilt."""
    _check(inputs)
    if torch.is_tensor(inputs):
        return {"shape": list(inputs.shape), "dtype": str(inputs.dtype).replace("torch.", "")}
    if isinstance(inputs, Mapping):
        return {"dict": {str(k): inputs_spec(v) for k, v in inputs.items()}}
    return {"tuple": [inputs_spec(v) for v in inputs]}


def inputs_from_spec(spec: Any, device: torch.device | str = "cpu") -> Any:
    """Zero tensors shaped as `spec` (from :func:`inputs_spec`) describes."""
    if "shape" in spec:
        dtype = getattr(torch, spec["dtype"], None)
        if not isinstance(dtype, torch.dtype):
            raise ValueError(f"unknown dtype {spec['dtype']!r} in an inputs description")
        return torch.zeros(spec["shape"], dtype=dtype, device=device)
    if "dict" in spec:
        return {k: inputs_from_spec(v, device) for k, v in spec["dict"].items()}
    return tuple(inputs_from_spec(v, device) for v in spec["tuple"])


def output_tensors(outputs: Any) -> list[torch.Tensor]:
    """Every tensor in a model's outputs (a tensor, a tuple/list or a dict, nested)."""
    return _tensors(outputs)
