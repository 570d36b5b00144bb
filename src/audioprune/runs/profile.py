"""`profile_run(run_dir)`: everything a run's model costs, written to `run_dir/profile.json`.

Counts (parameters, MACs, size) describe the run's model as trained; latency and the ONNX file
describe its inference form (`onnx_export.inference_model`: quaternion layers fused to real
ones, batch norm folded), which is what one deploys. MACs and latency are per example of the
front end's clip length (1 s when it keeps full length); the body (features -> logits) and the
front end (waveform -> features) are reported separately.

profile.json layout (the report pipeline reads it; keep it stable, add keys rather than move):

    {
      "run": str, "arch": str, "quaternion": bool,
      "params": {"total": int, "trainable": int,
                 "per_layer": {module name: int},       # held by the module itself
                 "deployed": int},                      # the inference form's (fused: real kernels)
      "macs": {"model": int,                            # body, per example
               "frontend": int,                         # mel projection (+ delta filters);
               "per_layer": {module name: int},         #   the STFT's FFT is not counted
               "blocked": {"lanes": int, "model": int,  # output widths rounded up to this
                           "per_layer": {...}}},        #   CPU's SIMD lanes (measure/blocking)
      "size_bytes": {"fp32": int, "fp16": int, "int8": int},   # params + float buffers x 4/2/1 B
      "peak_activation_bytes": int,   # largest input + output of one layer at batch 1, fp32
      "threads": int,                 # intra-op threads for both runtimes
      "input": {"samples": int, "sample_rate": int, "features": [channels, frames, mels]},
      "latency_ms": {
        "eager":       {"b1": {"median", "p10", "p90", "repeats", "warmup"}, "b32": {...}},
        "onnxruntime": {"b1": {...}, "b32": {...}} | null     # null with onnx=False or no export
      },
      "frontend_latency_ms": {"eager": {"b1": {...}, "b32": {...}}},
      "onnx": {"opset": int, "size_bytes": int, "max_abs_diff": float} | {"error": str} | null,
      "precision": "fp32" | "int8",   # int8: a quantized run (audioprune quantize); its
                                      # model.int8.onnx is timed as latency_ms["onnxruntime-int8"]
                                      # beside the fp32 form it came from
      "onnx_int8": {"size_bytes": int} | absent,
      "model_sha256": str,            # the run's model files, to tell an earlier profile's model
      "onnx_kept": {"from", "why"} | absent,   # ONNX Runtime not timed now (no `measure`
                                      # extra, onnx=False): onnx, onnx_int8 and the onnxruntime
                                      # latencies are the earlier profile.json's (same model and
                                      # threads; otherwise they are dropped, with a warning)
      "complexity": {"precision", "params", "params_bytes", "macs_per_example", "clip_seconds",
                     "macs_per_second"},     # by the DCASE rules (measure/budget.py)
      "budget": {"name", "params_bytes", "macs_per_second", "pass": bool, "lines": [str]}
                | absent,                    # with `budget`
      "timed": str, "environment": {...}
    }

Batch keys are "b<N>" for each of `batch_sizes`. `peak_activation_bytes` is cheap and a lower
bound: the working memory a layer-by-layer runtime needs at least (branches or runtimes that keep
more tensors alive need more).
"""

from __future__ import annotations

import hashlib
import logging
import os
import platform
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from audioprune.errors import UserError
from audioprune.fileio import file_sha256, read_json, write_json
from audioprune.measure.blocking import blocked_macs
from audioprune.measure.budget import Budget, check_budget, complexity, parse_budget
from audioprune.measure.counting import (
    count_params,
    frontend_macs,
    layer_macs,
    layer_params,
    size_bytes,
)
from audioprune.measure.latency import (
    Timing,
    cpu_model,
    default_threads,
    eager_latency,
    ort_latency,
    ort_session,
)
from audioprune.measure.onnx_export import (
    DEFAULT_OPSET,
    Body,
    clip_samples,
    export_onnx,
    inference_model,
)
from audioprune.measure.quantize import INT8_ONNX
from audioprune.nn.quaternion import is_quaternion
from audioprune.runs.run_dir import MODEL_JSON, MODEL_WEIGHTS, PROFILE_JSON, load_model

__all__ = ["PROFILE_JSON", "profile_run"]

log = logging.getLogger("audioprune")


def _tensor_bytes(obj: Any) -> list[tuple[int, int]]:
    """(data_ptr, bytes) of every tensor in a module's input tuple or output."""
    if isinstance(obj, torch.Tensor):
        return [(obj.data_ptr(), obj.numel() * obj.element_size())]
    if isinstance(obj, (tuple, list)):
        return [t for o in obj for t in _tensor_bytes(o)]
    return []


@torch.no_grad()
def peak_activation_bytes(body: nn.Module, example: torch.Tensor) -> int:
    """Largest (input + output) bytes of a single leaf module when `body` runs `example`;
    a tensor passed through unchanged (an Identity left by BN folding) counts once."""
    peak = example.numel() * example.element_size()
    handles = []

    def hook(_mod: nn.Module, args: Any, out: Any) -> None:
        nonlocal peak
        tensors = dict(_tensor_bytes(args) + _tensor_bytes(out))  # same storage once
        peak = max(peak, sum(tensors.values()))

    for mod in body.modules():
        if not list(mod.children()):
            handles.append(mod.register_forward_hook(hook))
    try:
        body(example)
    finally:
        for h in handles:
            h.remove()
    return int(peak)


def _blocked(model: nn.Module, feats: torch.Tensor) -> dict[str, Any]:
    """Body MACs with output widths in this CPU's SIMD blocks (measure/blocking.py)."""
    counts = blocked_macs(model, feats, "classify")
    return {"lanes": counts.lanes, "model": counts.macs, "per_layer": counts.layers}


def _environment(threads: int) -> dict[str, Any]:
    env = {"torch": torch.__version__, "cpu_count": os.cpu_count(), "threads": threads,
           "machine": platform.machine(), "processor": cpu_model(),
           "python": platform.python_version()}
    try:
        import onnxruntime

        env["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        pass
    return env


def _check_batch_sizes(batch_sizes: tuple[int, ...]) -> tuple[int, ...]:
    sizes = tuple(int(b) for b in batch_sizes)
    if not sizes or any(b < 1 for b in sizes) or len(set(sizes)) != len(sizes):
        raise UserError(f"`batch_sizes` must be distinct positive integers, e.g. 1,32; got "
                        f"{','.join(map(str, batch_sizes)) or 'nothing'}")
    return sizes


def profile_run(run_dir: str | Path, *, batch_sizes: tuple[int, ...] = (1, 32),
                threads: int | None = None, onnx: bool = True, timing: Timing | None = None,
                opset: int = DEFAULT_OPSET, write: bool = True,
                budget: str | Budget | None = None) -> dict[str, Any]:
    """Profile the run's model (see the module docstring for what and the layout), write
    `run_dir/profile.json` atomically (unless `write=False`) and return it.

    `threads` defaults to torch's intra-op count (OMP_NUM_THREADS or the cores); `timing`
    (repetitions, warm-up, time budget per measurement) to `Timing()`; `onnx=False` skips the
    ONNX export and ONNX Runtime timing. `budget` ("dcase2024", "params_bytes=128k,macs=30M"
    or a Budget) is checked against the complexity at the run's precision.
    """
    run_dir = Path(run_dir)
    sizes = _check_batch_sizes(batch_sizes)
    threads = default_threads() if threads is None else int(threads)
    if threads < 1:
        raise UserError(f"`threads` must be >= 1, got {threads}")
    timing = timing or Timing()
    limits = parse_budget(budget) if isinstance(budget, str) else budget
    model, info = load_model(run_dir)
    model.eval()
    samples = clip_samples(model)
    deploy = inference_model(model)
    gen = torch.Generator().manual_seed(0)
    feats = torch.randn(1, *model.feature_shape(samples), generator=gen)
    wave = 0.1 * torch.randn(1, samples, generator=gen)

    log.info("counting parameters and MACs of %s", run_dir)
    per_layer_macs = layer_macs(model, samples)
    result: dict[str, Any] = {
        "run": str(run_dir),
        "arch": info.get("arch"),
        "quaternion": any(is_quaternion(m) for m in model.modules()),
        "params": {"total": count_params(model),
                   "trainable": sum(p.numel() for n, p in model.named_parameters()
                                    if p.requires_grad and not n.startswith("frontend.")),
                   "per_layer": layer_params(model),
                   "deployed": count_params(deploy)},
        "macs": {"model": sum(per_layer_macs.values()), "frontend": frontend_macs(model, samples),
                 "per_layer": per_layer_macs, "blocked": _blocked(model, feats)},
        "size_bytes": {"fp32": size_bytes(model, 4), "fp16": size_bytes(model, 2),
                       "int8": size_bytes(model, 1)},
        "peak_activation_bytes": peak_activation_bytes(Body(deploy), feats),
        "threads": threads,
        "input": {"samples": samples, "sample_rate": model.frontend_cfg.sample_rate,
                  "features": list(model.feature_shape(samples))},
    }

    log.info("timing PyTorch eager (%d thread(s), batch %s)", threads, ", ".join(map(str, sizes)))
    latency: dict[str, Any] = {"eager": eager_latency(deploy.classify, feats, sizes, threads,
                                                      timing),
                               "onnxruntime": None}
    front = eager_latency(model.features, wave, sizes, threads, timing)
    result["onnx"] = None
    if onnx:
        latency["onnxruntime"], result["onnx"] = _onnx_part(model, deploy, feats, sizes, threads,
                                                            timing, opset)
    int8_path = run_dir / INT8_ONNX
    result["precision"] = "int8" if int8_path.is_file() else "fp32"
    if int8_path.is_file() and onnx:
        log.info("timing the int8 model %s in ONNX Runtime", int8_path)
        try:
            latency["onnxruntime-int8"] = ort_latency(
                ort_session(int8_path.read_bytes(), threads), feats.numpy(), sizes, timing)
            result["onnx_int8"] = {"size_bytes": int8_path.stat().st_size}
        except UserError as exc:  # onnxruntime not installed: the rest is still worth writing
            log.warning("no ONNX Runtime timing of the int8 model: %s", exc)
    result["latency_ms"] = latency
    result["model_sha256"] = _model_sha256(run_dir)
    result["frontend_latency_ms"] = {"eager": front}
    # DCASE rules: parameters at the deployed precision (an int8 run stores the deployed form's,
    # BN folded and quaternions fused), MACs per second of audio
    deployed_params = result["params"]["deployed"] if result["precision"] == "int8" else \
        result["params"]["total"]
    result["complexity"] = complexity(deployed_params, result["macs"]["model"],
                                      samples / model.frontend_cfg.sample_rate,
                                      result["precision"])
    if limits is not None:
        ok, lines = check_budget(limits, result["complexity"])
        result["budget"] = {"name": limits.name, "params_bytes": limits.params_bytes,
                            "macs_per_second": limits.macs_per_second, "pass": ok,
                            "lines": lines}
    result["timed"] = ("inference form: eval mode, quaternion layers fused to real ones, batch "
                       "norm folded into convs; body = features -> logits")
    result["environment"] = _environment(threads)
    if write:
        _keep_earlier_onnx(run_dir / PROFILE_JSON, result)
        write_json(run_dir / PROFILE_JSON, result)
    return result


_ONNX_KEYS = ("onnx", "onnx_int8")  # and latency_ms' "onnxruntime" / "onnxruntime-int8"
_ORT_LATENCY = ("onnxruntime", "onnxruntime-int8")


def _model_sha256(run_dir: Path) -> str:
    """One digest of the files that are the run's model (weights, architecture, int8 graph)."""
    h = hashlib.sha256()
    for name in (MODEL_JSON, MODEL_WEIGHTS, INT8_ONNX):
        if (run_dir / name).is_file():
            h.update(name.encode() + b"\0" + file_sha256(run_dir / name).encode())
    return h.hexdigest()


def _same_model(old: dict[str, Any], new: dict[str, Any]) -> bool:
    """Whether an earlier profile measured the model profiled now: the same files where it
    recorded them, else (a profile from before that) the same architecture layer by layer."""
    if "model_sha256" in old:
        return old["model_sha256"] == new["model_sha256"]
    return all(old.get(k) == new.get(k) for k in ("arch", "input", "precision")) and \
        old.get("params", {}).get("per_layer") == new["params"]["per_layer"] and \
        old.get("macs", {}).get("per_layer") == new["macs"]["per_layer"]


def _keep_earlier_onnx(path: Path, result: dict[str, Any]) -> None:
    """A profile that could not time ONNX Runtime now (no `measure` extra, `onnx=False`, an
    export failure) keeps the ONNX Runtime columns of the profile.json it replaces, when that
    one measured the same model with the same threads (logged, and recorded as
    ``onnx_kept``); otherwise they are dropped with a warning saying why."""
    latency = result["latency_ms"]
    if latency.get("onnxruntime") is not None or not path.is_file():
        return
    try:
        old = read_json(path)
    except (OSError, ValueError):
        return
    if not isinstance(old, dict):
        return
    old_latency = old.get("latency_ms") or {}
    if not any(old_latency.get(k) for k in _ORT_LATENCY):
        return
    onnx = result.get("onnx")
    why = "onnx=False" if onnx is None else onnx.get("error", "no ONNX Runtime timing")
    if not _same_model(old, result):
        log.warning("the earlier %s timed ONNX Runtime on another model; its ONNX Runtime "
                    "columns are dropped (%s)", path, why)
        return
    if old.get("threads") != result["threads"]:
        log.warning("the earlier %s timed ONNX Runtime with %s thread(s), this profile uses %d; "
                    "its ONNX Runtime columns are dropped (%s)", path, old.get("threads"),
                    result["threads"], why)
        return
    for key in _ORT_LATENCY:
        if old_latency.get(key):
            latency[key] = old_latency[key]
    for key in _ONNX_KEYS:
        if old.get(key) is not None:
            result[key] = old[key]
    result["onnx_kept"] = {"from": str(path), "why": why}
    log.warning("kept the ONNX Runtime columns of the earlier %s (same model, %d thread(s)): "
                "not measured now (%s)", path, result["threads"], why)


def _onnx_part(model: nn.Module, deploy: nn.Module, feats: torch.Tensor, sizes: tuple[int, ...],
               threads: int, timing: Timing, opset: int) -> tuple[Any, dict[str, Any]]:
    """(ONNX Runtime latency or None, the "onnx" block). An export failure is recorded, not
    raised: the counts and eager timings are still worth writing."""
    log.info("exporting the body to ONNX (opset %d) and timing ONNX Runtime", opset)
    try:
        data = export_onnx(model, opset=opset)  # type: ignore[arg-type]
    except UserError as exc:
        log.warning("no ONNX Runtime timing: %s", exc)
        return None, {"error": str(exc)}
    session = ort_session(data, threads)
    probe = torch.randn(2, *feats.shape[1:], generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = deploy.classify(probe).numpy()  # type: ignore[operator]
    got = session.run(None, {session.get_inputs()[0].name: probe.numpy()})[0]
    block = {"opset": opset, "size_bytes": len(data),
             "max_abs_diff": float(np.max(np.abs(got - ref)))}
    return ort_latency(session, feats.numpy(), sizes, timing), block
