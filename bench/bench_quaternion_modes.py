"""Quaternion pruning: score-and-aggregate versus one concatenated node per quaternion, side by side.

A recipe, recipes/ravdess/quaternion_modes.yaml (its header says what the two modes are): the
qdcase21net parents of the RAVDESS actor folds, C1 and C2 pruned by 50% (whole quaternions) by
each criterion in both modes, scored on the test actors right after pruning. This script runs it
through the pipeline (resumable; --no-run reads what has finished) and records, per criterion:
each mode's test accuracy per fold with its mean and 95% interval, the paired difference concat -
aggregate, and the share of the removed quaternions the two modes have in common (from each
run's rounds/round1/round.json). wdc's two modes must remove the same quaternions, and so must
l1's (the engine's docstring proves it); the record says whether they did.

    .venv/bin/python bench/bench_quaternion_modes.py            # runs the recipe, then records
    .venv/bin/python bench/bench_quaternion_modes.py --no-run   # only what has finished

Results: bench/results/quaternion_modes.json.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from audioprune.fileio import read_json
from audioprune.pipeline.recipe import load_recipe
from audioprune.pipeline.runner import recipe_folds
from audioprune.pipeline.steps import plan_steps
from audioprune.report.stats import paired_difference

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402
from benchmark import diff_record, interval_record, run  # noqa: E402  (the recorder's shapes)

RECIPE = benchlib.ROOT / "recipes" / "ravdess" / "quaternion_modes.yaml"
MODES = ("aggregate", "concat")
SAME_BY_PROOF = ("wdc", "l1")  # mean-aggregate and concat coincide (engine docstring)


def _removed(run: Path) -> dict[str, set[int]]:
    return {layer: set(idx) for layer, idx in
            read_json(run / "rounds" / "round1" / "round.json")["removed"].items()}


def record(recipe_path: Path = RECIPE, out: Path | None = None,
           wall_seconds: float | None = None) -> Path:
    recipe = load_recipe(recipe_path)
    run_dir = benchlib.ROOT / recipe.out_dir
    steps = plan_steps(recipe, recipe_folds(recipe))
    done = [s for s in steps if (run_dir / s.run_name / "metrics.json").is_file()]
    acc: dict[str, dict[str, dict[str, float]]] = {}  # criterion -> mode -> unit -> accuracy
    runs: dict[tuple[str, str, str], Path] = {}
    parents: dict[str, float] = {}
    for s in done:
        unit = f"fold{s.fold}"
        metrics = read_json(run_dir / s.run_name / "metrics.json")
        if s.kind == "train":
            parents[unit] = metrics["accuracy"]
            continue
        mode = s.group.quaternion_mode
        acc.setdefault(s.criterion.tag, {}).setdefault(mode, {})[unit] = metrics["accuracy"]
        runs[(s.criterion.tag, mode, unit)] = run_dir / s.run_name
    criteria = {}
    for crit, by_mode in acc.items():
        shared = {}
        for unit in sorted(set(by_mode.get("aggregate", {})) & set(by_mode.get("concat", {}))):
            a, c = (_removed(runs[(crit, m, unit)]) for m in MODES)
            total = sum(len(v) for v in a.values())
            shared[unit] = sum(len(a[k] & c.get(k, set())) for k in a) / total if total else 1.0
        entry: dict[str, Any] = {m: {"values": by_mode.get(m, {}),
                                     "mean_ci_t": interval_record(by_mode.get(m, {}))}
                                 for m in MODES}
        entry["concat_minus_aggregate"] = diff_record(paired_difference(
            by_mode.get("concat", {}), by_mode.get("aggregate", {}), method="t"))
        entry["shared_fraction"] = shared
        entry["shared_fraction_mean"] = sum(shared.values()) / len(shared) if shared else None
        if crit in SAME_BY_PROOF:
            entry["same_by_proof_holds"] = bool(shared) and all(v == 1.0 for v in shared.values())
        criteria[crit] = entry
    name = recipe_path.resolve()
    name = name.relative_to(benchlib.ROOT) if name.is_relative_to(benchlib.ROOT) else name
    result = {"benchmark": "quaternion-modes", "recipe": str(name),
              "steps": len(steps), "finished": len(done), "parents": parents,
              "criteria": criteria, "wall_seconds_this_call": wall_seconds,
              "machine": benchlib.machine(),
              "command": "python bench/bench_quaternion_modes.py"}
    path = out or benchlib.RESULTS / "quaternion_modes.json"
    benchlib.save(path, result)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--no-run", action="store_true", help="only record what has finished")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    wall = None if args.no_run else run(load_recipe(RECIPE), args.jobs)
    print(f"wrote {record(wall_seconds=wall)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
