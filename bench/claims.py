"""The papers' claims, re-measured: run a claim recipe and record its statistics.

Each claim has a recipe under recipes/claims/ (FSDD leave-one-speaker-out, 6 folds). This script
runs it (`audioprune run`'s pipeline: resumable, finished steps skipped), then aggregates its runs
over the (fold, seed) units with audioprune.report (mean and 95% interval per method; paired
differences to the parent, to a criterion and to a model) and writes everything a table needs to
bench/results/claims/<recipe name>.json: per method the per-unit values, MACs and parameters
(and their ratios to the parent), both intervals (Student's t and the percentile bootstrap),
Wilcoxon and sign-test p-values, and the wall time the runs took. README's "The papers' claims,
re-measured" table is generated from these files by bench/write_benchmarks.py.

    .venv/bin/python bench/claims.py recipes/claims/dcase21_c1c2_loso.yaml
    .venv/bin/python bench/claims.py recipes/claims/dcase21_c1c2_loso.yaml --no-run   # record only
    .venv/bin/python bench/claims.py --cnn14-counts    # claim 2's arithmetic (no data, no training)
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from audioprune.pipeline.recipe import load_recipe
from audioprune.pipeline.runner import recipe_folds, run_recipe
from audioprune.pipeline.steps import plan_steps
from audioprune.report.aggregate import MethodSummary, aggregate
from audioprune.report.collect import collect_rows
from audioprune.report.stats import paired_difference

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402
from benchmark import diff_record  # noqa: E402  (one JSON shape for a paired difference)

RESULTS = benchlib.RESULTS / "claims"


def _method(s: MethodSummary, by_ci: dict[str, dict[str, MethodSummary]],
            baselines: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "label": s.label, "kind": s.kind, "model": s.model, "criterion": s.criterion,
        "plan": s.plan, "parent_method": s.parent_method, "metric": s.metric,
        "values": dict(sorted(s.values.items())), "params": s.params, "macs": s.macs,
        "parent_params": s.parent_params, "parent_macs": s.parent_macs,
        "params_ratio": s.params / s.parent_params if s.parent_params else None,
        "macs_ratio": s.macs / s.parent_macs if s.parent_macs else None,
        "train_seconds": sum((r.compute_s or 0.0) for r in s.rows),
        # with every run upstream (parent, teacher) counted once per unit
        "total_seconds": sum((r.total_compute_s or r.compute_s or 0.0) for r in s.rows)}
    for ci, summaries in by_ci.items():
        twin = summaries["parent"]
        iv = twin.interval
        out[f"mean_ci_{ci}"] = {"mean": iv.mean, "low": iv.low, "high": iv.high, "n": iv.n}
        out[f"vs_parent_{ci}"] = diff_record(twin.difference)
        for b in baselines:
            other = summaries.get(b)
            if other is not None and other.difference is not None:
                out[f"vs_{b}_{ci}"] = diff_record(other.difference)
    return out


def record(recipe_path: Path, out: Path | None, baselines: list[str],
           wall_seconds: float | None) -> Path:
    recipe = load_recipe(recipe_path)
    run_dir = benchlib.ROOT / recipe.out_dir
    steps = plan_steps(recipe, recipe_folds(recipe))
    runs = [run_dir / s.run_name for s in steps if (run_dir / s.run_name / "metrics.json").is_file()]
    rows = collect_rows(runs)
    per: dict[str, dict[str, dict[str, dict[str, MethodSummary]]]] = {}
    for ci in ("t", "bootstrap"):
        for base in ["parent", *baselines]:
            for s in aggregate(rows, baseline=base, ci=ci):
                per.setdefault(s.label, {}).setdefault(ci, {})[base] = s
    first = {label: d["t"]["parent"] for label, d in per.items()}
    methods = [_method(first[label], per[label], baselines) for label in first]
    # across kinds (a pruned QCNN vs the unpruned CNN, pruning vs a distilled student), which
    # report's baselines do not pair: every method against every method that is not pruned
    references = [s for s in first.values() if s.kind != "pruned"]
    for entry, s in zip(methods, first.values()):
        entry["vs_methods"] = {ref.label: {ci: diff_record(paired_difference(s.values, ref.values,
                                                                     method=ci))
                                         for ci in ("t", "bootstrap")}
                             for ref in references if ref is not s}
    result = {
        "benchmark": "claim", "recipe": str(recipe_path), "name": recipe.name,
        "description": recipe.description, "dataset": recipe.dataset.name,
        "folds": recipe_folds(recipe), "seed": recipe.seed,
        "steps": len(steps), "finished": len(runs), "baselines": baselines,
        "methods": methods,
        "wall_seconds_this_call": wall_seconds, "machine": benchlib.machine(),
        "command": f"python bench/claims.py {recipe_path}"}
    path = out or RESULTS / f"{recipe.name}.json"
    benchlib.save(path, result)
    return path


# claim 2: the centrality paper's CNN14 (527 AudioSet classes, 10 s at 32 kHz): C7-C12 (the last
# three blocks) at 25%, and the setting closest to the paper's figures (C6 at 12.5% besides)
CNN14_SETTINGS = {"C7-C12 at 25%": {"C7-C12": 0.25},
                  "C6 at 12.5%, C7-C12 at 25%": {"C6": 0.125, "C7-C12": 0.25}}


def cnn14_counts(out: Path | None = None) -> Path:
    """Parameters and MACs of CNN14 before and after each CNN14_SETTINGS plan, counted by our
    counter on a meta-device model (shapes only: no weights, no data)."""
    import torch

    import audioprune as ap

    with torch.device("meta"):
        model = ap.create_model("cnn14", 527, frontend=ap.FrontEndConfig(clip_seconds=10.0))
    example = torch.zeros(1, *model.feature_shape(model.frontend_cfg.clip_samples), device="meta")
    base = ap.count(model, example, "classify")
    pruner = ap.Pruner(model, example, "random", forward_fn="classify")  # plans only: no scores
    settings = {}
    for name, ratios in CNN14_SETTINGS.items():
        after = pruner.plan(ap.Plan(ratios=ratios)).predicted
        settings[name] = {"ratios": ratios, **after,
                          "params_reduction": 1 - after["params"] / base.params,
                          "macs_reduction": 1 - after["macs"] / base.macs}
    path = out or RESULTS / "cnn14_counts.json"
    benchlib.save(path, {"benchmark": "claim 2 arithmetic", "model": "cnn14", "classes": 527,
                         "clip_seconds": 10.0, "params": base.params, "macs": base.macs,
                         "paper": {"params_reduction": 0.41, "macs_reduction": 0.24},
                         "settings": settings, "machine": benchlib.machine(),
                         "command": "python bench/claims.py --cnn14-counts"})
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("recipes", nargs="*", type=Path)
    parser.add_argument("--cnn14-counts", action="store_true",
                        help="claim 2's arithmetic: CNN14's counts before and after pruning")
    parser.add_argument("--no-run", action="store_true", help="only record what has finished")
    parser.add_argument("--baselines", nargs="*", default=["l1", "random", "dcase21net", "cnn6"],
                        help="criteria / models to compare with, besides the parent")
    args = parser.parse_args(argv)
    if args.cnn14_counts:
        print(f"wrote {cnn14_counts()}")
    for path in args.recipes:
        wall = None
        if not args.no_run:
            t0 = time.perf_counter()
            recipe = load_recipe(path)
            run_recipe(recipe, benchlib.ROOT / recipe.out_dir, progress=False)
            wall = round(time.perf_counter() - t0, 1)
        print(f"wrote {record(path, None, args.baselines, wall)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
