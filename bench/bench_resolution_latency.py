"""Does a MAC saved by a coarser front end save more time than a MAC saved by a narrower layer?

Side by side, in one process, on the RAVDESS parents' architecture (dcase21net on 4 s of 16 kHz
audio, 20 ms hop, 40 mel bins; random weights, seeded: latency does not depend on their values)
and on cnn6 at a quarter width, at the same MAC budgets:

  width        Torch-Pruning's magnitude importance to the budget (narrower layers only)
  resolution   the hop x2 and the mel bins x0.5 or x0.75, then widths to the budget
  resolution only  the coarsening alone (its own MAC ratio)

For each: the MAC ratio to the parent, ONNX Runtime latency (all optimisations, one thread,
batch 1 and 32; benchlib's round-robin timing: every variant in each round, medians of per-round
ratios) and the share of the MAC saving realised as time saved, (1 - time ratio) / (1 - MAC
ratio). BENCHMARKS.md section 7 explains why narrow layers realise less: convolutions compute
output channels in SIMD blocks; fewer frames and bins shrink every layer's map instead.

    .venv/bin/python bench/bench_resolution_latency.py        # bench/results/resolution_latency.json
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

import audioprune as ap
from audioprune.audio.frontend import FrontEndConfig
from audioprune.measure.latency import ort_session
from audioprune.measure.onnx_export import export_onnx
from audioprune.models.registry import create_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402

RESULTS = benchlib.RESULTS / "resolution_latency.json"
FRONTEND = FrontEndConfig(sample_rate=16000, n_fft=512, hop_length=320, n_mels=40, fmin=50.0,
                          fmax=8000.0, clip_seconds=4.0)
MODELS = {"dcase21net": {}, "cnn6": {"width": 0.25}}


def _macs(model: Any) -> int:
    return ap.count(model, model.example_features(), "classify").macs


def variants(arch: str, budget: float) -> dict[str, Any]:
    torch.manual_seed(0)
    parent = create_model(arch, 8, frontend=FRONTEND, **MODELS[arch]).eval()
    base = _macs(parent)
    target = int(budget * base)
    out = {"parent": parent}
    width = copy.deepcopy(parent)
    ap.prune(width, width.example_features(), "tp-magnitude", ap.Plan(target_macs=target),
             forward_fn="classify")
    out["width"] = width
    for freq in (0.5, 0.75):
        coarse = ap.coarsen(parent, time=2.0, freq=freq).eval()
        if _macs(coarse) > target:
            ap.prune(coarse, coarse.example_features(), "tp-magnitude",
                     ap.Plan(target_macs=target), forward_fn="classify")
            out[f"resolution 2x{freq:g} + width"] = coarse
        else:
            out[f"resolution 2x{freq:g} only"] = coarse
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budgets", type=float, nargs="*", default=[0.3, 0.15])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    results: dict[str, Any] = {}
    for arch in MODELS:
        for budget in args.budgets:
            models = variants(arch, budget)
            base = _macs(models["parent"])
            fns, info = {}, {}
            for name, model in models.items():
                session = ort_session(export_onnx(model), 1)
                feats = model.example_features().numpy()
                for b in (1, 32):
                    x = np.ascontiguousarray(np.broadcast_to(feats, (b, *feats.shape[1:])),
                                             dtype=np.float32)
                    fns[f"{name} b{b}"] = (lambda s=session, x=x:
                                           s.run(None, {s.get_inputs()[0].name: x}))
                info[name] = {"macs": _macs(model), "macs_ratio": _macs(model) / base,
                              "frontend": {"hop_length": model.frontend_cfg.hop_length,
                                           "n_mels": model.frontend_cfg.n_mels},
                              "widths": model.layer_widths()}
            times = benchlib.round_robin(fns, rounds=args.rounds)
            for name in models:
                for b in (1, 32):
                    row = times.row(f"{name} b{b}", f"parent b{b}")
                    info[name][f"ort_b{b}"] = row
                    saved = 1 - info[name]["macs_ratio"]
                    info[name][f"realised_b{b}"] = (1 - row["ratio"]) / saved if saved > 0 else None
            results[f"{arch} at {budget:.0%}"] = info
            for name, v in info.items():
                print(f"{arch} {budget:.0%} {name}: MACs {v['macs_ratio']:.3f}, ORT b1 "
                      f"{v['ort_b1']['ratio']:.3f}, b32 {v['ort_b32']['ratio']:.3f}", flush=True)
    benchlib.save(args.out, {"benchmark": "resolution vs width latency", "threads": 1,
                             "frontend": FRONTEND.to_dict(), "results": results,
                             "machine": benchlib.machine(),
                             "command": "python bench/bench_resolution_latency.py"})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
