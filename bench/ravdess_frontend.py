"""Which front end for RAVDESS: recipes/ravdess/frontend.yaml run in each of its variants, scored on
the VALIDATION actors (the test actors never decide; their numbers are recorded beside).

For every variant: its front-end settings, MACs per clip (the body), parameters, the per-fold
validation accuracy and unweighted average recall with their mean and 95% interval (Student's t
over the folds), the training seconds per run, and the same for the test split. The choice
rule: the highest mean validation UAR; variants whose mean is within the spread of the best
(their paired difference's interval includes 0) are ties, and among ties the one with the fewest
MACs wins (it costs every later run less).

    .venv/bin/python bench/ravdess_frontend.py            # runs what is missing, then records
    .venv/bin/python bench/ravdess_frontend.py --no-run   # records what has finished

Writes bench/results/ravdess_frontend.json.
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
from benchmark import interval_record  # noqa: E402  (the recorder's shape of an interval)
from benchmark import run as run_recipe_jobs  # noqa: E402

RECIPE = benchlib.ROOT / "recipes" / "ravdess" / "frontend.yaml"
RESULT = benchlib.RESULTS / "ravdess_frontend.json"
VARIANTS = [None, "audioset32k", "hop20", "hop20-mel40", "hop20-clip5.3"]


def measure(variant: str | None, run: bool) -> dict[str, Any]:
    recipe = load_recipe(RECIPE, variant)
    out = benchlib.ROOT / recipe.out_dir
    if run:
        run_recipe_jobs(recipe, 2)
    steps = plan_steps(recipe, recipe_folds(recipe))
    per_fold: dict[str, dict[str, Any]] = {}
    for step in steps:
        path = out / step.run_name / "metrics.json"
        if not path.is_file():
            continue
        m = read_json(path)
        per_fold[str(m["fold"])] = {
            "val_accuracy": m["val"]["accuracy"], "val_uar": m["val"]["uar"],
            "test_accuracy": m["accuracy"], "test_uar": m["uar"], "macs": m["macs"],
            "params": m["params"], "train_seconds": m["train_seconds"]}
    folds = sorted(per_fold)
    entry: dict[str, Any] = {"variant": variant or "base", "frontend": recipe.dataset.frontend,
                             "epochs": recipe.models[0].train.epochs, "per_fold": per_fold}
    if folds:
        first = per_fold[folds[0]]
        entry.update({"macs": first["macs"], "params": first["params"]})
        for key in ("val_accuracy", "val_uar", "test_accuracy", "test_uar", "train_seconds"):
            entry[key] = interval_record([per_fold[k][key] for k in folds])
    return entry


def choose(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """The rule of the module doc, on validation UAR."""
    done = [e for e in entries if e.get("val_uar") and e["val_uar"]["n"] >= 2]
    best = max(done, key=lambda e: e["val_uar"]["mean"])
    ties = []
    for e in done:
        folds = sorted(set(e["per_fold"]) & set(best["per_fold"]))
        d = paired_difference({k: e["per_fold"][k]["val_uar"] for k in folds},
                              {k: best["per_fold"][k]["val_uar"] for k in folds}, method="t")
        e["val_uar_vs_best"] = None if d is None else {
            "mean": d.interval.mean, "low": d.interval.low, "high": d.interval.high,
            "significant": d.significant}
        if e is best or (d is not None and not d.significant):
            ties.append(e)
    chosen = min(ties, key=lambda e: e["macs"])
    return {"rule": "highest mean validation UAR; among the variants whose paired difference "
                    "to it includes 0, the fewest MACs",
            "best_val_uar": best["variant"], "ties": [e["variant"] for e in ties],
            "chosen": chosen["variant"], "frontend": chosen["frontend"]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--no-run", action="store_true", help="only record what has finished")
    args = parser.parse_args(argv)
    entries = [measure(v, not args.no_run) for v in VARIANTS]
    result = {"benchmark": "ravdess front end", "recipe": str(RECIPE.relative_to(benchlib.ROOT)),
              "model": "dcase21net", "selection": "validation actors only",
              "variants": entries, "choice": choose(entries), "machine": benchlib.machine(),
              "dataset_citation": "Livingstone & Russo (2018), PLoS ONE 13(5): e0196391",
              "command": "python bench/ravdess_frontend.py"}
    benchlib.save(RESULT, result)
    print(f"wrote {RESULT}: chosen {result['choice']['chosen']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
