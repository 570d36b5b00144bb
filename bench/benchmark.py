"""Run a benchmark recipe and record its statistics: the one recorder of every accuracy benchmark.

A benchmark is a recipe (a matrix of methods x budgets x folds x seeds, run by the pipeline:
resumable, `--jobs`, Ray); this script runs it (or, with --no-run, reads what has finished) and
aggregates its runs with audioprune.report over the (fold, seed) units into
bench/results/<recipe name>.json:

  per method   its label (report's method), kind (unpruned, pruned, distilled, quantized),
               criterion, plan, variant (progressive, resolution), the budget it was given,
               per-unit values of the headline metric and of the unweighted average recall,
               mean and 95% interval (Student's t and the percentile bootstrap), the paired
               difference to its own parent (an int8 copy: to the fp32 run it came from), the
               MACs and parameters and their ratios to the parent, the model file's bytes,
               whether it missed its MAC budget (more than 2% under it: not comparable at the
               budget), and its training seconds
  vs methods   for every method, the paired difference to each reference of --vs (e.g.
               tp-magnitude) at the same budget and fine-tuning, with Wilcoxon and sign-test
               p-values; a from-scratch baseline is paired with the pruned run it copies too

bench/write_benchmarks.py renders BENCHMARKS.md's tables from these files; bench/claims.py reads
the claims' recipes with the same recorder.

    .venv/bin/python bench/benchmark.py recipes/ravdess/criteria.yaml --vs tp-magnitude
    .venv/bin/python bench/benchmark.py recipes/fsdd/heavy.yaml --no-run --vs tp-magnitude tp-taylor
    .venv/bin/python bench/benchmark.py recipes/fsdd/criteria.yaml --variant quick \
        --out bench/results/quick/fsdd-criteria-quick.json          # what `make bench` runs
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from audioprune.pipeline.recipe import Recipe, load_recipe
from audioprune.pipeline.runner import recipe_folds, run_recipe
from audioprune.pipeline.steps import plan_steps
from audioprune.report.aggregate import MethodSummary, aggregate, unit_of
from audioprune.report.collect import Row, collect_rows
from audioprune.report.stats import PairedDifference, mean_ci, paired_difference

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402

BUDGET_TOLERANCE = 0.02  # a cell more than 2% under its MAC budget is recorded as missed
CIS = ("t", "bootstrap")


def diff_record(d: PairedDifference | None) -> dict[str, Any] | None:
    if d is None or d.interval.n == 0:
        return None
    iv = d.interval
    return {"mean": iv.mean, "low": iv.low, "high": iv.high, "n": iv.n, "method": iv.method,
            "significant": d.significant, "wilcoxon_p": d.wilcoxon_p, "sign_p": d.sign_p}


def interval_record(values: Mapping[str, float] | Iterable[float], ci: str = "t") -> dict[str, Any]:
    """The mean of `values` (per-unit values, or the values alone) with its 95% interval: the
    one JSON shape of an interval in bench/results (with diff_record's for a difference)."""
    iv = mean_ci(list(values.values() if isinstance(values, Mapping) else values), method=ci)
    return {"mean": iv.mean, "low": iv.low, "high": iv.high, "n": iv.n}


def run(recipe: Recipe, jobs: int) -> float:
    """Run `recipe` through the pipeline into its output directory (finished steps are skipped),
    one thread per job when `jobs` > 1; the wall seconds it took."""
    t0 = time.perf_counter()
    run_recipe(recipe, benchlib.ROOT / recipe.out_dir, progress=False,
               executor="local" if jobs > 1 else "sequential", jobs=jobs,
               threads=1 if jobs > 1 else None)
    return round(time.perf_counter() - t0, 1)


def _mean(values: list[int | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def _budget(step_plan: dict[str, Any]) -> float | None:
    target = step_plan.get("target_macs")
    return float(target) if isinstance(target, float) else None


def _base_plan(row: Row) -> str:
    """The plan and fine-tuning without the variant: what methods are compared at."""
    return row.plan_key[: -len(row.variant) - 1] if row.variant else row.plan_key


def describe(s: MethodSummary, ci_parent: dict[str, MethodSummary], budgets: dict[str, float],
             rows_by_key: dict[str, Row], label_of: dict[str, str]) -> dict[str, Any]:
    first = s.rows[0]
    uar = {unit_of(r): float(r.uar) for r in s.rows if r.uar is not None}
    budget = budgets.get(first.key)
    base_plan, parent_macs, parent_params = _base_plan(first), s.parent_macs, s.parent_params
    if first.scratch_of and first.scratch_of in rows_by_key:
        # a from-scratch baseline has no parent of its own: it is compared at the budget, plan
        # and costs of the pruned run whose widths it trains
        source = rows_by_key[first.scratch_of]
        budget = budgets.get(source.key)
        base_plan = _base_plan(source)
        parent_macs, parent_params = parent_macs or source.parent_macs, \
            parent_params or source.parent_params
    missed = [unit_of(r) for r in s.rows
              if budget is not None and (r.parent_macs or parent_macs) and
              r.macs < (1 - BUDGET_TOLERANCE) * budget * (r.parent_macs or parent_macs)]
    out: dict[str, Any] = {
        "label": s.label, "kind": s.kind, "model": s.model, "criterion": s.criterion,
        "plan": first.plan, "plan_key": s.plan, "base_plan": base_plan,
        "variant": first.variant, "scratch_of": label_of.get(first.scratch_of or ""),
        "parent_method": s.parent_method,
        # the label of the method its parent runs belong to (an int8 copy: the fp32 method)
        "parent_label": label_of.get(first.parent or ""),
        "metric": s.metric, "budget": budget,
        "values": dict(sorted(s.values.items())), "uar_values": dict(sorted(uar.items())),
        "params": s.params, "macs": s.macs,
        # the model file as written (an int8 copy: its ONNX file; fp32: model.safetensors)
        "size_bytes": sum(r.size_bytes for r in s.rows) / len(s.rows) if s.rows else None,
        # an int8 copy: the fp32 ONNX file it was quantized from (fused, BN folded)
        "fp32_onnx_bytes": _mean([r.fp32_onnx_bytes for r in s.rows]),
        "parent_params": parent_params,
        "parent_macs": parent_macs,
        "params_ratio": s.params / parent_params if parent_params else None,
        "macs_ratio": s.macs / parent_macs if parent_macs else None,
        "missed_budget": missed,
        "train_seconds": sum((r.compute_s or 0.0) for r in s.rows),
        "seconds_per_run": (sum((r.compute_s or 0.0) for r in s.rows) / len(s.rows)) if s.rows else None,
    }
    for ci in CIS:
        out[f"mean_ci_{ci}"] = interval_record(s.values, ci)
        if uar:
            out[f"uar_ci_{ci}"] = interval_record(uar, ci)
        out[f"vs_parent_{ci}"] = diff_record(ci_parent[ci].difference) if ci in ci_parent else None
    return out


def _pair(methods: list[dict[str, Any]], refs: list[str]) -> None:
    """Each method against each reference criterion at the same base plan and parent, and a
    scratch baseline against the pruned run it copies."""
    by_label = {m["label"]: m for m in methods}
    for m in methods:
        m["vs"] = {}
        candidates = [r for r in methods if r is not m and r["kind"] == "pruned"
                      and not r["variant"] and r["criterion"] in refs
                      and r["base_plan"] == m["base_plan"]
                      and r["parent_method"] == m["parent_method"]]
        if m["scratch_of"]:
            source = by_label.get(m["scratch_of"])
            candidates += [source] if source is not None else []
            for ref in methods:  # and the references at the source's plan
                if source is not None and ref is not source and ref["kind"] == "pruned" \
                        and not ref["variant"] and ref["criterion"] in refs \
                        and ref["base_plan"] == source["base_plan"]:
                    candidates.append(ref)
        for ref in candidates:
            if ref["label"] in m["vs"] or ref["label"] not in by_label:
                continue
            m["vs"][ref["label"]] = {ci: diff_record(paired_difference(m["values"], ref["values"],
                                                                 method=ci)) for ci in CIS}


def trained_on(rows: list[Row]) -> dict[str, int]:
    """How many of the runs each CPU trained ("not recorded": runs older than the record)."""
    counts = Counter(r.cpu or "not recorded" for r in rows)
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def record(recipe_path: Path, refs: list[str], wall_seconds: float | None = None,
           out: Path | None = None, variant: str | None = None) -> Path:
    recipe = load_recipe(recipe_path, variant)
    run_dir = benchlib.ROOT / recipe.out_dir
    steps = plan_steps(recipe, recipe_folds(recipe))
    runs = [run_dir / s.run_name for s in steps if (run_dir / s.run_name / "metrics.json").is_file()]
    rows = collect_rows(runs)
    rows_by_key = {r.key: r for r in rows}
    budgets = {str((run_dir / s.run_name).resolve()): b for s in steps
               if s.kind == "prune" and (b := _budget(s.plan)) is not None}
    per_ci = {ci: {x.label: x for x in aggregate(rows, baseline="parent", ci=ci)} for ci in CIS}
    first = per_ci["t"]
    label_of = {r.key: label for label, s in first.items() for r in s.rows}
    methods = []
    for label, s in first.items():
        entry = describe(s, {ci: per_ci[ci][label] for ci in CIS if label in per_ci[ci]},
                         budgets, rows_by_key, label_of)
        entry["runs"] = [r.name for r in s.rows]  # names: the paths are this machine's
        methods.append(entry)
    _pair(methods, refs)
    result = {
        "benchmark": "recipe", "recipe": str(Path(recipe_path)), "name": recipe.name,
        "description": recipe.description, "dataset": recipe.dataset.name,
        "folds": recipe_folds(recipe), "seed": recipe.seed, "steps": len(steps),
        "finished": len(runs), "references": refs, "budget_tolerance": BUDGET_TOLERANCE,
        "methods": methods, "wall_seconds_this_call": wall_seconds,
        # the training loops' own seconds over every finished run (one thread per job)
        "train_seconds_total": round(sum(m["train_seconds"] for m in methods), 1),
        "machine": benchlib.machine(),
        # where the runs were trained: the same seed gives other weights on another CPU
        "trained_on": trained_on(rows),
        "variant": variant,
        "command": f"python bench/benchmark.py {recipe_path}"
                   + (f" --variant {variant}" if variant else "")
                   + (f" --vs {' '.join(refs)}" if refs else "")}
    path = out or benchlib.RESULTS / f"{recipe.name}.json"
    benchlib.save(path, result)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("recipes", nargs="+", type=Path)
    parser.add_argument("--no-run", action="store_true", help="only record what has finished")
    parser.add_argument("--vs", nargs="*", default=["tp-magnitude"],
                        help="reference criteria each method is paired with at its budget")
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--variant", help="the recipe's variant of this name (e.g. quick)")
    parser.add_argument("--out", type=Path,
                        help="the results file (default bench/results/<recipe name>.json); "
                             "with several recipes, a folder")
    args = parser.parse_args(argv)
    for path in args.recipes:
        recipe = load_recipe(path, args.variant)
        wall = None if args.no_run else run(recipe, args.jobs)
        out = args.out
        if out is not None and (len(args.recipes) > 1 or out.is_dir()):
            out = out / f"{recipe.name}.json"
        print(f"wrote {record(path, args.vs, wall, out, args.variant)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
