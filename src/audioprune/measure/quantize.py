"""int8 models: post-training quantization with ONNX Runtime, and fake-quantized fine-tuning.

Post-training (`quantize_onnx`): the fp32 ONNX graph (quaternion layers fused, batch norm folded:
measure.onnx_export) goes through ONNX Runtime's own tools - `quant_pre_process` (shape inference,
graph optimisation), then `quantize_static` in the QDQ format with int8 weights (per output
channel by default, symmetric) and uint8 activations whose ranges come from calibration batches
(min/max), or `quantize_dynamic` (int8 weights, activations quantized per batch at run time, no
calibration). These are the tools ONNX Runtime documents for CPU deployment; we do not write our
own quantizer.

A graph that includes the log-mel front end (a waveform input: an STFT node) keeps the front end
in fp32 by default (`keep_frontend_fp32`): its mel projection is a MatMul ONNX Runtime would
quantize like any other, but power spectra span some 13 decades (1e-10 to 1e3) and uint8
activations keep about 2 of them before the log, so quantizing it destroys the features. The
front end is every node the first convolution after the STFT depends on (`frontend_nodes`); a
graph where no convolution follows the STFT is refused with the reason, rather than quantized
blind. ONNX Runtime's own exclusions are exposed as they are: `nodes_to_exclude` (node names),
`op_types_to_quantize`, and `op_types_to_exclude` (every node of those types excluded by name).

Quantization-aware fine-tuning (`fake_quant_finetune` helpers): before export, the deploy model's
convolutions and linear layers see their weights and inputs through PyTorch's FakeQuantize
modules (weights per channel, symmetric int8; inputs per tensor, affine uint8, moving-average
observers) - the rounding int8 will apply - for a few epochs, so the weights learn to tolerate
it; the fake quantization is then taken out and the weights go through the same ONNX Runtime
static quantization (its calibrated scales are the ones deployed). Fine-tuning runs on the
BN-folded model, so the weights trained are the weights quantized.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from audioprune.errors import ArgumentError, ArgumentTypeError, UserError
from audioprune.extras import require

log = logging.getLogger("audioprune")

__all__ = ["FP32_ONNX", "INT8_ONNX", "METHODS", "FakeQuantLayer", "frontend_nodes", "quantize_onnx",
           "strip_fake_quant", "with_fake_quant"]

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


class _ToDebugLog(logging.Handler):
    """Other libraries' root-logger records as audioprune debug lines."""

    def emit(self, record: logging.LogRecord) -> None:
        if not record.name.startswith("audioprune"):
            log.debug("%s: %s", record.name, record.getMessage())


@contextmanager
def _root_logging_kept() -> Iterator[None]:
    """ONNX Runtime's quantizer logs through the root logger (``logging.info(...)``), which
    configures an unconfigured root logger on first use (``logging.basicConfig``): every
    audioprune log line after that was printed twice. While it runs, an unconfigured root
    logger holds a handler passing other libraries' records to the debug log instead."""
    root = logging.getLogger()
    if root.handlers:  # configured by the application: leave it alone
        yield
        return
    handler = _ToDebugLog()
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)


_SPECTRAL_OPS = ("STFT", "DFT")
_BODY_OPS = ("Conv",)


def frontend_nodes(graph: Any) -> list[str] | None:
    """Names of the nodes of an ONNX graph's front end: [] when it has no STFT / DFT (features
    in), the nodes the first Conv after the STFT depends on otherwise (the STFT, power, mel
    MatMul, log, standardisation and the input's padding and reshapes), None when no Conv
    follows the STFT, so the front end's end cannot be told."""
    nodes = list(graph.node)  # ONNX keeps nodes in topological order
    spectral = [n for n in nodes if n.op_type in _SPECTRAL_OPS]
    if not spectral:
        return []
    consumers: dict[str, list[Any]] = {}
    producer: dict[str, Any] = {}
    for n in nodes:
        for name in n.input:
            consumers.setdefault(name, []).append(n)
        for name in n.output:
            producer[name] = n
    below: set[int] = set()
    todo = list(spectral)
    while todo:
        n = todo.pop()
        if id(n) in below:
            continue
        below.add(id(n))
        todo += [c for out in n.output for c in consumers.get(out, [])]
    first = next((n for n in nodes if n.op_type in _BODY_OPS and id(n) in below), None)
    if first is None:
        return None
    front: dict[int, Any] = {}
    todo = [producer[first.input[0]]] if first.input[0] in producer else []
    while todo:
        n = todo.pop()
        if id(n) in front:
            continue
        front[id(n)] = n
        todo += [producer[i] for i in n.input if i in producer]
    return [n.name for n in nodes if id(n) in front and n.name]


def _to_bytes(model: Any) -> bytes:
    """The serialised ONNX of bytes, an ExportedOnnx (anything with __bytes__) or a file path."""
    if isinstance(model, bytes):
        return model
    if isinstance(model, (str, Path)):
        try:
            return Path(model).read_bytes()
        except OSError as exc:
            raise UserError(f"cannot read the ONNX model {model}: {exc.strerror}") from None
    if hasattr(model, "__bytes__"):
        return bytes(model)
    raise ArgumentTypeError(f"`fp32` must be ONNX bytes, an ap.export_onnx result or a path, got "
                            f"{type(model).__name__}")


def _exclusions(original: Any, graph: Any, keep_frontend_fp32: bool,
                nodes_to_exclude: Iterable[str], op_types_to_exclude: Iterable[str]) -> list[str]:
    """The node names ONNX Runtime must leave in fp32 in the pre-processed `graph`."""
    names = {n.name for n in graph.node}
    excluded: list[str] = []
    given = [str(n) for n in nodes_to_exclude]
    unknown = [n for n in given if n not in names and n not in {m.name for m in original.node}]
    if unknown:
        shown = ", ".join(sorted(names - {""})[:8])
        raise ArgumentError(f"`nodes_to_exclude`: no node named {', '.join(unknown[:5])} in the "
                        f"graph (its nodes are named like {shown}, ...)")
    for n in given:
        if n in names:
            excluded.append(n)
        else:
            log.info("`nodes_to_exclude` %s: merged away by ONNX Runtime's pre-processing", n)
    types = {str(t) for t in op_types_to_exclude}
    excluded += [n.name for n in graph.node if n.op_type in types and n.name]
    if keep_frontend_fp32:
        front = frontend_nodes(graph)
        if front is None:
            raise UserError("the graph starts with an STFT (a front end) but no convolution "
                            "follows it, so where the front end ends cannot be told and it "
                            "would be quantized with the rest: give its nodes in "
                            "`nodes_to_exclude`, or pass `keep_frontend_fp32` False to quantize "
                            "everything")
        if front:
            log.info("front end kept in fp32: %d nodes (STFT, mel MatMul, log, ...)", len(front))
        excluded += front
    return sorted(set(excluded))


def quantize_onnx(fp32: Any, calibration: Iterable[np.ndarray] | None = None, *,
                  method: str = "static", per_channel: bool = True,
                  keep_frontend_fp32: bool = True, nodes_to_exclude: Iterable[str] = (),
                  op_types_to_exclude: Iterable[str] = (),
                  op_types_to_quantize: Iterable[str] | None = None,
                  reduce_range: bool = True) -> bytes:
    """int8 ONNX model from the fp32 one (bytes, an ap.export_onnx result or a path; the input
    name is taken from the graph). `keep_frontend_fp32`: a log-mel front end in the graph stays
    fp32 (module doc); `nodes_to_exclude` / `op_types_to_exclude` stay fp32 too;
    `op_types_to_quantize` limits quantization to those op types (ONNX Runtime's default:
    every type it can quantize).

    `reduce_range` (default True) stores weights in 7 bits (|w| <= 64): ONNX Runtime's uint8 x
    int8 kernels sum pairs of products in 16 bits on x86 CPUs without VNNI (SSE4.1, AVX2,
    AVX-512 before VNNI) and saturate there, so a full-range int8 model can be far from its fp32
    model on the machine it is deployed to (an affine 16 -> 4 layer: max error 1.20 with full
    range against 0.08 with 7 bits, 5 % of the output range being 0.28; AMD EPYC, AVX2,
    onnxruntime 1.32, 2026-12-07). Pass False only for CPUs with VNNI or ARM."""
    ort_quant = require("onnxruntime.quantization", "int8 quantization")
    onnx = require("onnx", "int8 quantization")
    if method not in METHODS:
        raise UserError(f"unknown quantization `method` {method!r}; choose from {', '.join(METHODS)}")
    if method == "static" and calibration is None:
        raise UserError("static quantization needs calibration batches (training data)")
    for arg, value in (("nodes_to_exclude", nodes_to_exclude),
                       ("op_types_to_exclude", op_types_to_exclude),
                       ("op_types_to_quantize", op_types_to_quantize or ())):
        if isinstance(value, str):
            raise ArgumentTypeError(f"`{arg}` takes a list of names, got the string {value!r}")
    data = _to_bytes(fp32)
    with tempfile.TemporaryDirectory() as tmp, _root_logging_kept():
        src, pre, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "pre.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(data)
        try:
            original = onnx.load(str(src)).graph
            name = original.input[0].name
            ort_quant.quant_pre_process(str(src), str(pre), skip_symbolic_shape=True)
            excluded = _exclusions(original, onnx.load(str(pre)).graph, keep_frontend_fp32,
                                   nodes_to_exclude, op_types_to_exclude)
            types = list(op_types_to_quantize) if op_types_to_quantize is not None else None
            if method == "dynamic":
                ort_quant.quantize_dynamic(str(pre), str(dst), per_channel=per_channel,
                                           weight_type=ort_quant.QuantType.QInt8,
                                           reduce_range=reduce_range,
                                           nodes_to_exclude=excluded,
                                           op_types_to_quantize=types)
            else:
                ort_quant.quantize_static(
                    str(pre), str(dst), _Reader(name, calibration or []),
                    quant_format=ort_quant.QuantFormat.QDQ, per_channel=per_channel,
                    weight_type=ort_quant.QuantType.QInt8,
                    activation_type=ort_quant.QuantType.QUInt8, reduce_range=reduce_range,
                    calibrate_method=ort_quant.CalibrationMethod.MinMax,
                    nodes_to_exclude=excluded, op_types_to_quantize=types)
        except (UserError, ArgumentError):
            raise
        except Exception as exc:  # ORT raises many types; all mean "this graph cannot be"
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise UserError(f"ONNX Runtime could not quantize the model ({type(exc).__name__}: "
                            f"{first})") from exc
        return dst.read_bytes()


# ------------------------------------------------------------------------ fake quantization


class FakeQuantLayer(nn.Module):
    """A conv or linear layer whose input and weight pass through FakeQuantize (int8 rounding
    simulated in float, straight-through gradients). `reduce_range` rounds the weights to the
    7-bit grid (-64..64) that `quantize_onnx` deploys by default, else to -127..127 (not -128:
    ONNX Runtime's symmetric weights never use it, and PyTorch's scale would then be 1/127.5 of
    the largest weight instead of 1/127), so training sees the rounding the int8 file will have."""

    def __init__(self, layer: nn.Module, *, reduce_range: bool = True) -> None:
        super().__init__()
        from torch.ao.quantization import FakeQuantize, MovingAverageMinMaxObserver
        from torch.ao.quantization.observer import MovingAveragePerChannelMinMaxObserver

        self.layer = layer
        self.act = FakeQuantize(observer=MovingAverageMinMaxObserver, quant_min=0, quant_max=255,
                                dtype=torch.quint8, qscheme=torch.per_tensor_affine)
        self.weight_fq = FakeQuantize(observer=MovingAveragePerChannelMinMaxObserver,
                                      # ONNX Runtime's symmetric int8 ranges: +-64 or +-127
                                      quant_min=-64 if reduce_range else -127,
                                      quant_max=64 if reduce_range else 127, dtype=torch.qint8,
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


def with_fake_quant(model: nn.Module, *, reduce_range: bool = True) -> list[str]:
    """Wrap every Conv1d / Conv2d / Linear of `model` (a deploy model: real layers, BN folded)
    in a FakeQuantLayer, in place; returns the wrapped names. `reduce_range` as in
    `quantize_onnx`: pass the same value to both."""
    names = [n for n, m in model.named_modules()
             if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear)) and n]
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, FakeQuantLayer(getattr(parent, child), reduce_range=reduce_range))
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
