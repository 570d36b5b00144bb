"""Quaternion convs against real convs of the same width: training step and inference latency.

A side-by-side, not a timed test. For CNN14-width layers (3x3, same padding, no bias) it times:

  train    one training step (forward + backward, input gradient included) of one QConv2d and of
           one nn.Conv2d of the same width, on a batch of 32;
  infer    inference (eval, no_grad) of one CNN14 conv block -- conv-BN-ReLU-conv-BN-ReLU,
           PANNs' ConvBlock without its pooling -- as the unfused QCNN block (QConv2d +
           QBatchNorm2d, the kernel assembled on every call), the fused QCNN block
           (`fuse_quaternion`: nn.Conv2d + nn.BatchNorm2d with the Hamilton kernels
           precomputed) and the real CNN block, at batch 1 and 32.

Sizes (batch x channels x frames x mels), chosen to run in about two minutes on 2 CPU cores:
  256 -> 256 on 32 x 256 x 64 x 16   (CNN14 block 3 on a ~2.5 s clip at 32 kHz)
  512 -> 512 on 32 x 512 x 32 x 8    (block 4 on the same clip: both axes pooled by 2)
Each conv of either size is 19.3 GMACs at batch 32 (0.6 GMACs at batch 1).

Counts: every row also holds the parameters and the MACs per example (FlopCounterMode, which
sees the one real convolution a QConv2d runs) of each variant, and `models` holds those of whole
models, learned and deployed (fused) forms, counted on the meta device (no weights, no time):
dcase21net / qdcase21net (10 classes), cnn6 / qcnn6 and cnn14 / qcnn14 (527 classes), on
create_model's default front end (PANNs AudioSet: 32 kHz, 64 mels, 10 s clips; the quaternion
twins take its 4-channel stack, so their first conv has 4x the input channels).

Every variant of one row is timed round-robin (q, r, q, r, ...) after warm-up runs, so load
changes on a shared machine hit all variants alike; each time is the median over repetitions and
each ratio the median of the per-round ratios (both variants timed back to back). On a shared
machine wall time includes waiting for a core; the JSON also holds the process CPU time (at one
thread, the time the kernels actually ran) and its ratios. Goals (issue): fused QCNN within 5 %
of the real CNN, quaternion training step within 1.3x of the real one.

    .venv/bin/python bench/bench_quaternion.py             # writes bench/results/quaternion.json
    .venv/bin/python bench/bench_quaternion.py --threads 1 # steadier on a shared machine (the
                                                           # committed results were taken so)
    .venv/bin/python bench/bench_quaternion.py --quick     # small sizes, a smoke run
    .venv/bin/python bench/bench_quaternion.py --profile   # where a QConv2d training step goes
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from audioprune.fileio import write_json
from audioprune.measure.counting import count_macs, count_params
from audioprune.models.panns import ConvBlock
from audioprune.models.registry import create_model
from audioprune.nn.fuse import fuse_quaternion
from audioprune.nn.quaternion import QBatchNorm2d, QConv2d

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "quaternion.json"
SIZES = [  # (channels, frames, mels)
    (256, 64, 16),
    (512, 32, 8),
]
QUICK_SIZES = [(64, 32, 16), (128, 16, 8)]
TRAIN_BATCH = 32
INFER_BATCHES = (1, 32)


def qconv(c: int) -> QConv2d:
    return QConv2d(c, c, 3, padding=1, bias=False)


def rconv(c: int) -> nn.Conv2d:
    return nn.Conv2d(c, c, 3, padding=1, bias=False)


def block(c: int, quaternion: bool) -> nn.Module:
    """PANNs ConvBlock (two 3x3 convs, BN, ReLU), no pooling; BN statistics made non-trivial."""
    if quaternion:
        b = ConvBlock([c, c, c], 3, False, lambda i, o, k: QConv2d(i, o, k, padding=1, bias=False),
                      lambda n: QBatchNorm2d(n, mode="real"))
    else:
        b = ConvBlock([c, c, c], 3, False, lambda i, o, k: nn.Conv2d(i, o, k, padding=1,
                                                                   bias=False), nn.BatchNorm2d)
    for m in b.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 2.0)
    return b.eval()


MODEL_PAIRS = [("dcase21net", "qdcase21net", 10), ("cnn6", "qcnn6", 527), ("cnn14", "qcnn14", 527)]


def counts(module: nn.Module, shape: tuple[int, ...]) -> dict[str, int]:
    """Parameters and MACs per example (one input of `shape` without the batch axis)."""
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        module(torch.zeros(1, *shape))
    return {"params": sum(p.numel() for p in module.parameters()),
            "macs": int(counter.get_total_flops()) // 2}


def model_counts() -> list[dict[str, Any]]:
    """Whole models: parameters learned and deployed (fused), MACs per example (body)."""
    rows = []
    for real, quat, classes in MODEL_PAIRS:
        for name in (real, quat):
            with torch.device("meta"):
                model = create_model(name, classes)
            rows.append({"model": name, "classes": classes, "params": count_params(model),
                         "params_deployed": count_params(fuse_quaternion(model)),
                         "macs": count_macs(model)["model"],
                         "input": list(model.feature_shape(model.frontend_cfg.clip_samples))})
    return rows


class Timings:
    """Wall and process-CPU seconds of each variant, one entry per round-robin round."""

    def __init__(self, names: list[str]) -> None:
        self.wall: dict[str, list[float]] = {n: [] for n in names}
        self.cpu: dict[str, list[float]] = {n: [] for n in names}

    def ms(self, name: str, cpu: bool = False) -> float:
        return 1e3 * statistics.median((self.cpu if cpu else self.wall)[name])

    def ratio(self, num: str, den: str, cpu: bool = False) -> float:
        """Median over rounds of num / den, both timed in the same round."""
        t = self.cpu if cpu else self.wall
        return statistics.median(a / b for a, b in zip(t[num], t[den]))


def round_robin(fns: dict[str, Callable[[], None]], warmup: int, reps: int) -> Timings:
    """Time each fn `reps` times, interleaved, after `warmup` calls each."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times = Timings(list(fns))
    for _ in range(reps):
        for name, fn in fns.items():
            wall, cpu = time.perf_counter(), time.process_time()
            fn()
            times.cpu[name].append(time.process_time() - cpu)
            times.wall[name].append(time.perf_counter() - wall)
    return times


def train_step(layer: nn.Module, x: torch.Tensor, grad: torch.Tensor) -> Callable[[], None]:
    def step() -> None:
        layer.zero_grad(set_to_none=True)
        xx = x.detach().requires_grad_()
        layer(xx).backward(grad)
    return step


def infer(model: nn.Module, x: torch.Tensor) -> Callable[[], None]:
    def run() -> None:
        with torch.no_grad():
            model(x)
    return run


def bench_train(c: int, t: int, m: int, batch: int, warmup: int, reps: int) -> dict[str, Any]:
    torch.manual_seed(0)
    x = torch.randn(batch, c, t, m)
    grad = torch.randn(batch, c, t, m)
    tm = round_robin({"qconv": train_step(qconv(c), x, grad),
                      "conv": train_step(rconv(c), x, grad)}, warmup, reps)
    return {"kind": "train", "channels": c, "input": [batch, c, t, m],
            "counts": {"qconv": counts(qconv(c), (c, t, m)), "conv": counts(rconv(c), (c, t, m))},
            "qconv_ms": tm.ms("qconv"), "conv_ms": tm.ms("conv"),
            "ratio_q_over_real": tm.ratio("qconv", "conv"),
            "cpu_qconv_ms": tm.ms("qconv", cpu=True), "cpu_conv_ms": tm.ms("conv", cpu=True),
            "cpu_ratio_q_over_real": tm.ratio("qconv", "conv", cpu=True)}


def bench_infer(c: int, t: int, m: int, batch: int, warmup: int, reps: int) -> dict[str, Any]:
    torch.manual_seed(0)
    qblock = block(c, quaternion=True)
    fused = fuse_quaternion(qblock).eval()
    real = block(c, quaternion=False)
    x = torch.randn(batch, c, t, m)
    with torch.no_grad():
        assert torch.allclose(fused(x), qblock(x), atol=1e-4, rtol=1e-4)
    tm = round_robin({"unfused": infer(qblock, x), "fused": infer(fused, x),
                      "real": infer(real, x)}, warmup, reps)
    row: dict[str, Any] = {"kind": "infer", "channels": c, "input": [batch, c, t, m],
                           "counts": {v: counts(b, (c, t, m)) for v, b in
                                      (("unfused", qblock), ("fused", fused), ("real", real))}}
    for cpu, prefix in ((False, ""), (True, "cpu_")):
        row.update({f"{prefix}{v}_ms": tm.ms(v, cpu) for v in ("unfused", "fused", "real")})
        row[f"{prefix}unfused_over_real"] = tm.ratio("unfused", "real", cpu)
        row[f"{prefix}fused_over_real"] = tm.ratio("fused", "real", cpu)
    return row


def profile_step(c: int, t: int, m: int, batch: int) -> None:
    from torch.profiler import profile
    x, grad = torch.randn(batch, c, t, m), torch.randn(batch, c, t, m)
    for name, layer in (("QConv2d", qconv(c)), ("nn.Conv2d", rconv(c))):
        step = train_step(layer, x, grad)
        step()
        with profile() as prof:
            step()
        print(f"\n{name} {c}->{c}, input {batch}x{c}x{t}x{m}: one training step")
        print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))


def print_table(rows: list[dict[str, Any]]) -> None:
    print("\ntraining step (forward + backward), median wall ms; ratios: median per-round "
          "(wall, and process CPU time)")
    print(f"{'layer':>12} {'input':>18} {'QConv2d':>10} {'Conv2d':>10} {'Q/real':>8} "
          f"{'Q/real cpu':>11}")
    for r in rows:
        if r["kind"] == "train":
            shape = "x".join(map(str, r["input"]))
            print(f"{r['channels']:>5}->{r['channels']:<6} {shape:>18} {r['qconv_ms']:>10.1f} "
                  f"{r['conv_ms']:>10.1f} {r['ratio_q_over_real']:>7.2f}x "
                  f"{r['cpu_ratio_q_over_real']:>10.2f}x")
    print("\ninference, one conv block (conv-BN-ReLU x2), median wall ms; ratios as above")
    print(f"{'block':>12} {'input':>18} {'unfused Q':>10} {'fused Q':>10} {'real':>10} "
          f"{'unfused/real':>13} {'fused/real':>11} {'fused/real cpu':>15}")
    for r in rows:
        if r["kind"] == "infer":
            shape = "x".join(map(str, r["input"]))
            print(f"{r['channels']:>5}->{r['channels']:<6} {shape:>18} {r['unfused_ms']:>10.2f} "
                  f"{r['fused_ms']:>10.2f} {r['real_ms']:>10.2f} "
                  f"{r['unfused_over_real']:>12.2f}x {r['fused_over_real']:>10.2f}x "
                  f"{r['cpu_fused_over_real']:>14.2f}x")
    print("\nparameters and MACs per example of each variant")
    for r in rows:
        c = r["counts"]
        print(f"{r['kind']:>6} {r['channels']:>4}: " + ", ".join(
            f"{v} {x['params']:,} params {x['macs']:,} MACs" for v, x in c.items()))


def print_models(rows: list[dict[str, Any]]) -> None:
    print("\nwhole models (default front end): parameters learned / deployed (fused), MACs per example")
    for r in rows:
        print(f"{r['model']:>12} ({r['classes']} classes) {r['params']:>12,} / "
              f"{r['params_deployed']:>12,} params {r['macs']:>16,} MACs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (smoke run)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--reps", type=int, default=9, help="timed repetitions at batch 32")
    parser.add_argument("--profile", action="store_true", help="profile one training step, exit")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    sizes = QUICK_SIZES if args.quick else SIZES
    if args.profile:
        for c, t, m in sizes:
            profile_step(c, t, m, TRAIN_BATCH)
        return

    load_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    start = time.perf_counter()
    rows: list[dict[str, Any]] = []
    for c, t, m in sizes:
        rows.append(bench_train(c, t, m, TRAIN_BATCH, warmup=2, reps=args.reps))
        print(f"train {c}: done", flush=True)
        for batch in INFER_BATCHES:
            reps = args.reps if batch > 1 else 5 * args.reps
            rows.append(bench_infer(c, t, m, batch, warmup=2 if batch > 1 else 5, reps=reps))
            print(f"infer {c} batch {batch}: done", flush=True)
    print_table(rows)
    models = model_counts()
    print_models(models)

    trains = [r["ratio_q_over_real"] for r in rows if r["kind"] == "train"]
    fused = [r["fused_over_real"] for r in rows if r["kind"] == "infer"]
    goals = {"train_within_1.3x": all(x <= 1.3 for x in trains),
             "fused_within_5pct": all(x <= 1.05 for x in fused),
             "worst_train_ratio": max(trains), "worst_fused_ratio": max(fused)}
    print(f"\ngoals: training step <= 1.3x real: {goals['train_within_1.3x']} "
          f"(worst {goals['worst_train_ratio']:.2f}x); fused within 5 % of real: "
          f"{goals['fused_within_5pct']} (worst {goals['worst_fused_ratio']:.2f}x)")
    result = {
        "meta": {**benchlib.machine(), "torch": torch.__version__, "threads": torch.get_num_threads(),
                 "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                 "load_average_1min_at_start": load_start,
                 "load_average_1min_at_end": os.getloadavg()[0] if load_start is not None
                 else None,
                 "wall_seconds": round(time.perf_counter() - start, 1),
                 "quick": args.quick, "reps_batch32": args.reps, "reps_batch1": 5 * args.reps,
                 "statistic": "times: median of round-robin timed repetitions after warm-up; "
                              "ratios: median of per-round ratios"},
        "goals": goals,
        "rows": rows,
        "models": models,
    }
    write_json(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
