"""The GPU check: one script, prepared for the day a GPU is lent (about 15 minutes in all), that
finishes in at most 5 minutes on one modern GPU and writes ONE JSON (issue 30).

Sections, each timed, each `ok`, `skipped` (with the reason) or `failed` (with the error; the
other sections still run):

    environment      torch, CUDA, the GPU, bf16 support, NCCL, ONNX Runtime's providers
    train_precision  CNN14 training steps (audioprune's train_step: autocast, fp32 loss, a
                     GradScaler for fp16) at batch 32 on 10 s clips at 32 kHz, in fp32, bf16
                     and fp16, repeated on one fixed batch: clips/s, peak memory, every loss
                     finite and the loss falling (a model that learns one batch must fit it)
    memory_format    the same bf16 step with channels_last against without (TrainConfig's
                     option: whether it pays on this GPU)
    ddp              `torchrun --standalone --nproc_per_node=1` (a port the OS picks) running
                     this script's DDP worker: NCCL process group, CNN14 in
                     DistributedDataParallel with SyncBatchNorm (as fit() wraps it), a few
                     bf16 steps, an all-reduce checked
    prune            ap.prune on CNN14 on the GPU with the taylor criterion, its calibration
                     batches (features, labels) on the GPU: MACs / parameters before and after,
                     where the model and its gradients lived, the pruned model's forward
    latency          GPU latency of CNN14 against its pruned twin (the body on features,
                     batch 1 and 32; eager fp32 and bf16 autocast, CUDA-synchronised), and
                     ONNX Runtime's CUDA provider on the exported fp32 graphs when installed
    int8_cpu         the pruned CNN14 exported (ap.export_onnx) and quantized (ap.quantize_onnx,
                     static, calibrated on features), fp32 against int8 on the CPU beside it

A section that needs CUDA is `skipped` when CUDA is absent (the non-dry mode on a CPU machine);
a time budget (--budget-s, default 270 s) skips what would start after it.

--dry-run runs EVERY section on the CPU with tiny shapes (CNN14 x0.125 on 1 s clips at 16 kHz,
batch 4; the DDP worker on gloo) through the same code: tests/test_gpu_check.py runs it and
checks the JSON. Nothing here is timed in a test.

    .venv/bin/python bench/gpu_check.py --dry-run --out /tmp/gpu_check.json   # anywhere
    .venv/bin/python bench/gpu_check.py                  # -> bench/results/gpu_check.json

On a lent H200 (/work/.library/device/): its python3 has torch (CUDA), onnx, onnxruntime (the
CPU build: the ONNX Runtime CUDA timing is then skipped with the reason), onnxscript, numba,
scipy, scikit-learn and safetensors, but not torch-pruning, librosa and what librosa needs
(audioread, decorator, pooch, platformdirs, soundfile, cffi, pycparser, soxr) nor pydantic:
carry those as wheels (the device README says how) and run from the repository root

    PYTHONPATH=src python3 bench/gpu_check.py --out $OUT/gpu_check.json

then copy the JSON to bench/results/gpu_check.json here.
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "bench" / "results" / "gpu_check.json"
SECTIONS = ("environment", "train_precision", "memory_format", "ddp", "prune", "latency",
            "int8_cpu")
NEEDS_CUDA = {"train_precision", "memory_format", "ddp", "prune", "latency"}


@dataclass(frozen=True)
class Sizes:
    width: float
    batch: int
    clip_seconds: float
    sample_rate: int
    steps: int  # timed training steps (after `warmup`)
    warmup: int
    ddp_steps: int
    calib_batches: int
    latency_batches: tuple[int, ...]
    latency_calls: int
    cpu_batches: tuple[int, ...]  # int8_cpu: CNN14 at batch 32 takes seconds a call on a CPU


FULL = Sizes(width=1.0, batch=32, clip_seconds=10.0, sample_rate=32000, steps=20, warmup=3,
             ddp_steps=10, calib_batches=4, latency_batches=(1, 32), latency_calls=30,
             cpu_batches=(1, 8))
TINY = Sizes(width=0.125, batch=4, clip_seconds=1.0, sample_rate=16000, steps=6, warmup=1,
             ddp_steps=4, calib_batches=2, latency_batches=(1, 4), latency_calls=3,
             cpu_batches=(1, 4))
CLASSES = 10


def frontend(sizes: Sizes) -> Any:
    from audioprune.audio.frontend import FrontEndConfig

    return FrontEndConfig(sample_rate=sizes.sample_rate, n_fft=1024 if sizes.sample_rate >= 32000
                          else 512, hop_length=sizes.sample_rate // 100, n_mels=64, fmin=50.0,
                          fmax=min(14000.0, sizes.sample_rate / 2), clip_seconds=sizes.clip_seconds,
                          mean=-40.0, std=20.0)


def cnn14(sizes: Sizes, device: str) -> torch.nn.Module:
    """CNN14 (x sizes.width), dropout off: the checks fit one fixed batch, so the loss must fall."""
    from audioprune.models.registry import create_model

    torch.manual_seed(0)
    return create_model("cnn14", CLASSES, frontend=frontend(sizes), width=sizes.width,
                        dropout=0.0, head_dropout=0.0).to(device)


def batch(sizes: Sizes, device: str, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Waveforms (tones of 10 pitches, one per class, plus noise) and their labels."""
    g = torch.Generator().manual_seed(seed)
    n = int(sizes.sample_rate * sizes.clip_seconds)
    y = torch.arange(sizes.batch) % CLASSES
    t = torch.arange(n) / sizes.sample_rate
    wave = 0.3 * torch.sin(2 * math.pi * 110.0 * (y[:, None] + 1) * t) \
        + 0.05 * torch.randn(sizes.batch, n, generator=g)
    return wave.to(device), y.to(device)


def _loss(logits: torch.Tensor, y: torch.Tensor, _idx: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, y)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _reset_peak(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()


def _peak(device: str) -> dict[str, Any]:
    if device.startswith("cuda"):
        return {"peak_memory_mb": round(torch.cuda.max_memory_allocated() / 2**20, 1),
                "peak_memory_kind": "torch.cuda.max_memory_allocated"}
    return {"peak_memory_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
            "peak_memory_kind": "process max RSS (CPU; not reset between sections)"}


def _finite_and_falling(losses: list[float]) -> dict[str, Any]:
    finite = all(math.isfinite(v) for v in losses)
    head = float(np.mean(losses[:2]))
    tail = float(np.mean(losses[-2:]))
    return {"losses": [round(v, 5) for v in losses], "finite": finite,
            "falling": bool(finite and tail < head), "first_two_mean": round(head, 5),
            "last_two_mean": round(tail, 5)}


def train_steps(sizes: Sizes, device: str, precision: str, channels_last: bool = False,
                net_wrap: Callable[[torch.nn.Module], torch.nn.Module] | None = None
                ) -> dict[str, Any]:
    """`warmup` + `steps` training steps of CNN14 on one fixed batch; clips/s over the timed
    steps, peak memory, the losses of every step."""
    from audioprune.train.fit import TrainConfig, train_step
    from audioprune.train.precision import grad_scaler

    model = cnn14(sizes, device).train()
    if channels_last:
        model.to(memory_format=torch.channels_last)
    net = net_wrap(model) if net_wrap else model
    cfg = TrainConfig(device=device, precision=precision, lr=3e-4)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    scaler = grad_scaler(device, precision)
    wave, y = batch(sizes, device)
    idx = torch.arange(sizes.batch)
    losses = []
    _reset_peak(device)
    for _ in range(sizes.warmup):
        losses.append(float(train_step(net, opt, scaler, _loss, wave, y, idx, cfg)))
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(sizes.steps):
        losses.append(float(train_step(net, opt, scaler, _loss, wave, y, idx, cfg)))
    _sync(device)
    seconds = time.perf_counter() - t0
    out = {"precision": precision, "channels_last": channels_last, "batch": sizes.batch,
           "steps_timed": sizes.steps, "timed_seconds": round(seconds, 3),
           "clips_per_s": round(sizes.batch * sizes.steps / seconds, 2),
           "ms_per_step": round(1e3 * seconds / sizes.steps, 2), **_peak(device),
           **_finite_and_falling(losses)}
    if scaler.is_enabled():
        out["grad_scale_final"] = float(scaler.get_scale())
    return out


# -- sections ---------------------------------------------------------------------------------

def sec_environment(ctx: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {"torch": torch.__version__, "cuda_available": torch.cuda.is_available(),
                           "cuda_version": torch.version.cuda, "python": sys.version.split()[0],
                           "cpu_count": os.cpu_count()}
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        out.update(gpu=p.name, gpu_count=torch.cuda.device_count(),
                   capability=f"{p.major}.{p.minor}",
                   gpu_memory_gb=round(p.total_memory / 2**30, 1),
                   bf16_supported=torch.cuda.is_bf16_supported(),
                   cudnn=torch.backends.cudnn.version(),
                   cudnn_benchmark=torch.backends.cudnn.benchmark,
                   tf32_matmul=torch.backends.cuda.matmul.allow_tf32,
                   tf32_cudnn=torch.backends.cudnn.allow_tf32)
    out["nccl_available"] = bool(torch.distributed.is_available()
                                 and torch.distributed.is_nccl_available())
    try:
        import onnxruntime as ort

        out.update(onnxruntime=ort.__version__, ort_providers=ort.get_available_providers())
    except ImportError:
        out["onnxruntime"] = None
    return out


def _precisions(device: str) -> list[str]:
    from audioprune.train.precision import unsupported

    return [p for p in ("fp32", "bf16", "fp16") if unsupported(device, p) is None]


def sec_train_precision(ctx: dict[str, Any]) -> dict[str, Any]:
    sizes, device = ctx["sizes"], ctx["device"]
    runs = {p: train_steps(sizes, device, p) for p in _precisions(device)}
    out: dict[str, Any] = {"model": f"cnn14 x{sizes.width}", "clip_seconds": sizes.clip_seconds,
                           "sample_rate": sizes.sample_rate, "runs": runs}
    fp32 = runs["fp32"]["clips_per_s"]
    out["speedup_over_fp32"] = {p: round(r["clips_per_s"] / fp32, 3) for p, r in runs.items()}
    out["all_finite_and_falling"] = all(r["finite"] and r["falling"] for r in runs.values())
    return out


def sec_memory_format(ctx: dict[str, Any]) -> dict[str, Any]:
    sizes, device = ctx["sizes"], ctx["device"]
    precision = "bf16" if "bf16" in _precisions(device) else "fp32"
    plain = train_steps(sizes, device, precision)
    nhwc = train_steps(sizes, device, precision, channels_last=True)
    return {"precision": precision, "contiguous": plain, "channels_last": nhwc,
            "channels_last_speedup": round(nhwc["clips_per_s"] / plain["clips_per_s"], 3),
            "first_loss_gap": round(abs(nhwc["losses"][0] - plain["losses"][0]), 6)}


def ddp_worker(path: Path, dry: bool) -> int:
    """Run under torchrun: one DDP rank training CNN14 a few steps; writes its JSON to `path`."""
    import torch.distributed as dist
    from torch import nn

    sizes = TINY if dry else FULL
    local = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = not dry
    device = f"cuda:{local}" if cuda else "cpu"
    backend = "nccl" if cuda else "gloo"
    if cuda:
        torch.cuda.set_device(local)
    t0 = time.perf_counter()
    dist.init_process_group(backend=backend)
    try:
        rank, world = dist.get_rank(), dist.get_world_size()
        probe = torch.full((1,), float(rank + 1), device=device)
        dist.all_reduce(probe)
        expected = world * (world + 1) / 2
        precision = "bf16" if cuda and "bf16" in _precisions(device) else "fp32"

        def wrap(model: nn.Module) -> nn.Module:  # as train/fit.py wraps a model under torchrun
            return nn.parallel.DistributedDataParallel(
                nn.SyncBatchNorm.convert_sync_batchnorm(model) if cuda else model,
                device_ids=[local] if cuda else None)

        run = train_steps(Sizes(**{**sizes.__dict__, "steps": sizes.ddp_steps}), device,
                          precision, net_wrap=wrap)
        out = {"backend": dist.get_backend(), "world_size": world, "rank": rank,
               "device": device, "all_reduce": float(probe.item()),
               "all_reduce_ok": float(probe.item()) == expected,
               "sync_batchnorm": cuda, "wrapped": "DistributedDataParallel", **run,
               "seconds_total": round(time.perf_counter() - t0, 2)}
    finally:
        dist.destroy_process_group()
    path.write_text(json.dumps(out))
    return 0


def sec_ddp(ctx: dict[str, Any]) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        part = Path(tmp) / "ddp.json"
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc_per_node=1", str(Path(__file__).resolve()), "--ddp-worker", str(part)]
        if ctx["dry"]:
            cmd.append("--dry-run")
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=ctx["ddp_timeout"],
                              env={**os.environ, "PYTHONUNBUFFERED": "1"})
        if proc.returncode != 0 or not part.is_file():
            raise RuntimeError(f"torchrun exited {proc.returncode}: {proc.stderr[-2000:]}")
        out = json.loads(part.read_text())
    out["command"] = "torchrun --standalone --nproc_per_node=1 bench/gpu_check.py --ddp-worker"
    return out


def _features(model: torch.nn.Module, sizes: Sizes, device: str, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    wave, y = batch(sizes, device, seed)
    with torch.no_grad():
        return model.features(wave), y


def sec_prune(ctx: dict[str, Any]) -> dict[str, Any]:
    import audioprune as ap

    sizes, device = ctx["sizes"], ctx["device"]
    model = cnn14(sizes, device).eval()
    calib = [_features(model, sizes, device, seed=1 + k) for k in range(sizes.calib_batches)]
    example = calib[0][0][:1]
    seen: set[str] = set()
    handle = model.block1.register_forward_hook(lambda m, a, o: seen.add(str(o.device)))
    t0 = time.perf_counter()
    result = ap.prune(model, example, "taylor", ap.Plan(ratio=0.25), calibration_data=calib,
                      forward_fn="classify")
    seconds = time.perf_counter() - t0
    handle.remove()
    grads_on = {str(p.grad.device) for p in model.parameters() if p.grad is not None}
    with torch.no_grad():
        out = model.classify(calib[0][0])
    ctx["pruned"] = model
    ctx["original"] = cnn14(sizes, device).eval()
    ctx["calibration"] = calib
    return {"criterion": "taylor", "plan": "ratio 0.25", "prune_seconds": round(seconds, 2),
            "calibration_batches": len(calib), "calibration_device": str(calib[0][0].device),
            "forward_devices_seen": sorted(seen), "model_device_after":
            str(next(model.parameters()).device), "grad_devices_left": sorted(grads_on),
            "macs_before": int(result.macs_before), "macs_after": int(result.macs_after),
            "params_before": int(result.params_before), "params_after": int(result.params_after),
            "mac_ratio": round(result.macs_after / result.macs_before, 4),
            "param_ratio": round(result.params_after / result.params_before, 4),
            "pruned_output_shape": list(out.shape), "pruned_output_finite":
            bool(torch.isfinite(out).all())}


def _eager_ms(fn: Callable[[], Any], device: str, calls: int, budget_s: float = 1.0) -> float:
    """Median ms per call after 2 warm-up calls: at most `calls` calls, fewer (3 at least) when
    they would take more than about `budget_s` (a CPU model at batch 32 takes a second each)."""
    for _ in range(2):
        fn()
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    one = time.perf_counter() - t0
    times = [one]
    for _ in range(max(3, min(calls, int(budget_s / max(one, 1e-6)))) - 1):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return round(1e3 * float(np.median(times)), 4)


def _onnx_of(model: torch.nn.Module, feats: torch.Tensor) -> bytes:
    import audioprune as ap

    cpu = copy.deepcopy(model).cpu().eval()
    return ap.export_onnx(cpu, feats[:1].cpu(), forward_fn="classify").data


def _ort_ms(data: bytes, provider: str, x: np.ndarray, calls: int) -> float:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    session = ort.InferenceSession(data, sess_options=opts, providers=[provider])
    if session.get_providers()[0] != provider:
        raise RuntimeError(f"ONNX Runtime fell back to {session.get_providers()[0]}")
    name = session.get_inputs()[0].name
    fn = lambda: session.run(None, {name: x})  # noqa: E731
    return _eager_ms(fn, "cpu", calls)


def _needs_pruned(ctx: dict[str, Any]) -> None:
    if "pruned" not in ctx:
        raise RuntimeError("the prune section did not run, so there is no pruned twin")


def sec_latency(ctx: dict[str, Any]) -> dict[str, Any]:
    from audioprune.train.precision import autocast

    _needs_pruned(ctx)
    sizes, device = ctx["sizes"], ctx["device"]
    models = {"cnn14": ctx["original"], "cnn14_pruned": ctx["pruned"]}
    feats1 = ctx["calibration"][0][0][:1]
    out: dict[str, Any] = {"what": "ms per call of the body (classify) on log-mel features",
                           "eager": {}, "ort": {}}
    precisions = ["fp32"] + (["bf16"] if "bf16" in _precisions(device) else [])
    for name, model in models.items():
        out["eager"][name] = {}
        for b in sizes.latency_batches:
            x = feats1.expand(b, *feats1.shape[1:]).contiguous()
            for p in precisions:
                def call(model=model, x=x, p=p) -> None:
                    with torch.no_grad(), autocast(device, p):
                        model.classify(x)
                out["eager"][name][f"{p}_b{b}"] = _eager_ms(call, device, sizes.latency_calls)
    out["eager_pruned_over_original"] = {
        k: round(out["eager"]["cnn14_pruned"][k] / out["eager"]["cnn14"][k], 3)
        for k in out["eager"]["cnn14"]}
    provider = "CUDAExecutionProvider" if device.startswith("cuda") else "CPUExecutionProvider"
    try:
        import onnxruntime as ort

        available = ort.get_available_providers()
    except ImportError:
        available = []
    if provider not in available:
        out["ort"] = {"status": "skipped", "reason": f"{provider} is not installed (providers: "
                      f"{', '.join(available) or 'onnxruntime missing'}); pip install "
                      f"onnxruntime-gpu to time it"}
        return out
    ctx.setdefault("onnx", {})
    for name, model in models.items():
        data = ctx["onnx"].setdefault(name, _onnx_of(model, feats1))
        out["ort"][name] = {f"b{b}": _ort_ms(data, provider, np.ascontiguousarray(
            feats1.expand(b, *feats1.shape[1:]).cpu().numpy()), sizes.latency_calls)
            for b in sizes.latency_batches}
    out["ort"]["provider"] = provider
    return out


def sec_int8_cpu(ctx: dict[str, Any]) -> dict[str, Any]:
    import audioprune as ap
    import onnxruntime as ort

    sizes = ctx["sizes"]
    if "pruned" not in ctx:  # e.g. on a CPU machine without --dry-run: prune it here, on the CPU
        model = cnn14(sizes, "cpu").eval()
        calib = [_features(model, sizes, "cpu", seed=1 + k) for k in range(sizes.calib_batches)]
        ap.prune(model, calib[0][0][:1], "l1", ap.Plan(ratio=0.25), forward_fn="classify")
        ctx["pruned"], ctx["calibration"] = model, calib
    pruned = copy.deepcopy(ctx["pruned"]).cpu().eval()
    feats = [f.cpu() for f, _ in ctx["calibration"]]
    t0 = time.perf_counter()
    fp32 = ctx.get("onnx", {}).get("cnn14_pruned") or _onnx_of(pruned, feats[0])
    int8 = ap.quantize_onnx(fp32, [f[:8].numpy() for f in feats])  # 8 clips a batch suffice
    prepare = time.perf_counter() - t0
    threads = os.cpu_count() or 1
    out: dict[str, Any] = {"model": "cnn14_pruned", "threads": threads,
                           "export_and_quantize_seconds": round(prepare, 2),
                           "fp32_bytes": len(fp32), "int8_bytes": len(int8),
                           "size_ratio": round(len(int8) / len(fp32), 4), "ms": {}}
    x_all = np.ascontiguousarray(feats[0].numpy())
    sessions = {}
    for label, data in (("fp32", fp32), ("int8", int8)):
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.log_severity_level = 3
        sessions[label] = ort.InferenceSession(data, sess_options=opts,
                                               providers=["CPUExecutionProvider"])
    for b in sizes.cpu_batches:
        x = np.ascontiguousarray(np.broadcast_to(x_all[:1], (b, *x_all.shape[1:])))
        for label, s in sessions.items():
            out["ms"][f"{label}_b{b}"] = _eager_ms(
                lambda s=s, x=x: s.run(None, {s.get_inputs()[0].name: x}), "cpu",
                sizes.latency_calls)
    out["int8_over_fp32"] = {f"b{b}": round(out["ms"][f"int8_b{b}"] / out["ms"][f"fp32_b{b}"], 3)
                             for b in sizes.cpu_batches}
    ref = sessions["fp32"].run(None, {sessions["fp32"].get_inputs()[0].name: x_all})[0]
    got = sessions["int8"].run(None, {sessions["int8"].get_inputs()[0].name: x_all})[0]
    out["top1_agreement_with_fp32"] = float((ref.argmax(1) == got.argmax(1)).mean())
    out["max_abs_logit_diff"] = round(float(np.abs(ref - got).max()), 5)
    return out


RUNNERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "environment": sec_environment, "train_precision": sec_train_precision,
    "memory_format": sec_memory_format, "ddp": sec_ddp, "prune": sec_prune,
    "latency": sec_latency, "int8_cpu": sec_int8_cpu}


def run(dry: bool, sections: list[str], budget_s: float, device: str | None = None
        ) -> dict[str, Any]:
    """Every requested section in order; returns the JSON document."""
    cuda = torch.cuda.is_available()
    device = device or ("cpu" if dry else "cuda")
    ctx: dict[str, Any] = {"dry": dry, "sizes": TINY if dry else FULL, "device": device,
                           "ddp_timeout": 120 if dry else 240}
    start = time.perf_counter()
    doc: dict[str, Any] = {"mode": "dry-run" if dry else "gpu", "device": device,
                           "sizes": ctx["sizes"].__dict__, "budget_s": budget_s, "sections": {}}
    for name in sections:
        elapsed = time.perf_counter() - start
        if name in NEEDS_CUDA and device.startswith("cuda") and not cuda:
            doc["sections"][name] = {"status": "skipped", "reason": "CUDA is not available "
                                     "here (torch.cuda.is_available() is False); --dry-run runs "
                                     "this section on the CPU with tiny shapes"}
            continue
        if elapsed > budget_s:
            doc["sections"][name] = {"status": "skipped", "reason": f"time budget: {elapsed:.0f} s "
                                     f"of {budget_s:.0f} s spent before it started"}
            continue
        t0 = time.perf_counter()
        print(f"[{elapsed:6.1f} s] {name} ...", flush=True)
        try:
            result = {"status": "ok", **RUNNERS[name](ctx)}
        except Exception as exc:  # noqa: BLE001 - one failed section must not lose the rest
            result = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"[:2000],
                      "traceback": traceback.format_exc()[-3000:]}
        result["seconds"] = round(time.perf_counter() - t0, 2)
        doc["sections"][name] = result
        gc.collect()  # what the section left: its models and their cached GPU blocks
        if device.startswith("cuda") and cuda:
            torch.cuda.empty_cache()
        print(f"           {name}: {result['status']} in {result['seconds']} s", flush=True)
    doc["seconds"] = round(time.perf_counter() - start, 2)
    return doc


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dry-run", action="store_true",
                   help="every section on the CPU with tiny shapes (the test's mode)")
    p.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    p.add_argument("--budget-s", type=float, default=270.0,
                   help="sections that would start after this many seconds are skipped")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT)
    p.add_argument("--ddp-worker", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.ddp_worker is not None:
        return ddp_worker(args.ddp_worker, args.dry_run)
    doc = run(args.dry_run, args.sections, args.budget_s)
    from audioprune.fileio import write_json

    write_json(args.out, doc)
    bad = [n for n, s in doc["sections"].items() if s["status"] == "failed"]
    print(f"written to {args.out} in {doc['seconds']} s"
          + (f"; FAILED: {', '.join(bad)}" if bad else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
