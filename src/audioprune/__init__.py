"""audioprune: compress audio classifiers - any PyTorch model - by filter pruning and knowledge
distillation, and measure what the compression bought.

The Python API (everything else is internal)::

    import audioprune as ap

    result = ap.prune(model, example_inputs, "wdc", target_macs=0.5)   # in place, for real
    print(result.summary())
    counts = ap.count(model, example_inputs)                           # params, MACs per layer
    ap.blocked_macs(model, example_inputs)     # MACs in this CPU's SIMD blocks: what time follows
    ap.cpu_model()                             # the CPU to name beside a latency or a training result
    ap.prune(model, example_inputs, "l1", budget="dcase2024", clip_seconds=1.0)  # 128 kB + 30M MAC/s
    onnx = ap.export_onnx(model, example_inputs)     # any nn.Module; BN folded, ORT parity checked
    ap.quantize_onnx(onnx, calibration_batches)      # int8 by ONNX Runtime (a front end stays fp32)
    ap.save_pruned(model, "model.safetensors")                         # no pickle
    ap.load_pruned("model.safetensors", MyModel())                     # replays the pruning

    imp = ap.importance("betweenness")   # a torch_pruning Importance for Torch-Pruning's pruners
    ap.list_criteria()                   # wdc, betweenness, similarity, l1, opnorm, taylor, auto, ...
    ap.fuse_quaternion(qmodel)           # quaternion layers -> plain convs (ap.nn holds them)
    ap.create_model("cnn6", 10, ap.FrontEndConfig(sample_rate=16000, fmax=8000), width=0.5)

Data flows one way: audio -> features -> model -> (prune | distill) -> fine-tune -> measure ->
report. Names are loaded on first use, so ``import audioprune`` stays light for the CLI.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from audioprune.errors import ArgumentError, UserError

__version__ = "0.1.0"

if TYPE_CHECKING:  # pragma: no cover
    from audioprune import nn
    from audioprune.api import importance, list_criteria
    from audioprune.audio.frontend import FrontEndConfig
    from audioprune.measure.blocking import blocked_macs
    from audioprune.measure.counting import Counts, count
    from audioprune.measure.latency import cpu_model
    from audioprune.measure.onnx_module import ExportedOnnx, export_onnx
    from audioprune.measure.quantize import quantize_onnx
    from audioprune.models.registry import create_model
    from audioprune.nn.fuse import fuse_quaternion
    from audioprune.pruning.engine import customized_pruners
    from audioprune.pruning.pruner import PruneResult, Pruner, prune
    from audioprune.pruning.record import load_pruned, save_pruned

_LAZY = {
    "prune": "audioprune.pruning.pruner",
    "Plan": "audioprune.pruning.plan",
    "coarsen": "audioprune.models.resolution",
    "split_budget": "audioprune.pruning.split",
    "PruneSpec": "audioprune.pruning.spec",
    "Pruner": "audioprune.pruning.pruner",
    "PruneResult": "audioprune.pruning.pruner",
    "count": "audioprune.measure.counting",
    "cpu_model": "audioprune.measure.latency",
    "create_model": "audioprune.models.registry",
    "FrontEndConfig": "audioprune.audio.frontend",
    "blocked_macs": "audioprune.measure.blocking",
    "quantize_onnx": "audioprune.measure.quantize",
    "export_onnx": "audioprune.measure.onnx_module",
    "ExportedOnnx": "audioprune.measure.onnx_module",
    "Counts": "audioprune.measure.counting",
    "importance": "audioprune.api",
    "list_criteria": "audioprune.api",
    "fuse_quaternion": "audioprune.nn.fuse",
    "save_pruned": "audioprune.pruning.record",
    "load_pruned": "audioprune.pruning.record",
    "customized_pruners": "audioprune.pruning.engine",
}

__all__ = ["ArgumentError", "Counts", "ExportedOnnx", "FrontEndConfig", "Plan", "PruneResult", "PruneSpec", "Pruner",
           "UserError", "__version__",
           "blocked_macs", "coarsen", "count", "cpu_model", "create_model", "customized_pruners", "export_onnx",
           "fuse_quaternion",
           "importance", "list_criteria", "load_pruned", "nn", "prune", "quantize_onnx",
           "save_pruned", "split_budget"]


def __getattr__(name: str) -> Any:
    if name == "nn":
        return importlib.import_module("audioprune.nn")
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'audioprune' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
