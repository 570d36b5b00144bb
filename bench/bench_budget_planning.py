"""How long a MAC budget takes to plan, next to a ratio prune of the same model, side by side.

For each model (PANNs-size MobileNetV2 and an EfficientAT mn04-like MobileNetV3 on 10 s of
64-mel log-mels, and CNN14 on 1 s at 32 kHz; random weights, seeded) and in one process, the
round-robin timing of benchlib (each round times every variant in turn):

  ratio          ap.Pruner(model, x, "l1"): trace, .plan(ap.Plan(ratio=0.3)), .step(counts)
  budget         the same with ap.Plan(target_macs=0.5)   (searched with the layer cost model)
  budget-exact   the same budget searched with every candidate plan counted on a pruned copy
                 (.plan(..., exact_costs=True): what every budget search did before)

Each variant prunes a fresh copy, one thread. Recorded per model: seconds (median over rounds), the ratios
budget / ratio and budget-exact / budget, whether the two budget searches chose the same plan
(they must), and the MACs ratio reached.

    .venv/bin/python bench/bench_budget_planning.py            # bench/results/budget_planning.json
    .venv/bin/python bench/bench_budget_planning.py --rounds 1 --models mn04-like
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path
from typing import Any

import torch

import audioprune as ap

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
import benchlib  # noqa: E402
from architectures import FULL_SIZE  # noqa: E402

RESULTS = benchlib.RESULTS / "budget_planning.json"


def _cnn14() -> tuple[torch.nn.Module, Any, str]:
    from audioprune.audio.frontend import FrontEndConfig
    from audioprune.models.registry import create_model

    model = create_model("cnn14", 527, frontend=FrontEndConfig(clip_seconds=1.0))
    return model, model.example_features(), "classify"


def models(names: list[str]) -> dict[str, tuple[torch.nn.Module, Any, str | None]]:
    out: dict[str, tuple[torch.nn.Module, Any, str | None]] = {}
    for name in names:
        torch.manual_seed(0)
        if name == "cnn14":
            out[name] = _cnn14()
        else:
            factory, inputs = FULL_SIZE[name]
            out[name] = (factory().eval(), inputs(), None)
    return out


def variant(model: torch.nn.Module, x: Any, forward: str | None, which: str) -> dict[str, Any]:
    """Trace, plan and prune a fresh copy (audioprune.Pruner: what ap.prune runs)."""
    m = copy.deepcopy(model)
    t0 = time.perf_counter()
    pruner = ap.Pruner(m, x, "l1", forward_fn=forward)
    asked = ap.Plan(ratio=0.3) if which == "ratio" else ap.Plan(target_macs=0.5)
    plan = pruner.plan(asked, exact_costs=which == "budget-exact")
    pruner.step(plan.counts)
    return {"seconds": time.perf_counter() - t0, "counts": plan.counts,
            "macs_ratio": plan.predicted["macs"] / plan.base["macs"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="*", default=["mobilenetv2", "mn04-like", "cnn14"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--exact-rounds", type=int, default=1,
                        help="rounds that also time the exact search (minutes each)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    rows = {}
    for name, (model, x, forward) in models(args.models).items():
        kinds = ["ratio", "budget", "budget-exact"]
        times: dict[str, list[float]] = {k: [] for k in kinds}
        last: dict[str, dict[str, Any]] = {}
        for r in range(args.rounds):
            for k in kinds[r % 3:] + kinds[:r % 3]:  # the order rotates from round to round
                if k == "budget-exact" and r >= args.exact_rounds:
                    continue  # the slow reference: its order of magnitude and plan suffice
                last[k] = variant(model, x, forward, k)
                times[k].append(last[k]["seconds"])
                print(f"{name} round {r + 1}: {k} {last[k]['seconds']:.2f} s", flush=True)
        med = {k: sorted(v)[len(v) // 2] for k, v in times.items()}
        rows[name] = {"seconds": med, "all_seconds": times,
                      "budget_over_ratio": med["budget"] / med["ratio"],
                      "exact_over_budget": med["budget-exact"] / med["budget"],
                      "same_plan": last["budget"]["counts"] == last["budget-exact"]["counts"],
                      "macs_ratio": {k: last[k]["macs_ratio"] for k in kinds}}
        print(f"{name}: budget / ratio {rows[name]['budget_over_ratio']:.2f}, exact search "
              f"{rows[name]['exact_over_budget']:.1f}x slower, same plan {rows[name]['same_plan']}")
    benchlib.save(args.out, {"benchmark": "budget planning time", "threads": 1,
                             "rounds": args.rounds, "exact_rounds": args.exact_rounds, "models": rows, "machine": benchlib.machine(),
                             "command": "python bench/bench_budget_planning.py"})
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
