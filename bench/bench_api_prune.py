"""audioprune.prune on CNN14 beside Torch-Pruning's own BasePruner, in one process.

A side-by-side, not a timed test (issue 14). CNN14 at 527 classes on 10 s of 32 kHz audio
(features 1 x 1001 x 64, the PANNs AudioSet setting; random weights: the cost of pruning does not
depend on the values), every conv and fc1 pruned by half, the classifier kept:

  tp-magnitude  Torch-Pruning 1.6.1: BasePruner(model, feats, GroupMagnitudeImportance(),
                pruning_ratio=0.5, ignored_layers=[fc_out]).step() - trace, score, prune
  ap-l1         audioprune.prune(model, feats, "l1", ratio=0.5, forward_fn="classify")
  ap-wdc        the same with the graph-centrality criterion wdc (rank-1 SVD representatives,
                cosine graph, weighted degree per layer; the criterion of the centrality paper)

audioprune.prune does more than the peer's call: it also counts MACs and parameters before and
after (FlopCounterMode over the 20 GMAC forward), predicts them for the plan on a meta-device
copy, and runs the pruned model once to check it. The three run round-robin (each round in a
shifted order) on a fresh deep copy each time (the copy is not timed); wall and process CPU time
per call, median over rounds. Threads: torch's default unless --threads.

    .venv/bin/python bench/bench_api_prune.py            # writes bench/results/api_prune_cnn14.json
    .venv/bin/python bench/bench_api_prune.py --rounds 1 --model cnn6   # a quick look
"""

from __future__ import annotations

import argparse
import copy
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch_pruning as tp
from torch import nn

import audioprune as ap
from audioprune.audio.frontend import FrontEndConfig
from audioprune.models.registry import create_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402

RESULTS = benchlib.ROOT / "bench" / "results" / "api_prune_cnn14.json"


def tp_magnitude(model: nn.Module, feats: torch.Tensor, ratio: float) -> nn.Module:
    pruner = tp.pruner.BasePruner(model, feats, tp.importance.GroupMagnitudeImportance(),
                                  pruning_ratio=ratio, ignored_layers=[model.fc_out],
                                  forward_fn=lambda m, x: m.classify(x))
    pruner.step()
    return model


def ours(criterion: str) -> Callable[[nn.Module, torch.Tensor, float], nn.Module]:
    def run(model: nn.Module, feats: torch.Tensor, ratio: float) -> nn.Module:
        ap.prune(model, feats, criterion, ap.Plan(ratio=ratio), forward_fn="classify")
        return model
    return run


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="cnn14")
    p.add_argument("--ratio", type=float, default=0.5)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--threads", type=int)
    p.add_argument("--out", type=Path, default=RESULTS)
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    frontend = FrontEndConfig(clip_seconds=10.0)  # 32 kHz, 1024 / 320, 64 mels, 50-14000 Hz
    model = create_model(args.model, 527, frontend=frontend).eval()
    feats = model.example_features()
    base = ap.count(model, feats, "classify")
    print(f"{args.model}: {base.params:,} params, {base.macs:,} MACs per 10 s clip, features "
          f"{tuple(feats.shape)}; {torch.get_num_threads()} thread(s)")
    methods = {"tp-magnitude": tp_magnitude, "ap-l1": ours("l1"), "ap-wdc": ours("wdc")}
    wall: dict[str, list[float]] = {m: [] for m in methods}
    cpu: dict[str, list[float]] = {m: [] for m in methods}
    after: dict[str, dict[str, Any]] = {}
    names = list(methods)
    for r in range(args.rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:
            clone = copy.deepcopy(model)
            w0, c0 = time.perf_counter(), time.process_time()
            methods[name](clone, feats, args.ratio)
            cpu[name].append(time.process_time() - c0)
            wall[name].append(time.perf_counter() - w0)
            counts = ap.count(clone, feats, "classify")
            after[name] = {"params": counts.params, "macs": counts.macs,
                           "params_ratio": round(counts.params / base.params, 4),
                           "macs_ratio": round(counts.macs / base.macs, 4)}
            print(f"round {r + 1}: {name:<13} {wall[name][-1]:7.2f} s wall, "
                  f"{cpu[name][-1]:7.2f} s CPU; MACs x{after[name]['macs_ratio']}, "
                  f"params x{after[name]['params_ratio']}")
            del clone
    rows = {}
    for name in names:
        rows[name] = {"wall_s": round(statistics.median(wall[name]), 3),
                      "cpu_s": round(statistics.median(cpu[name]), 3),
                      "wall_all_s": [round(v, 3) for v in wall[name]],
                      "ratio_to_tp": round(statistics.median(
                          a / b for a, b in zip(wall[name], wall["tp-magnitude"])), 3),
                      **after[name]}
    result = {"benchmark": "api_prune", "model": args.model, "classes": 527, "clip_seconds": 10,
              "features": list(feats.shape), "ratio": args.ratio, "rounds": args.rounds,
              "threads": torch.get_num_threads(), "params": base.params, "macs": base.macs,
              "methods": rows, "machine": benchlib.machine(),
              "command": "python bench/bench_api_prune.py " + " ".join(sys.argv[1:])}
    print(benchlib.table(["method", "wall s", "CPU s", "vs TP", "MACs ratio", "params ratio"],
                         [[n, r["wall_s"], r["cpu_s"], r["ratio_to_tp"], r["macs_ratio"],
                           r["params_ratio"]] for n, r in rows.items()]))
    print(f"wrote {benchlib.save(args.out, result)}")


if __name__ == "__main__":
    main()
