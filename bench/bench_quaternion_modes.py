"""Quaternion pruning: score-and-aggregate versus one concatenated node per quaternion, side by side.

For trained quaternion runs (default: the qdcase21net parents of bench/fsdd_study.py), each
criterion prunes C1 and C2 by 50% (whole quaternions) in both modes of
`audioprune.pruning.engine.CriterionImportance`:

  aggregate  score r, i, j, k as four layers, average the four scores (the QCNN authors' way)
  concat     one score per quaternion: graph criteria get one node whose representative is the
             concatenation of the four components' representatives; norms see the four
             components as one filter

and reports the test accuracy right after pruning (no fine-tuning: where criteria differ most)
and how many of the removed quaternions the two modes share. The mean aggregate and concat
provably coincide for wdc and rank l1 identically (see the engine docstring); the check that they
do is part of the output.

    .venv/bin/python bench/bench_quaternion_modes.py               # needs the fsdd_study runs
    .venv/bin/python bench/bench_quaternion_modes.py --runs R1 R2  # any quaternion runs

Results: bench/results/quaternion_modes.json.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from pathlib import Path

import torch

from audioprune.pruning.body import prune_body
from audioprune.pruning.plan import Plan
from audioprune.pruning.spec import PruneSpec
from audioprune.runs.data import prepare_data
from audioprune.runs.parents import parent_data_spec
from audioprune.runs.results import test_metrics
from audioprune.runs.run_dir import load_model
from audioprune.train.fit import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_RUNS = [ROOT / "runs" / "fsdd-study" / f"qdcase21net-official-e40-s{s}" for s in range(3)]
CRITERIA = ("wdc", "betweenness", "eigenvector", "similarity", "l1", "fpgm")
MODES = ("aggregate", "concat")


def evaluate_modes(run: Path, criteria: tuple[str, ...], ratios: dict[str, float]) -> dict:
    parent, _ = load_model(run)
    bundle = prepare_data(parent_data_spec(run), seed=0, progress=False)
    cfg = TrainConfig(progress=False, batch_size=64)
    out: dict = {"parent_accuracy": test_metrics(parent, bundle, cfg)["accuracy"]}
    for crit in criteria:
        row: dict = {}
        for mode in MODES:
            model = copy.deepcopy(parent)
            t0 = time.perf_counter()
            result = prune_body(model, PruneSpec(crit, Plan(ratios=ratios),
                                                    quaternion_mode=mode))
            seconds = time.perf_counter() - t0
            row[mode] = {"accuracy": test_metrics(model, bundle, cfg)["accuracy"],
                         "removed": result["removed"], "seconds": round(seconds, 3)}
        shared = sum(len(set(row["aggregate"]["removed"][n]) & set(row["concat"]["removed"][n]))
                     for n in row["aggregate"]["removed"])
        total = sum(len(v) for v in row["aggregate"]["removed"].values())
        row["shared_fraction"] = shared / total
        out[crit] = row
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--runs", nargs="+", type=Path, default=DEFAULT_RUNS)
    ap.add_argument("--criteria", default=",".join(CRITERIA))
    args = ap.parse_args()
    torch.set_num_threads(1)
    runs = [r for r in args.runs if (r / "metrics.json").exists()]
    if not runs:
        raise SystemExit("no finished quaternion runs found; run `python bench/fsdd_study.py qcnn` "
                         "first or pass --runs")
    criteria = tuple(args.criteria.split(","))
    ratios = {"C1": 0.5, "C2": 0.5}
    per_run = {str(r): evaluate_modes(r, criteria, ratios) for r in runs}
    summary: dict = {}
    for crit in criteria:
        summary[crit] = {
            mode: statistics.fmean(v[crit][mode]["accuracy"] for v in per_run.values())
            for mode in MODES}
        summary[crit]["shared_fraction"] = statistics.fmean(
            v[crit]["shared_fraction"] for v in per_run.values())
    parent = statistics.fmean(v["parent_accuracy"] for v in per_run.values())
    print(f"{len(runs)} qdcase21net run(s); parent test accuracy {100 * parent:.2f}%; "
          f"C1+C2 pruned 50% (whole quaternions), before fine-tuning:")
    print(f"{'criterion':12s} {'aggregate':>10s} {'concat':>10s} {'same prune set':>15s}")
    for crit, s in summary.items():
        print(f"{crit:12s} {100 * s['aggregate']:9.2f}% {100 * s['concat']:9.2f}% "
              f"{100 * s['shared_fraction']:14.1f}%")
    results = ROOT / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / "quaternion_modes.json").write_text(json.dumps(
        {"ratios": ratios, "parent_accuracy_mean": parent, "summary": summary, "runs": per_run},
        indent=2) + "\n")


if __name__ == "__main__":
    main()
