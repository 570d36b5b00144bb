"""Save a pruned model as safetensors + its pruning record, and load it back without pickle.

A pruned model's architecture is not the class's default, so ``torch.save(model)`` (a pickle)
is what people reach for - and what nobody should load from a stranger. Here the file holds only
tensors (the state dict) and, in the safetensors header's metadata, the pruning record as JSON:
for every pruning step the unit indices removed from each layer (numbered as the layer was at
that step), the unit size (4 for quaternion layers), and the example inputs' shapes. Loading
builds the dependency graph of a freshly made UNPRUNED model, replays the steps in order - the
same Torch-Pruning surgery, so BN, next-layer inputs and residual partners shrink exactly as
before - checks every layer's width, and then loads the weights strictly.

    result = audioprune.prune(model, x, "wdc", ratio=0.5)
    audioprune.save_pruned(model, "pruned.safetensors")
    fresh = MyModel()                                        # unpruned, any weights
    audioprune.load_pruned("pruned.safetensors", fresh)      # pruned structure + weights
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from safetensors import SafetensorError, safe_open
from torch import nn

from audioprune.errors import ArgumentError, ArgumentTypeError
from audioprune.fileio import read_tensors, write_tensors
from audioprune.model_inputs import ForwardFn, inputs_from_spec
from audioprune.pruning.engine import PruningGraph, out_width
from audioprune.pruning.pruner import RECORD_ATTR, pruning_record

__all__ = ["load_pruned", "read_record", "save_pruned"]

METADATA_KEY = "audioprune.pruning"


def _widths(model: nn.Module, names: list[str]) -> dict[str, int]:
    modules = dict(model.named_modules())
    return {n: out_width(modules[n]) for n in names if n in modules}


def save_pruned(model: nn.Module, path: str | Path) -> Path:
    """Write `model`'s weights (safetensors) with its pruning record (JSON, in the header);
    atomic. A model audioprune never pruned is saved with an empty record."""
    if not isinstance(model, nn.Module):
        raise ArgumentTypeError(f"`model` must be a torch.nn.Module, got {type(model).__name__}")
    path = Path(path)
    record = dict(pruning_record(model) or {"format": "audioprune-pruning", "version": 1,
                                            "example_inputs": None, "forward_fn": None,
                                            "steps": []})
    layers = sorted({n for step in record["steps"] for n in step["removed"]})
    record["widths"] = _widths(model, layers)
    write_tensors(path, dict(model.state_dict()), metadata={METADATA_KEY: json.dumps(record)})
    return path


def read_record(path: str | Path) -> dict[str, Any]:
    """The pruning record stored in a file written by :func:`save_pruned`."""
    path = Path(path)
    if not path.is_file():
        raise ArgumentError(f"`path` {path} does not exist")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise ArgumentError(f"`path` {path} is not a safetensors file ({exc}); audioprune never "
                            f"unpickles") from None
    if METADATA_KEY not in meta:
        raise ArgumentError(f"`path` {path} holds no audioprune pruning record; was it written "
                            f"by audioprune.save_pruned?")
    record = json.loads(meta[METADATA_KEY])
    if record.get("format") != "audioprune-pruning" or record.get("version") != 1:
        raise ArgumentError(f"`path` {path}: unknown pruning record format "
                            f"{record.get('format')!r} version {record.get('version')!r}")
    return record


def load_pruned(path: str | Path, model: nn.Module, *, example_inputs: Any = None,
                forward_fn: ForwardFn | str | None = None, strict: bool = True) -> nn.Module:
    """Prune the freshly built, UNPRUNED `model` in place as recorded in `path`, then load the
    saved weights into it; returns the model.

    The record's example-input shapes (zeros) trace the model, passed as ap.prune passed them
    (audioprune.model_inputs: a tensor or a dict is one positional input, a tuple several), so
    a model whose forward takes one dict replays without its inputs. Give `example_inputs` /
    `forward_fn` when the model needs other values or was traced through a callable (a method
    name is recorded and reused; a callable cannot be).
    """
    if not isinstance(model, nn.Module):
        raise ArgumentTypeError(f"`model` must be a torch.nn.Module, got {type(model).__name__}")
    record = read_record(path)
    steps = record["steps"]
    if steps:
        if example_inputs is None:
            if record.get("example_inputs") is None:
                raise ArgumentError("the record has no example inputs; pass `example_inputs`")
            device = next((p.device for p in model.parameters()), "cpu")
            example_inputs = inputs_from_spec(record["example_inputs"], device)
        given = forward_fn is not None
        forward_fn = forward_fn if given else record.get("forward_fn")
        for k, step in enumerate(steps, start=1):
            try:
                graph = PruningGraph(model, example_inputs, forward_fn, protect_outputs=False,
                                     protect_frozen=False)
            except ArgumentError as exc:
                if given or forward_fn is not None:
                    raise
                raise ArgumentError(f"replaying the pruning record of {path}: {exc.template}; a "
                                    f"callable `forward_fn` is not recorded (a method name is): "
                                    f"pass the one the model was pruned with") from exc
            try:
                graph.prune(step["removed"], units=step["units"])
            except (KeyError, ValueError) as exc:
                raise ArgumentError(f"`model` does not match the record in {path} at pruning "
                                    f"step {k}: {exc}; build the same architecture, unpruned"
                                    ) from None
        widths = _widths(model, list(record.get("widths", {})))
        if widths != record.get("widths", {}):
            diff = {n: (widths.get(n), w) for n, w in record["widths"].items() if widths.get(n) != w}
            raise ArgumentError(f"`model` pruned as recorded does not have the recorded widths "
                                f"(now, recorded): {diff}")
    tensors = read_tensors(path)
    try:
        model.load_state_dict(tensors, strict=strict)
    except RuntimeError as exc:
        raise ArgumentError(f"the weights in {path} do not fit `model`: {exc}") from None
    object.__setattr__(model, RECORD_ATTR, {k: v for k, v in record.items() if k != "widths"})
    return model
