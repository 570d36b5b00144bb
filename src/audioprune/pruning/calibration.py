"""Calibration passes for the active criteria: a few training batches through the model, recording
what hrank / activation (feature maps) and taylor (weight gradients) need.

Kept apart from the engine: this module hooks modules and runs the model, it knows nothing about
Torch-Pruning; the engine says which module's output is a layer's feature map (the layer's batch
norm, where it has one) and turns the recorded scores into importances.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, Subset

from audioprune.model_inputs import ForwardFn, call_model, move_inputs
from audioprune.nn.layer_support import is_norm_layer

Batch = tuple[torch.Tensor, torch.Tensor]
DEFAULT_BATCHES = 8


def split_batch(batch: object) -> tuple[object, object | None]:
    """(inputs, targets) from a calibration batch: an (inputs, targets) pair, or inputs alone."""
    if isinstance(batch, (tuple, list)) and len(batch) == 2:
        return batch[0], batch[1]
    return batch, None


def batch_size(inputs: object) -> int:
    if torch.is_tensor(inputs):
        return int(inputs.shape[0]) if inputs.dim() else 1
    if isinstance(inputs, Mapping):
        inputs = list(inputs.values())
    if isinstance(inputs, (tuple, list)) and inputs:
        return batch_size(inputs[0])
    return 1


def calibration_batches(dataset: Dataset, n_batches: int = DEFAULT_BATCHES, batch_size: int = 32,
                        seed: int = 0) -> list[Batch]:
    """`n_batches` batches of (waveforms, targets) drawn without replacement from `dataset` by a
    seeded permutation: the same examples for every criterion and every run with this seed."""
    if n_batches < 1:
        raise ValueError(f"active criteria need at least 1 calibration batch, got {n_batches}")
    n = len(dataset)  # type: ignore[arg-type]
    if n == 0:
        raise ValueError("the training set is empty: no calibration batches for an active criterion")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))[: n_batches * batch_size]
    loader = DataLoader(Subset(dataset, order.tolist()), batch_size=batch_size, shuffle=False)
    return [(wave, y) for wave, y in loader]


@torch.no_grad()
def record_feature_scores(model: nn.Module, taps: Mapping[str, nn.Module], batches: Sequence[object],
                          score_fn: Callable[[torch.Tensor], np.ndarray],
                          forward: ForwardFn = call_model) -> dict[str, np.ndarray]:
    """Per-channel scores of each tapped module's ReLU'd output, averaged over all examples.

    `batches` are inputs or (inputs, targets) pairs, each run as ``forward(model, inputs)``.

    taps[name] is the module whose output, through ReLU, is layer `name`'s feature map. The model
    runs in eval mode (running BN statistics, no dropout), so the maps are the deployed model's.
    `score_fn(maps)` must be a mean over the examples of the batch (see criteria/active.py), which
    makes the size-weighted mean over batches exact.
    """
    sums: dict[str, np.ndarray] = {}
    seen = 0
    current = 0

    def hook(name: str) -> Callable[[nn.Module, object, torch.Tensor], None]:
        def fn(_module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
            s = np.asarray(score_fn(F.relu(output)), dtype=np.float64) * current
            sums[name] = sums[name] + s if name in sums else s
        return fn

    handles = [mod.register_forward_hook(hook(name)) for name, mod in taps.items()]
    was_training = model.training
    model.eval()
    device = _device(model)
    try:
        for batch in batches:
            inputs, _ = split_batch(batch)
            current = batch_size(inputs)
            forward(model, move_inputs(inputs, device))
            seen += current
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    missing = sorted(set(taps) - set(sums))
    if missing:
        raise RuntimeError(f"calibration never reached layer(s) {missing}")
    return {name: s / seen for name, s in sums.items()}


def accumulate_gradients(model: nn.Module, batches: Sequence[object],
                         loss_fn: Callable[[object, object], torch.Tensor],
                         forward: ForwardFn = call_model) -> None:
    """Leave in every parameter's .grad the mean over `batches` ((inputs, targets) pairs) of
    d loss / d parameter (eval mode, as for the feature maps; any gradient there before is
    discarded)."""
    was_training = model.training
    model.eval()
    model.zero_grad(set_to_none=True)
    device = _device(model)
    try:
        with torch.enable_grad():
            for batch in batches:
                inputs, y = split_batch(batch)
                if y is None:
                    raise ValueError("gradient criteria need (inputs, targets) calibration batches")
                out = forward(model, move_inputs(inputs, device))
                loss = loss_fn(out, move_inputs(y, device)) / len(batches)
                loss.backward()
    finally:
        model.train(was_training)


def clear_gradients(params: Iterable[nn.Parameter]) -> None:
    for p in params:
        p.grad = None


def _device(model: nn.Module) -> torch.device:
    return next((p.device for p in model.parameters()), torch.device("cpu"))




@torch.no_grad()
def feature_taps(model: nn.Module, layers: Mapping[str, nn.Module],
                 example: object, forward: ForwardFn = call_model) -> dict[str, nn.Module]:
    """For each layer, the module whose output is its pre-ReLU feature map: the norm layer that
    runs right after it (conv -> BN -> ReLU), else the layer itself (a hidden linear layer).

    Found by execution order in one forward pass, not by registration order, which need not
    follow the data (PANNs' original ConvBlock registers conv1, conv2, bn1, bn2).
    """
    order: list[nn.Module] = []
    leaves = [m for m in model.modules() if not list(m.children()) or is_norm_layer(m)
              or m in set(layers.values())]
    handles = [m.register_forward_hook(lambda mod, i, o: order.append(mod)) for m in leaves]
    was_training = model.training
    model.eval()
    try:
        forward(model, example)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    taps: dict[str, nn.Module] = {}
    for name, module in layers.items():
        tap = module
        if module in order:
            pos = order.index(module)
            nxt = order[pos + 1] if pos + 1 < len(order) else None
            if nxt is not None and is_norm_layer(nxt):
                tap = nxt
        taps[name] = tap
    return taps
