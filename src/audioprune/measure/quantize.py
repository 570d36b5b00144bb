"""int8 models: post-training quantization with ONNX Runtime, and fake-quantized fine-tuning.

Post-training (`quantize_onnx`): the fp32 ONNX graph (quaternion layers fused, batch norm folded:
measure.onnx_export) goes through ONNX Runtime's own tools - `quant_pre_process` (shape inference,
graph optimisation), then `quantize_static` in the QDQ format with int8 weights (per output
channel by default, symmetric) and uint8 activations whose ranges come from calibration batches
(min/max), or `quantize_dynamic` (int8 weights, activations quantized per batch at run time, no
calibration). These are the tools ONNX Runtime documents for CPU deployment; we do not write our
own quantizer.

Quantization-aware fine-tuning (`fake_quant_finetune` helpers): before export, the deploy model's
convolutions and linear layers see their weights and inputs through PyTorch's FakeQuantize
modules (weights per channel, symmetric int8; inputs per tensor, affine uint8, moving-average
observers) - the rounding int8 will apply - for a few epochs, so the weights learn to tolerate
it; the fake quantization is then taken out and the weights go through the same ONNX Runtime
static quantization (its calibrated scales are the ones deployed). Fine-tuning runs on the
BN-folded model, so the weights trained are the weights quantized.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from audioprune.errors import UserError
from audioprune.extras import require

__all__ = ["FP32_ONNX", "INT8_ONNX", "METHODS", "FakeQuantLayer", "quantize_onnx", "strip_fake_quant", "with_fake_quant"]

METHODS = ("static", "dynamic")
INT8_ONNX = "model.int8.onnx"  # in a quantized run directory: the deployable int8 model
FP32_ONNX = "model.fp32.onnx"  # ... and the fp32 graph it was quantized from


class _Reader:
    """ONNX Runtime's CalibrationDataReader over batches of features."""

    def __init__(self, name: str, batches: Iterable[np.ndarray]) -> None:
        self.name = name
        self._it: Iterator[np.ndarray] = iter(batches)

    def get_next(self) -> dict[str, np.ndarray] | None:
        batch = next(self._it, None)
        return None if batch is None else {self.name: np.ascontiguousarray(batch, np.float32)}


def quantize_onnx(fp32: bytes, calibration: Iterable[np.ndarray] | None = None, *,
                  method: str = "static", per_channel: bool = True) -> bytes:
    """int8 ONNX model from the serialised fp32 one (input name taken from the graph)."""
    ort_quant = require("onnxruntime.quantization", "int8 quantization")
    onnx = require("onnx", "int8 quantization")
    if method not in METHODS:
        raise UserError(f"unknown quantization `method` {method!r}; choose from {', '.join(METHODS)}")
    if method == "static" and calibration is None:
        raise UserError("static quantization needs calibration batches (training data)")
    with tempfile.TemporaryDirectory() as tmp:
        src, pre, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "pre.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(fp32)
        try:
            name = onnx.load(str(src)).graph.input[0].name
            ort_quant.quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
            if method == "dynamic":
                ort_quant.quantize_dynamic(str(pre), str(dst), per_channel=per_channel,
                                           weight_type=ort_quant.QuantType.QInt8)
            else:
                ort_quant.quantize_static(
                    str(pre), str(dst), _Reader(name, calibration or []),
                    quant_format=ort_quant.QuantFormat.QDQ, per_channel=per_channel,
                    weight_type=ort_quant.QuantType.QInt8,
                    activation_type=ort_quant.QuantType.QUInt8,
                    calibrate_method=ort_quant.CalibrationMethod.MinMax)
        except UserError:
            raise
        except Exception as exc:  # ORT raises many types; all mean "this graph cannot be"
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UserError(f"ONNX Runtime could not quantize the model ({type(exc).__name__}: "
                            f"{first})") from exc
        return dst.read_bytes()


# ------------------------------------------------------------------------ fake quantization


class FakeQuantLayer(nn.Module):
    """A conv or linear layer whose input and weight pass through FakeQuantize (int8 rounding
    simulated in float, straight-through gradients)."""

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        from torch.ao.quantization import FakeQuantize, MovingAverageMinMaxObserver
        from torch.ao.quantization.observer import MovingAveragePerChannelMinMaxObserver

        self.layer = layer
        self.act = FakeQuantize(observer=MovingAverageMinMaxObserver, quant_min=0, quant_max=255,
                                dtype=torch.quint8, qscheme=torch.per_tensor_affine)
        self.weight_fq = FakeQuantize(observer=MovingAveragePerChannelMinMaxObserver,
                                      quant_min=-128, quant_max=127, dtype=torch.qint8,
                                      qscheme=torch.per_channel_symmetric, ch_axis=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(x)
        w = self.weight_fq(self.layer.weight)
        layer = self.layer
        if isinstance(layer, nn.Linear):
            return F.linear(x, w, layer.bias)
        if isinstance(layer, nn.Conv2d):
            return F.conv2d(x, w, layer.bias, layer.stride, layer.padding, layer.dilation,
                            layer.groups)
        if isinstance(layer, nn.Conv1d):
            return F.conv1d(x, w, layer.bias, layer.stride, layer.padding, layer.dilation,
                            layer.groups)
        raise TypeError(f"fake quantization of {type(layer).__name__} is not supported")


def with_fake_quant(model: nn.Module) -> list[str]:
    """Wrap every Conv1d / Conv2d / Linear of `model` (a deploy model: real layers, BN folded)
    in a FakeQuantLayer, in place; returns the wrapped names."""
    names = [n for n, m in model.named_modules()
             if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear)) and n]
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, FakeQuantLayer(getattr(parent, child)))
    return names


def strip_fake_quant(model: nn.Module) -> nn.Module:
    """Undo `with_fake_quant` in place (the trained layers stay)."""
    for name, m in list(model.named_modules()):
        if isinstance(m, FakeQuantLayer):
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name) if parent_name else model
            setattr(parent, child, m.layer)
    return model


def describe_quantized(data: bytes) -> dict[str, Any]:
    """Counts of quantized operators in an int8 graph (QDQ pairs, integer ops)."""
    onnx = require("onnx", "int8 quantization")
    graph = onnx.load_from_string(data).graph
    ops: dict[str, int] = {}
    for node in graph.node:
        ops[node.op_type] = ops.get(node.op_type, 0) + 1
    return {"ops": dict(sorted(ops.items()))}
