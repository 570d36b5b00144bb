"""channels_last and torch.compile as training options (TrainConfig.channels_last / .compile),
each against plain eager, side by side on this machine.

For each model it times one training step - audioprune's `train_step` (train/fit.py) on identical
copies of one initialised model and the same waveform batch - in these variants:

    eager           the default (contiguous NCHW, no compilation)
    channels_last   model.to(memory_format=torch.channels_last), as fit() does for the option
    compile         torch.compile(model) (inductor), as fit() does for the option; the first
                    two steps compile (their time is reported as first_two_steps_s, not in the
                    timing: about a minute cold, seconds when inductor's on-disk cache holds
                    the graphs from an earlier run)
    compile+cl      both (with --all)

timed round-robin after warm-up (bench/benchlib.py: a ratio is the median of per-round ratios,
so a load change on a shared machine hits every variant alike). Loss values of the first steps
are kept: the options change rounding, not what is computed (compared in the JSON).

Models: dcase21net (its 44.1 kHz front end) and cnn14 x0.25 (small width to fit a 2-core CPU),
clips of --clip-seconds, batch --batch, fp32, dropout off. On a CPU, oneDNN's convolutions
prefer NHWC for wide layers, and inductor fuses the element-wise ops around them (BN-ReLU,
pooling); on a GPU with tensor cores channels_last usually pays with bf16/fp16 -
bench/gpu_check.py is where that is measured when a GPU is lent.

    .venv/bin/python bench/bench_memory_format.py         # writes bench/results/memory_format.json
    .venv/bin/python bench/bench_memory_format.py --quick # 3 rounds (what was run here)
"""

from __future__ import annotations

import argparse
import copy
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from audioprune.audio.frontend import FrontEndConfig
from audioprune.models.dcase21net import DCASE21_FRONTEND
from audioprune.models.registry import create_model
from audioprune.train.fit import TrainConfig, train_step
from audioprune.train.precision import grad_scaler

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402

# dropout off: every variant computes the same function, so their losses are comparable
MODELS = {"dcase21net": ("dcase21net", {"dropout": 0.0}),
          "cnn14": ("cnn14", {"width": 0.25, "dropout": 0.0, "head_dropout": 0.0})}


def _loss(logits: torch.Tensor, y: torch.Tensor, _: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(logits, y)


def bench_model(name: str, variants: list[str], batch: int, clip_seconds: float, rounds: int,
                budget_s: float) -> dict[str, Any]:
    arch, kwargs = MODELS[name]
    base_fe = DCASE21_FRONTEND if arch == "dcase21net" else FrontEndConfig()
    fe = FrontEndConfig(**{**base_fe.__dict__, "clip_seconds": clip_seconds})
    torch.manual_seed(0)
    base = create_model(arch, 10, frontend=fe, **kwargs)
    wave = 0.1 * torch.randn(batch, int(fe.sample_rate * clip_seconds))
    y, idx = torch.arange(batch) % 10, torch.arange(batch)
    cfg = TrainConfig(lr=1e-4)
    torch._dynamo.reset()
    fns, losses, compile_s = {}, {}, {}
    for v in variants:
        model = copy.deepcopy(base).train()
        if "channels_last" in v or v.endswith("+cl"):
            model.to(memory_format=torch.channels_last)
        net = torch.compile(model) if v.startswith("compile") else model
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        scaler = grad_scaler("cpu", "fp32")
        losses[v] = []

        def step(net=net, opt=opt, scaler=scaler, v=v) -> None:
            losses[v].append(float(train_step(net, opt, scaler, _loss, wave, y, idx, cfg)))

        t0 = time.perf_counter()
        step()  # eager: warm-up; compiled: forward and backward graphs are compiled here
        step()
        compile_s[v] = round(time.perf_counter() - t0, 2)
        fns[v] = step
    timed = benchlib.round_robin(fns, rounds=rounds, budget_s=budget_s, warmup=1)
    out: dict[str, Any] = {"arch": arch, "kwargs": kwargs, "batch": batch,
                           "clip_seconds": clip_seconds, "variants": {}}
    for v in variants:
        out["variants"][v] = {**timed.row(v, "eager"),
                              "first_two_steps_s": compile_s[v],
                              "losses_first_steps": [round(x, 5) for x in losses[v][:2]]}
    # same initial weights, same batch: the first loss differs by rounding only
    out["max_first_loss_gap"] = round(max(abs(losses[v][0] - losses["eager"][0])
                                          for v in variants), 6)
    out["best"] = min(variants, key=lambda v: timed.ratio(v, "eager"))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS))
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--clip-seconds", type=float, default=2.0)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--budget", type=float, default=0.5, help="seconds per variant per round")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--all", action="store_true", help="also compile + channels_last")
    p.add_argument("--no-compile", action="store_true", help="eager and channels_last only")
    p.add_argument("--quick", action="store_true", help="3 rounds")
    p.add_argument("--out", type=Path, default=benchlib.RESULTS / "memory_format.json")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    variants = ["eager", "channels_last"]
    compiler = any(shutil.which(c) for c in ("g++", "c++", "clang++"))
    if not args.no_compile and compiler:
        variants.append("compile")
        if args.all:
            variants.append("compile+cl")
    rounds = 3 if args.quick else args.rounds
    start = benchlib.machine()
    results = {}
    for name in args.models:
        print(f"{name}: {', '.join(variants)} ...", flush=True)
        r = results[name] = bench_model(name, variants, args.batch, args.clip_seconds, rounds,
                                        args.budget)
        for v, row in r["variants"].items():
            print(f"  {v:14s} {row['ms']:8.1f} ms/step  {row['ratio']:.2f}x eager (cpu "
                  f"{row['cpu_ratio']:.2f}x)  first two steps {row['first_two_steps_s']:.1f} s",
                  flush=True)
    end = benchlib.machine()
    benchlib.save(args.out, {
        "what": "training step time of each variant over eager's (< 1: faster); side by side, "
                "round-robin; compile time is not in the step time",
        "threads": args.threads, "rounds": rounds, "compiler_found": compiler,
        "models": results,
        "machine": {**start, "load_average_1min_at_end": end["load_average_1min"]}})
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
