"""One recipe, three executors: wall time of the same sweep one step at a time, with `--jobs N`
worker processes and on a local Ray cluster of N workers, every step at one torch thread, and a
check that the three produced identical runs (issue 19).

The recipe: two dcase21net parents (full and half width) trained on real FSDD recordings
(speaker nicolas held out, --epochs), each pruned by wdc and l1 at 50 % of C1 and C2 and
fine-tuned --finetune-epochs: 6 steps, 2 levels of the dependency graph. Each executor writes to
its own directory under --work (deleted first), so every step really runs.

    .venv/bin/python bench/bench_sweeps.py            # writes bench/results/sweeps.json
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from audioprune.pipeline.recipe import parse_recipe
from audioprune.pipeline.runner import run_recipe

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402


def recipe(epochs: int, finetune: int, data_root: Path) -> Any:
    return parse_recipe({
        "name": "sweep", "dataset": {"name": "fsdd", "root": str(data_root),
                                     "split": "speaker:nicolas"},
        "models": [{"name": "full", "arch": "dcase21net", "train": {"epochs": epochs}},
                   {"name": "half", "arch": "dcase21net", "kwargs": {"width": 0.5},
                    "train": {"epochs": epochs}}],
        "prune": {"criteria": ["wdc", "l1"], "ratios": [0.5], "layers": "C1-C2",
                  "finetune": {"epochs": finetune}},
        "profile": False, "report": False})


def metrics(out: Path) -> dict[str, Any]:
    """What must not depend on the executor: each run's accuracy, counts and loss curve."""
    found = {}
    for path in sorted(out.glob("*/metrics.json")):
        m = json.loads(path.read_text())
        found[path.parent.name] = {"accuracy": m["accuracy"], "params": m["params"],
                                   "macs": m["macs"],
                                   "losses": [h.get("loss") for h in m.get("history", [])]}
    return found


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--finetune-epochs", type=int, default=2)
    p.add_argument("--jobs", type=int, default=2)
    p.add_argument("--executors", nargs="+", default=["sequential", "local", "ray"])
    p.add_argument("--data-root", type=Path, default=benchlib.FSDD)
    p.add_argument("--work", type=Path, default=benchlib.ROOT / "runs" / "bench-sweeps")
    p.add_argument("--out", type=Path, default=benchlib.RESULTS / "sweeps.json")
    args = p.parse_args(argv)
    r = recipe(args.epochs, args.finetune_epochs, args.data_root)
    start = benchlib.machine()
    results: dict[str, Any] = {}
    for executor in args.executors:
        out = args.work / executor
        shutil.rmtree(out, ignore_errors=True)
        t0 = time.perf_counter()
        run_recipe(r, out, progress=False, executor=executor,
                   jobs=1 if executor == "sequential" else args.jobs, threads=1)
        wall = time.perf_counter() - t0
        if executor == "ray":
            import ray

            ray.shutdown()
        results[executor] = {"wall_s": round(wall, 1), "metrics": metrics(out)}
        print(f"{executor:10s} {wall:7.1f} s", flush=True)
    base = results[args.executors[0]]
    summary = {e: {"wall_s": v["wall_s"], "speed_up": round(base["wall_s"] / v["wall_s"], 3),
                   "identical_to_" + args.executors[0]: v["metrics"] == base["metrics"]}
               for e, v in results.items()}
    for e, s in summary.items():
        print(f"{e:10s} {s['wall_s']:7.1f} s  x{s['speed_up']:.2f}  identical: "
              f"{s['identical_to_' + args.executors[0]]}")
    end = benchlib.machine()
    benchlib.save(args.out, {"recipe": "2 dcase21net parents x (wdc, l1) at 50% of C1, C2 on FSDD "
                                       "speaker:nicolas", "epochs": args.epochs,
                             "finetune_epochs": args.finetune_epochs, "jobs": args.jobs,
                             "threads_per_job": 1, "summary": summary,
                             "runs": {e: v["metrics"] for e, v in results.items()},
                             "machine": {**start,
                                         "load_average_1min_at_end": end["load_average_1min"]}})
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
