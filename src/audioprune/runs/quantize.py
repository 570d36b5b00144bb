"""`audioprune quantize RUN --out RUN_INT8`: an int8 run, evaluated by ONNX Runtime.

The run's model in its inference form (quaternion layers fused, batch norm folded) is exported to
ONNX and quantized by ONNX Runtime (measure/quantize.py), calibrated on seeded batches of the
TRAINING split (never test data). The new run directory holds

  model.int8.onnx    the deployable int8 model: features (batch, C, frames, mels) -> logits
  model.fp32.onnx    the fp32 model it was quantized from, for comparison
  model.json / model.safetensors   the parent's fp32 weights, so that predict / export still
                     work on it in PyTorch (after quantization-aware fine-tuning the fine-tuned,
                     BN-folded weights are in the two ONNX files only)
  metrics.json       the int8 model's OWN test accuracy (or mAP), measured by ONNX Runtime on
                     the test split (features by the PyTorch front end, as deployed), beside the
                     fp32 ONNX model's on the same clips; `precision: int8`; `size_bytes` = the
                     int8 file's size; params and MACs are the parent's (quantization changes
                     neither; `params_deployed`: the int8 graph's, BN folded and quaternions
                     fused); `parent` (the fp32 run); `quantization` (method, per-channel,
                     calibration, fine-tuning, the operators in the int8 graph)

Quantization-aware fine-tuning (`qat_epochs` > 0) trains the BN-folded model with fake-quantized
weights and inputs (PyTorch's FakeQuantize) for that many epochs at the parent's learning rate /
10, keeps the best validation epoch, then quantizes as above.
"""

from __future__ import annotations

import copy
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from audioprune.errors import UserError
from audioprune.fileio import atomic_write, write_json
from audioprune.measure.counting import count_params
from audioprune.measure.onnx_export import export_onnx, inference_model
from audioprune.measure.quantize import (
    FP32_ONNX,
    INT8_ONNX,
    describe_quantized,
    quantize_onnx,
    strip_fake_quant,
    with_fake_quant,
)
from audioprune.pruning.calibration import calibration_batches
from audioprune.runs.data import prepare_data
from audioprune.runs.logs import environment, run_log
from audioprune.runs.results import headline_block, source_run_block
from audioprune.runs.run_dir import CONFIG_JSON, fp32_run, load_model, save_model, write_metrics
from audioprune.train.metrics import multi_label_metrics, single_label_metrics

log = logging.getLogger("audioprune")

__all__ = ["FP32_ONNX", "INT8_ONNX", "quantize_run"]


def _features(model: torch.nn.Module, dataset: Any, batch_size: int = 64
              ) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Features (PyTorch front end), targets and groups of every clip of `dataset`."""
    feats, targets, groups = [], [], []
    with torch.no_grad():
        for i in range(0, len(dataset), batch_size):
            items = [dataset[j] for j in range(i, min(i + batch_size, len(dataset)))]
            wave = torch.stack([w for w, _ in items])
            feats.append(model.features(wave).numpy())
            targets += [y for _, y in items]
    clips = getattr(dataset, "clips", [])
    groups = [c.group for c in clips] if clips else []
    return np.concatenate(feats), np.stack([np.asarray(t) for t in targets]), groups


def _ort_logits(data: bytes, feats: np.ndarray, batch: int = 64) -> np.ndarray:
    from audioprune.measure.latency import default_threads, ort_session

    session = ort_session(data, default_threads())
    name = session.get_inputs()[0].name
    return np.concatenate([session.run(None, {name: feats[i:i + batch].astype(np.float32)})[0]
                           for i in range(0, len(feats), batch)])


def _metrics(logits: np.ndarray, targets: np.ndarray, task: str, n: int,
             groups: list[str]) -> dict[str, Any]:
    if task == "multi-label":
        return multi_label_metrics(logits, targets)
    return single_label_metrics(logits, targets.astype(int), n, groups=groups or None)


def quantize_run(run: str | Path, out: str | Path, *, method: str = "static",
                 calibration_batches_n: int = 8, per_channel: bool = True, qat_epochs: int = 0,
                 data_root: str | None = None, seed: int = 0, batch_size: int = 32,
                 progress: bool = True, reduce_range: bool = True) -> dict[str, Any]:
    """Quantize run `run` into run directory `out`; returns its metrics.json. `progress`: the
    bars of decoding the data and of quantization-aware fine-tuning (on a terminal only).
    `reduce_range`: 7-bit weights, as in `quantize_onnx` (False: 8-bit, for VNNI or ARM CPUs)."""
    from audioprune.runs.data import DataSpec
    from audioprune.runs.parents import finetune_config, parent_data_spec
    from audioprune.train.fit import fit

    run, out = Path(run), Path(out)
    if run.resolve() == out.resolve():
        raise UserError("`out` must differ from the run being quantized")
    if (out / CONFIG_JSON).exists():
        raise UserError(f"{out} already holds a run; choose another `out`")
    if calibration_batches_n < 1:
        raise UserError(f"`calibration_batches` must be at least 1, got {calibration_batches_n}")
    if qat_epochs < 0:
        raise UserError(f"`qat_epochs` must be >= 0, got {qat_epochs}")
    fp32_run(run, "quantize")  # its model.safetensors are the fp32 parent's weights
    model, info = load_model(run)
    model.eval()
    spec = parent_data_spec(run, data_root=data_root)
    spec = DataSpec(**{**spec.__dict__, "frontend": model.frontend_cfg.to_dict()})
    out.mkdir(parents=True, exist_ok=True)
    config = {"command": "quantize", "parent": str(run.resolve()), "data": spec.__dict__,
              "quantize": {"method": method, "calibration_batches": calibration_batches_n,
                           "per_channel": per_channel, "qat_epochs": qat_epochs, "seed": seed,
                           "reduce_range": reduce_range},
              "environment": environment()}
    write_json(out / CONFIG_JSON, config)
    with run_log(out):
        t0 = time.perf_counter()
        bundle = prepare_data(spec, seed, progress=progress)
        task, n = info["task"], bundle.index.num_classes
        parent = source_run_block(run, model, bundle, finetune_config(run, progress=False),
                                  "quantize")
        deploy = inference_model(model)
        qat: dict[str, Any] | None = None
        if qat_epochs > 0:
            # fake quantization observes fp32 ranges: no autocast, whatever the parent trained in
            cfg = finetune_config(run, epochs=qat_epochs, seed=seed, progress=progress,
                                  precision="fp32", compile=False)
            deploy = copy.deepcopy(deploy).train()
            wrapped = with_fake_quant(deploy, reduce_range=reduce_range)
            log.info("quantization-aware fine-tuning: %d epochs, %d layers fake-quantized, lr %g",
                     qat_epochs, len(wrapped), cfg.lr)
            summary = fit(deploy, bundle.train, bundle.val, cfg, out / "qat")
            strip_fake_quant(deploy).eval()
            qat = {"epochs": qat_epochs, "lr": cfg.lr, "layers": len(wrapped),
                   "best_epoch": summary["best_epoch"] + 1, "train_seconds":
                   round(summary["train_seconds"], 2)}
        fp32 = export_onnx(deploy, deployed=True)
        calib = calibration_batches(bundle.train, calibration_batches_n, batch_size, seed) \
            if method == "static" else []
        with torch.no_grad():
            calib_feats = [model.features(wave).numpy() for wave, _ in calib]
        if method == "static":
            log.info("quantizing (static, %s weights) with %d calibration batches of training "
                     "clips", "per-channel" if per_channel else "per-tensor", len(calib_feats))
        else:  # dynamic: activations are quantized per batch at run time, nothing to calibrate
            log.info("quantizing (dynamic, %s weights)",
                     "per-channel" if per_channel else "per-tensor")
        int8 = quantize_onnx(fp32, calib_feats if method == "static" else None, method=method,
                             per_channel=per_channel, reduce_range=reduce_range)
        feats, targets, groups = _features(model, bundle.test)
        m8 = _metrics(_ort_logits(int8, feats), targets, task, n, groups)
        m32 = _metrics(_ort_logits(fp32, feats), targets, task, n, groups)
        atomic_write(out / INT8_ONNX, lambda p: p.write_bytes(int8))
        atomic_write(out / FP32_ONNX, lambda p: p.write_bytes(fp32))
        save_model(out, model, info["class_names"], task,
                   {"dataset": spec.dataset, "precision": "int8", "onnx": INT8_ONNX})
        head = "mAP" if task == "multi-label" else "accuracy"
        metrics = {
            "task": task, **m8, "precision": "int8", "params": parent["params"],
            "macs": parent["macs"], "params_deployed": count_params(deploy),
            "size_bytes": len(int8), "fp32_onnx_bytes": len(fp32),
            "size_ratio": round(len(int8) / len(fp32), 4), "dataset": bundle.index.name,
            "split": bundle.index.split_name, "num_classes": n,
            "class_names": bundle.index.class_names, "num_examples": int(len(feats)),
            "fp32_onnx": headline_block(m32), f"{head}_change_vs_fp32_onnx": m8[head] - m32[head],
            "parent": parent,
            "quantization": {"method": method, "per_channel": per_channel, "format":
                             "QDQ" if method == "static" else "dynamic (integer ops)",
                             "weights": "int8, symmetric, " + ("7-bit range (reduce_range)"
                                                               if reduce_range else "full range"),
                             "activations": "uint8" if method ==
                             "static" else "uint8, quantized per batch at run time",
                             "calibration_batches": len(calib_feats) if method == "static" else 0,
                             "calibration_examples": int(sum(len(f) for f in calib_feats))
                             if method == "static" else 0,
                             "calibration_split": "train", "qat": qat,
                             **describe_quantized(int8), "onnxruntime": _ort_version()},
            "train_seconds": round(time.perf_counter() - t0, 2),
            "environment": environment()}
        write_metrics(out, metrics)
        log.info("int8 %s %.4f (fp32 ONNX %.4f) on %d test clips; %s bytes (%.2f of fp32)",
                 head, m8[head], m32[head], len(feats), f"{len(int8):,}", metrics["size_ratio"])
    return metrics


def _ort_version() -> str | None:
    try:
        import onnxruntime

        return onnxruntime.__version__
    except ImportError:
        return None
