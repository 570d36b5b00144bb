"""audioprune.prune on eight architectures that are not audioprune's (tests/architectures.py):
MACs and parameters before and after a 50% MAC budget, checked against an independent recount.

The figures behind README's "Use it from Python" table; tests/test_api_architectures.py asserts
the same properties on every run of the suite. Random weights (seeded), wdc, target_macs=0.5.

    .venv/bin/python bench/bench_api_architectures.py   # writes bench/results/api_architectures.json
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

import audioprune as ap

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
import benchlib  # noqa: E402
from architectures import ARCHITECTURES, build, independent_macs, outputs_of  # noqa: E402

RESULTS = benchlib.ROOT / "bench" / "results" / "api_architectures.json"


def main() -> None:
    rows = {}
    for name in ARCHITECTURES:
        model, x = build(name)
        shapes = {k: tuple(v.shape) for k, v in outputs_of(model, x).items()}
        t0 = time.perf_counter()
        result = ap.prune(model, x, "wdc", ap.Plan(target_macs=0.5))
        seconds = time.perf_counter() - t0
        out = outputs_of(model, x)
        rows[name] = {
            "params_before": result.params_before, "params_after": result.params_after,
            "macs_before": result.macs_before, "macs_after": result.macs_after,
            "macs_ratio": round(result.macs_ratio, 4), "params_ratio": round(result.params_ratio, 4),
            "independent_macs_after": independent_macs(model, x),
            "independent_params_after": sum(p.numel() for p in model.parameters()),
            "outputs_unchanged": {k: tuple(v.shape) for k, v in out.items()} == shapes,
            "layers_pruned": sum(1 for v in result.removed.values() if v),
            "units": sorted(set(result.units.values())), "seconds": round(seconds, 3)}
    table = benchlib.table(
        ["model", "params before", "after", "MACs before", "after", "MAC ratio", "recount equal"],
        [[n, f"{r['params_before']:,}", f"{r['params_after']:,}", f"{r['macs_before']:,}",
          f"{r['macs_after']:,}", r["macs_ratio"],
          r["independent_macs_after"] == r["macs_after"]
          and r["independent_params_after"] == r["params_after"]] for n, r in rows.items()])
    print(table)
    result = {"benchmark": "api_architectures", "criterion": "wdc", "target_macs": 0.5,
              "models": rows, "torch_threads": torch.get_num_threads(),
              "machine": benchlib.machine(), "command": "python bench/bench_api_architectures.py"}
    print(f"wrote {benchlib.save(RESULTS, result)}")


if __name__ == "__main__":
    main()
