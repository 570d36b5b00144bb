"""`ap.export_onnx`: ANY nn.Module to ONNX, batch norms folded into the layers they follow, and
the file proven to compute what the module computes (ONNX Runtime against PyTorch).

    exported = ap.export_onnx(model, example_inputs)          # -> ExportedOnnx
    exported.save("model.onnx")
    int8 = ap.quantize_onnx(exported, calibration_batches)    # bytes in, bytes out

What is exported: an eval-mode copy of the model with every registered custom layer (the
quaternion ones: audioprune.nn.layer_support) replaced by its real equivalent, and every batch
norm folded into the convolution (or, for a 2-d output, the linear layer) whose output it alone
reads. Which batch norm follows which layer is read from the traced graph (torch.export), not
guessed from module order, so a residual add, a shared layer or an op between the two leaves the
pair unfolded (and still correct). The run-directory export (measure/onnx_export.py, `audioprune
export`) is this for audioprune's own models, which know their pairs.

Inputs follow audioprune.model_inputs: a tensor is one positional input, a tuple several, a dict
one (or `forward_fn`). Axis 0 of every input and output is a dynamic batch axis (traced with a
batch of 2 when the example has 1, so it is not specialised); `dynamic_batch=False` keeps the
example's shapes. The exporter is torch.onnx's dynamo exporter, its graph rewriter off (see
measure/onnx_export.py for both choices).

Parity: the exported file runs in ONNX Runtime on the example inputs (and, with a dynamic batch,
on a batch of another size) against the ORIGINAL model in eval mode, unfused and unfolded; the
export fails with a UserError when max |ORT - PyTorch| exceeds tol x max(1, max |PyTorch|).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils import _pytree as pytree

from audioprune.errors import ArgumentError, ArgumentTypeError, UserError
from audioprune.extras import require
from audioprune.model_inputs import ForwardFn, map_tensors, output_tensors, resolve_forward
from audioprune.nn.fuse import fold_batchnorm

__all__ = ["ExportedOnnx", "conv_bn_pairs_traced", "export_onnx"]

PARITY_TOL = 1e-4
_CONV_OPS = ("conv1d", "conv2d", "conv3d", "convolution")
_BN_OPS = ("batch_norm", "_native_batch_norm_legit_no_training", "native_batch_norm",
           "_native_batch_norm_legit")


@dataclass
class ExportedOnnx:
    """An exported model: the serialised ONNX (`data`, also ``bytes(exported)``), its input and
    output names, the (layer, batch norm) pairs folded, and the parity measured."""

    data: bytes
    input_names: list[str]
    output_names: list[str]
    opset: int
    folded: list[tuple[str, str]] = field(default_factory=list)
    max_abs_diff: float = float("nan")  # ORT vs PyTorch on the checked inputs
    checked_batches: list[int] = field(default_factory=list)

    def __bytes__(self) -> bytes:
        return self.data

    def save(self, path: str | Path) -> Path:
        """Write the .onnx file (atomically) and return its path."""
        from audioprune.fileio import atomic_write

        path = Path(path)
        atomic_write(path, lambda p: p.write_bytes(self.data))
        return path


class _Call(nn.Module):
    """The model called as `forward_fn` says, on inputs passed as the exporter passes them."""

    def __init__(self, model: nn.Module, fn: ForwardFn, structure: str) -> None:
        super().__init__()
        self.model, self.fn, self.structure = model, fn, structure

    def forward(self, *args: Any) -> Any:
        inputs = args if self.structure == "tuple" else args[0]
        return self.fn(self.model, inputs)


def _structure(inputs: Any) -> tuple[str, tuple[Any, ...]]:
    if torch.is_tensor(inputs):
        return "tensor", (inputs,)
    if isinstance(inputs, Mapping):
        return "dict", (dict(inputs),)
    if isinstance(inputs, (tuple, list)):
        return "tuple", tuple(inputs)
    raise ArgumentTypeError(f"`example_inputs` must be a tensor, a tuple/list of tensors or a "
                            f"dict of tensors, got {type(inputs).__name__}")


def _tensors_of(args: tuple[Any, ...]) -> list[torch.Tensor]:
    return [t for t in pytree.tree_leaves(args) if torch.is_tensor(t)]


def _batched(args: tuple[Any, ...], size: int) -> tuple[Any, ...]:
    """Every tensor's first item repeated to a batch of `size` (0-d tensors kept)."""
    return map_tensors(args, lambda t: t if t.dim() == 0 else
                       t[:1].expand(size, *t.shape[1:]).contiguous())


def _dynamic_shapes(args: tuple[Any, ...]) -> tuple[Any, ...]:
    batch = torch.export.Dim("batch", min=1)
    return map_tensors(args, lambda t: None if t.dim() == 0 else {0: batch})


def _module_of(name: str) -> str:
    """'model.block.conv.weight' -> 'block.conv' (the wrapper's prefix dropped)."""
    owner = name.rsplit(".", 1)[0]
    return owner[len("model."):] if owner.startswith("model.") else ""


def _op_name(node: Any) -> str:
    target = node.target
    name = getattr(target, "__name__", str(target))  # e.g. "conv2d.default"
    return name.split(".")[0]


def conv_bn_pairs_traced(model: nn.Module, example_inputs: Any,
                         forward_fn: ForwardFn | str | None = None) -> list[tuple[str, str]]:
    """(layer, batch norm) module-name pairs where, in the traced eval-mode graph, the batch
    norm's input is the output of that conv (or 2-d linear) and nothing else reads it, each
    module called exactly once: the pairs folding cannot change the function of."""
    structure, args = _structure(example_inputs)
    wrapper = _Call(model, resolve_forward(forward_fn, model), structure).eval()
    with torch.no_grad():
        program = torch.export.export(wrapper, args, strict=False)
    params = program.graph_signature.inputs_to_parameters
    buffers = program.graph_signature.inputs_to_buffers
    layer_nodes: dict[str, list[Any]] = {}
    bn_nodes: dict[str, list[Any]] = {}
    for node in program.graph.nodes:
        if node.op != "call_function":
            continue
        op = _op_name(node)
        if op in _CONV_OPS or op == "linear":
            weight = node.args[1] if len(node.args) > 1 else None
            name = params.get(getattr(weight, "name", ""), None)
            if name is not None:
                layer_nodes.setdefault(_module_of(name), []).append(node)
        elif op in _BN_OPS:
            mean = node.args[3] if len(node.args) > 3 else None
            name = buffers.get(getattr(mean, "name", ""), None)
            if name is not None:
                bn_nodes.setdefault(_module_of(name), []).append(node)
    by_node = {id(n[0]): name for name, n in layer_nodes.items() if len(n) == 1}
    pairs = []
    for bn_name, nodes in bn_nodes.items():
        if len(nodes) != 1 or not bn_name:
            continue
        source = nodes[0].args[0]
        layer_name = by_node.get(id(source))
        if layer_name is None or len(source.users) != 1:
            continue
        layer = model.get_submodule(layer_name)
        bn = model.get_submodule(bn_name)
        if not isinstance(bn, nn.modules.batchnorm._BatchNorm) or bn.running_mean is None:
            continue
        if isinstance(layer, nn.Linear):
            val = source.meta.get("val")
            if val is None or val.dim() != 2:  # BatchNorm1d normalises dim 1: features only then
                continue
        elif not isinstance(layer, (nn.Conv1d, nn.Conv2d, nn.Conv3d)):
            continue
        pairs.append((layer_name, bn_name))
    return sorted(pairs)


def _flat_numpy(args: tuple[Any, ...]) -> list[np.ndarray]:
    return [t.detach().cpu().numpy() for t in _tensors_of(args)]


def export_onnx(model: nn.Module, example_inputs: Any, *, forward_fn: ForwardFn | str | None = None,
                opset: int = 18, fold_bn: bool = True, dynamic_batch: bool = True,
                input_names: list[str] | None = None, output_names: list[str] | None = None,
                check: bool = True, tol: float = PARITY_TOL,
                path: str | Path | None = None) -> ExportedOnnx:
    """`model` (any nn.Module) as ONNX; see the module doc. `fold_bn`: batch norms folded into
    the layer they follow (read from the traced graph); `check`: parity against PyTorch in ONNX
    Runtime within `tol` (relative to the output's scale), a UserError otherwise; `path`: also
    write the file there. The model itself is not changed."""
    onnx = require("onnx", "ONNX export")
    require("onnxscript", "ONNX export")
    from audioprune.measure.onnx_export import _quiet_exporter

    if not isinstance(model, nn.Module):
        raise ArgumentTypeError(f"`model` must be a torch nn.Module, got {type(model).__name__}")
    if isinstance(opset, bool) or not isinstance(opset, int) or not \
            7 <= opset <= onnx.defs.onnx_opset_version():
        raise ArgumentError(f"`opset` {opset!r}: onnx {onnx.__version__} knows opsets 7 to "
                            f"{onnx.defs.onnx_opset_version()}; the default is 18")
    if not (isinstance(tol, (int, float)) and tol > 0):
        raise ArgumentError(f"`tol` must be a positive number, got {tol!r}")
    structure, args = _structure(example_inputs)
    tensors = _tensors_of(args)
    if not tensors:
        raise ArgumentTypeError("`example_inputs` holds no tensor")
    if dynamic_batch and any(t.dim() == 0 or t.shape[0] < 1 for t in tensors):
        raise ArgumentError("`example_inputs`: with `dynamic_batch` every tensor needs a batch "
                            "axis (axis 0) with at least one example; pass dynamic_batch=False")
    fn = resolve_forward(forward_fn, model)
    was_training = model.training
    device = next((p.device for p in model.parameters()), tensors[0].device)
    model.eval()
    try:
        trace_args = args
        if dynamic_batch and all(t.dim() == 0 or t.shape[0] == 1 for t in tensors):
            trace_args = _batched(args, 2)  # a batch of 1 would be specialised to 1
        deploy = copy.deepcopy(model).cpu().eval()
        trace_args_cpu = map_tensors(trace_args, lambda t: t.detach().cpu())
        pairs: list[tuple[str, str]] = []
        with _quiet_exporter() as log:
            from audioprune.nn.fuse import fuse_quaternion

            deploy = fuse_quaternion(deploy).eval()
            if fold_bn:
                try:
                    pairs = conv_bn_pairs_traced(deploy, _unpack(structure, trace_args_cpu), fn)
                except Exception as exc:
                    raise _cannot_export(exc, dynamic_batch) from exc
                deploy = fold_batchnorm(deploy, pairs)
            wrapper = _Call(deploy, fn, structure).eval()
            names = input_names or _default_names(structure, trace_args_cpu)
            if output_names is None:
                with torch.no_grad():
                    n_out = len(output_tensors(wrapper(*trace_args_cpu)))
                output_names = ["output"] if n_out == 1 else [f"output_{i}" for i in range(n_out)]
            try:
                with torch.no_grad():
                    program = torch.onnx.export(
                        wrapper, trace_args_cpu, dynamo=True, external_data=False,
                        opset_version=opset, input_names=names, output_names=output_names,
                        dynamic_shapes=(_dynamic_shapes(trace_args_cpu),) if dynamic_batch else None,
                        optimize=False, verbose=False)
            except Exception as exc:  # the exporter raises many types; all mean "cannot export"
                raise _cannot_export(exc, dynamic_batch) from exc
        proto = program.model_proto
        got = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
        if got != opset:
            raise UserError(f"`opset` {opset}: the exporter could not convert the graph to opset "
                            f"{opset} and produced opset {got} ({log.reason()}); choose `opset` "
                            f"{got}")
        data = proto.SerializeToString()
        result = ExportedOnnx(data, [i.name for i in proto.graph.input],
                              [o.name for o in proto.graph.output], opset, pairs)
        if check:
            batches = [args] + ([_batched(args, _other_batch(tensors))] if dynamic_batch else [])
            diffs = []
            for batch in batches:
                diffs.append(_parity(data, model, fn, structure, batch, device, tol))
                result.checked_batches.append(int(_tensors_of(batch)[0].shape[0])
                                              if _tensors_of(batch)[0].dim() else 1)
            result.max_abs_diff = max(diffs)
    finally:
        model.train(was_training)
    if path is not None:
        result.save(path)
    return result


def _unpack(structure: str, args: tuple[Any, ...]) -> Any:
    return args if structure == "tuple" else args[0]


def _other_batch(tensors: list[torch.Tensor]) -> int:
    b = int(tensors[0].shape[0])
    return 3 if b != 3 else 2


def _default_names(structure: str, args: tuple[Any, ...]) -> list[str]:
    if structure == "tensor":
        return ["input"]
    if structure == "dict":
        return [str(k) for k in args[0]] if all(torch.is_tensor(v) for v in args[0].values()) \
            else [f"input_{i}" for i in range(len(_tensors_of(args)))]
    return [f"input_{i}" for i in range(len(_tensors_of(args)))]


def _cannot_export(exc: Exception, dynamic_batch: bool) -> UserError:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    hint = (" If the model fixes its batch size, pass `dynamic_batch` False." if dynamic_batch
            else "")
    return UserError(f"torch.onnx.export could not export the model ({type(exc).__name__}: "
                     f"{first[:300]}); a model torch.export cannot trace (data-dependent control "
                     f"flow, Python side effects) cannot be exported.{hint}")


def _parity(data: bytes, model: nn.Module, fn: ForwardFn, structure: str, args: tuple[Any, ...],
            device: torch.device, tol: float) -> float:
    from audioprune.measure.latency import default_threads, ort_session

    with torch.no_grad():
        ref = output_tensors(fn(model, _unpack(structure, map_tensors(args, lambda t: t.to(device)))))
    session = ort_session(data, default_threads())
    feeds = {i.name: np.ascontiguousarray(x) for i, x in zip(session.get_inputs(), _flat_numpy(args))}
    got = session.run(None, feeds)
    if len(got) != len(ref):
        raise UserError(f"ONNX parity check failed: ONNX Runtime returned {len(got)} outputs, "
                        f"PyTorch {len(ref)}")
    worst = 0.0
    for g, r in zip(got, ref):
        r_np = r.detach().float().cpu().numpy().astype(np.float64)
        if g.shape != r_np.shape:
            raise UserError(f"ONNX parity check failed: ONNX Runtime returned shape {g.shape}, "
                            f"PyTorch {r_np.shape}")
        diff = float(np.max(np.abs(g.astype(np.float64) - r_np))) if r_np.size else 0.0
        scale = max(1.0, float(np.max(np.abs(r_np)))) if r_np.size else 1.0
        if not diff <= tol * scale:
            raise UserError(f"ONNX parity check failed: max |ONNX Runtime - PyTorch| = {diff:.3g} "
                            f"> {tol:g} x {scale:.3g} at batch {len(g)}; the exported graph does "
                            f"not compute what the model computes")
        worst = max(worst, diff)
    return worst

