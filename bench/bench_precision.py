"""Mixed precision on this machine: bf16 (and fp16) autocast against fp32, side by side.

For each model it times one training step - audioprune's own `train_step` (train/fit.py: the
forward under TrainConfig.precision's autocast, the loss in fp32, backward, Adam step; a
GradScaler for fp16) - and one inference forward (eval, no_grad, under the same autocast), of
identical copies of one initialised model on the same waveform batch, the precisions timed
round-robin (bench/benchlib.py: a load change on a shared machine hits every variant alike; a
ratio is the median of per-round ratios). The log-mel front end runs in fp32 in every variant
(AudioClassifier.features turns autocast off around it), as in training.

bf16 on a CPU is only fast where the CPU has bf16 instructions (AVX512-BF16, AMX): oneDNN then
runs convolutions natively; elsewhere it emulates them and bf16 is slower. The JSON records the
CPU's flags beside the ratios. fp16 autocast on a CPU is for completeness (GPUs are its place).

Models (PANNs AudioSet front end, 32 kHz, 64 mels, unless said): dcase21net (its own 44.1 kHz
front end), cnn6 x0.5 and cnn14 x0.25 (small widths to fit a 2-core CPU), qcnn6 x0.5 (quaternion
layers under autocast); dropout off. Clips of --clip-seconds, batch --batch.

    .venv/bin/python bench/bench_precision.py           # writes bench/results/precision.json
    .venv/bin/python bench/bench_precision.py --quick   # 2 models, 3 rounds (what was run here)
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from audioprune.audio.frontend import FrontEndConfig
from audioprune.models.dcase21net import DCASE21_FRONTEND
from audioprune.models.registry import create_model
from audioprune.train.fit import TrainConfig, train_step
from audioprune.train.precision import autocast, grad_scaler

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402

# dropout off: the copies of a model compute the same function, so their losses are comparable
MODELS = {"dcase21net": ("dcase21net", {"dropout": 0.0}),
          "cnn6": ("cnn6", {"width": 0.5, "dropout": 0.0, "head_dropout": 0.0}),
          "cnn14": ("cnn14", {"width": 0.25, "dropout": 0.0, "head_dropout": 0.0}),
          "qcnn6": ("qcnn6", {"width": 0.5, "dropout": 0.0, "head_dropout": 0.0})}
QUICK = ("dcase21net", "cnn14")


def cpu_flags() -> list[str]:
    """The bf16-relevant instruction sets this CPU reports (Linux /proc/cpuinfo)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = set(next((line.split(":", 1)[1].split() for line in text.splitlines()
                      if line.startswith("flags")), []))
    return sorted(flags & {"avx2", "avx512f", "avx512_bf16", "avx512_fp16", "amx_bf16", "amx_tile"})


def frontend_for(arch: str, clip_seconds: float) -> FrontEndConfig:
    base = DCASE21_FRONTEND if arch == "dcase21net" else FrontEndConfig()
    channels = "deltas" if arch.startswith("q") else base.channels
    return FrontEndConfig(**{**base.__dict__, "clip_seconds": clip_seconds, "channels": channels})


def bench_model(name: str, precisions: list[str], batch: int, clip_seconds: float,
                rounds: int, budget_s: float) -> dict[str, Any]:
    arch, kwargs = MODELS[name]
    fe = frontend_for(arch, clip_seconds)
    torch.manual_seed(0)
    base = create_model(arch, 10, frontend=fe, **kwargs)
    wave = 0.1 * torch.randn(batch, int(fe.sample_rate * clip_seconds))
    y = torch.arange(batch) % 10
    idx = torch.arange(batch)

    def loss_fn(logits: torch.Tensor, target: torch.Tensor, _: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits, target)

    train_fns, infer_fns, losses = {}, {}, {}
    for p in precisions:
        model = copy.deepcopy(base).train()
        cfg = TrainConfig(precision=p, lr=1e-4)
        opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
        scaler = grad_scaler("cpu", p)
        losses[p] = []

        def step(model=model, opt=opt, scaler=scaler, cfg=cfg, p=p) -> None:
            losses[p].append(float(train_step(model, opt, scaler, loss_fn, wave, y, idx, cfg)))

        frozen = copy.deepcopy(base).eval()

        def infer(frozen=frozen, p=p) -> None:
            with torch.no_grad(), autocast("cpu", p):
                frozen(wave)

        train_fns[p], infer_fns[p] = step, infer
    train = benchlib.round_robin(train_fns, rounds=rounds, budget_s=budget_s, warmup=1)
    infer = benchlib.round_robin(infer_fns, rounds=rounds, budget_s=budget_s, warmup=1)
    out: dict[str, Any] = {"arch": arch, "kwargs": kwargs, "batch": batch,
                           "clip_seconds": clip_seconds, "sample_rate": fe.sample_rate,
                           "train_step": {}, "inference": {}}
    for p in precisions:
        out["train_step"][p] = {**train.row(p, "fp32"),
                                "clips_per_s": round(1e3 * batch / train.ms(p), 2),
                                "loss_first": round(losses[p][0], 4),
                                "loss_last": round(losses[p][-1], 4)}
        out["inference"][p] = {**infer.row(p, "fp32"),
                               "clips_per_s": round(1e3 * batch / infer.ms(p), 2)}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--models", nargs="+", choices=list(MODELS))
    p.add_argument("--precisions", nargs="+", default=["fp32", "bf16", "fp16"],
                   choices=["fp32", "bf16", "fp16"])
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--clip-seconds", type=float, default=2.0)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--budget", type=float, default=0.5, help="seconds per variant per round")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quick", action="store_true", help=f"{', '.join(QUICK)}; 3 rounds")
    p.add_argument("--out", type=Path, default=benchlib.RESULTS / "precision.json")
    args = p.parse_args(argv)
    if "fp32" not in args.precisions:
        p.error("--precisions must include fp32 (the reference of every ratio)")
    models = args.models or (list(QUICK) if args.quick else list(MODELS))
    rounds = 3 if args.quick else args.rounds
    torch.set_num_threads(args.threads)
    start = benchlib.machine()
    results = {}
    for name in models:
        print(f"{name}: timing {', '.join(args.precisions)} ...", flush=True)
        r = results[name] = bench_model(name, args.precisions, args.batch, args.clip_seconds,
                                        rounds, args.budget)
        for p_ in args.precisions:
            t, i = r["train_step"][p_], r["inference"][p_]
            print(f"  {p_}: train step {t['ms']:.1f} ms ({t['ratio']:.2f}x fp32, cpu "
                  f"{t['cpu_ratio']:.2f}x)  inference {i['ms']:.1f} ms ({i['ratio']:.2f}x)",
                  flush=True)
    end = benchlib.machine()
    ratios = {name: {"train_bf16_over_fp32": r["train_step"].get("bf16", {}).get("ratio"),
                     "inference_bf16_over_fp32": r["inference"].get("bf16", {}).get("ratio")}
              for name, r in results.items()}
    benchlib.save(args.out, {
        "what": "time per training step / inference forward under autocast, ratio to fp32 "
                "(< 1: faster than fp32); measured side by side, round-robin",
        "threads": args.threads, "precisions": args.precisions, "rounds": rounds,
        "cpu_flags": cpu_flags(), "mkldnn_bf16": bool(torch.backends.mkldnn.is_available()),
        "models": results, "summary": ratios,
        "machine": {**start, "load_average_1min_at_end": end["load_average_1min"]}})
    print(benchlib.table(["model", "train bf16/fp32", "inference bf16/fp32"],
                         [[n, v["train_bf16_over_fp32"], v["inference_bf16_over_fp32"]]
                          for n, v in ratios.items()]))
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
