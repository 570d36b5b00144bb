"""The FSDD studies behind the closing notes of the quaternion and pruning issues: recipes run by
the recipe runner (audioprune.pipeline: a step graph, resumable, --workers steps at once) and
summarised from the run directories' metrics.json.

    python bench/fsdd_study.py qcnn    # dcase21net vs qdcase21net, 3 seeds, official split
    python bench/fsdd_study.py prune   # C1+C2 50% pruning, 5 criteria x 3 seeds x 3 splits
    python bench/fsdd_study.py all --workers 2
    python bench/fsdd_study.py summary # tables only, from whatever runs exist

Each (split, parent epochs) is one recipe (runs under --runs/<split>-e<epochs>, default
runs/fsdd-study): its parents (`<model>-s<seed>`) and prune groups per fine-tuning length
(`<model>-ft<E>-<criterion>-C1-50_C2-50-s<seed>`), the seeds as its matrix. Finished steps are
skipped, so the script is resumable. With --workers 2 each step uses one torch thread: on 2 cores
two small-model runs side by side finish sooner than one after the other with two threads each.
Results (means, spreads, per seed) are written to bench/results/fsdd_<study>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
from pathlib import Path

from audioprune.fileio import read_json, write_json
from audioprune.pipeline.recipe import Recipe, parse_recipe
from audioprune.pipeline.runner import run_recipe

ROOT = Path(__file__).resolve().parents[1]
FSDD = Path(os.environ.get("FSDD_ROOT", ROOT.parent / "shared" / "datasets" / "fsdd"))
SEEDS = (0, 1, 2)
ALL_SEEDS = tuple(range(10))  # the summary takes every seed that was run (--seeds)
CRITERIA = ("wdc", "betweenness", "l1", "fpgm", "random")
# criterion variants: how `audioprune prune` is asked for them (any other name: --criterion NAME)
VARIANTS = {
    # betweenness with ties in index order (what "betweenness" did before its degree tie-break)
    "betweenness-index": ("betweenness", {"tie_break": "index"}),
    # betweenness with the authors' edge weights (the raw signed cosine as networkx weight)
    "betweenness-compat": ("betweenness", {"paper_compat": True}),
}
WITH_INDEX_TIES = CRITERIA + ("betweenness-index",)
# (model, split, parent training epochs, fine-tuning epochs, criteria). The 5-epoch studies came
# first. On "speaker:nicolas" the validation clips come from the training speakers, so the best
# epoch is picked blind to speaker generalisation; "speaker:nicolas,val:theo" holds out a
# validation speaker (theo) as well, so that choice measures what the test measures. The 10-epoch
# studies use the prune default of 10 fine-tuning epochs; the 30-epoch ones ask whether the gaps
# between criteria close with longer fine-tuning.
STUDIES = [
    ("dcase21net", "official", 40, 5, WITH_INDEX_TIES),
    ("dcase21net", "speaker:nicolas", 20, 5, WITH_INDEX_TIES),
    ("qdcase21net", "official", 40, 5, ("wdc", "l1")),
    ("dcase21net", "speaker:nicolas,val:theo", 20, 10,
     WITH_INDEX_TIES + ("betweenness-compat",)),
    ("dcase21net", "official", 40, 10, WITH_INDEX_TIES),
    ("qdcase21net", "official", 40, 10, ("wdc", "l1")),
    # longer fine-tuning (the paper fine-tunes far longer than 10 epochs), on the same parents
    ("dcase21net", "speaker:nicolas,val:theo", 20, 30, ("wdc", "betweenness", "random")),
    ("dcase21net", "official", 40, 30, ("wdc", "betweenness", "random")),
]


def study_name(model: str, split: str, ft_epochs: int) -> str:
    return f"{model} {split}" + (f" ft{ft_epochs}" if ft_epochs != 5 else "")


def _slug(split: str) -> str:
    return split.replace(":", "-").replace(",", "-")


def criterion_spec(name: str) -> dict:
    """How a recipe asks for a criterion or one of its VARIANTS."""
    if name in VARIANTS:
        return {"name": VARIANTS[name][0], "options": VARIANTS[name][1], "label": name}
    return {"name": name}


def recipe_name(split: str, epochs: int) -> str:
    return f"{_slug(split)}-e{epochs}"


def study_recipes(seeds: tuple[int, ...] = SEEDS, only: str | None = None,
                  criteria_only: tuple[str, ...] | None = None, qcnn: bool = True,
                  prune: bool = True) -> list[Recipe]:
    """The studies as recipes, one per (split, parent epochs) so that the studies sharing a
    parent share its run: the parents of every model trained there (the QCNN comparison: both
    models on the official split) and one prune group per (model, fine-tuning epochs), C1 and C2
    at 50 %, `seeds` as the matrix. Speaker-independent splits first."""
    groups: dict[tuple[str, int], dict] = {}
    if qcnn:
        for model in ("dcase21net", "qdcase21net"):
            groups.setdefault(("official", 40), {"models": [], "prune": []})["models"].append(model)
    for model, split, epochs, ft_epochs, criteria in STUDIES if prune else []:
        if only and not re.search(only, study_name(model, split, ft_epochs)):
            continue
        chosen = [c for c in criteria if not criteria_only or c in criteria_only]
        if not chosen:
            continue
        g = groups.setdefault((split, epochs), {"models": [], "prune": []})
        if model not in g["models"]:
            g["models"].append(model)
        g["prune"].append({"models": [model], "criteria": [criterion_spec(c) for c in chosen],
                           "per_layer": [{"C1": 0.5, "C2": 0.5}], "finetune": {"epochs": ft_epochs},
                           "tag": f"ft{ft_epochs}"})
    recipes = []
    for (split, epochs), g in sorted(groups.items(), key=lambda kv: "speaker" not in kv[0][0]):
        recipes.append(parse_recipe({
            "name": recipe_name(split, epochs),
            "dataset": {"name": "fsdd", "root": str(FSDD), "split": split},
            "seeds": list(seeds), "models": [{"name": m, "train": {"epochs": epochs}}
                                             for m in g["models"]],
            "prune": g["prune"], "profile": False}))
    return recipes


def parent_run(runs: Path, model: str, split: str, epochs: int, seed: int) -> Path:
    return runs / recipe_name(split, epochs) / f"{model}-s{seed}"


def prune_run(runs: Path, model: str, split: str, epochs: int, ft_epochs: int, criterion: str,
              seed: int) -> Path:
    return runs / recipe_name(split, epochs) / f"{model}-ft{ft_epochs}-{criterion}-C1-50_C2-50-s{seed}"


def mean_sd(values: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(values), "sd": statistics.stdev(values) if len(values) > 1
            else 0.0, "n": len(values), "values": values}


def load(path: Path) -> dict | None:
    p = path / "metrics.json"
    return json.loads(p.read_text()) if p.exists() else None


def summarise_qcnn(runs: Path) -> dict:
    out: dict = {}
    for model in ("dcase21net", "qdcase21net"):
        ms = [m for s in SEEDS if (m := load(parent_run(runs, model, "official", 40, s)))]
        if ms:
            out[model] = {"accuracy": mean_sd([m["accuracy"] for m in ms]),
                          "params": ms[0]["params"], "macs": ms[0]["macs"]}
    return out


def summarise_prune(runs: Path) -> dict:
    out: dict = {}
    for model, split, epochs, ft_epochs, criteria in STUDIES:
        parents = {s: parent_run(runs, model, split, epochs, s) for s in ALL_SEEDS}
        parent_ms = [m for p in parents.values() if (m := load(p))]
        if not parent_ms:
            continue
        block: dict = {"finetune_epochs": ft_epochs,
                       "parent": {"accuracy": mean_sd([m["accuracy"] for m in parent_ms]),
                                  "params": parent_ms[0]["params"], "macs": parent_ms[0]["macs"]}}
        for c in criteria:
            ms = [m for s in parents
                  if (m := load(prune_run(runs, model, split, epochs, ft_epochs, c, s)))]
            if not ms:
                continue
            block[c] = {
                "before_finetune": mean_sd([m["before_finetune"]["accuracy"] for m in ms]),
                "after_finetune": mean_sd([m["accuracy"] for m in ms]),
                "drop_points": mean_sd([100 * (m["parent"]["accuracy"] - m["accuracy"]) for m in ms]),
                "params": ms[0]["params"], "macs": ms[0]["macs"],
                "params_reduction": ms[0]["reduction"]["params"],
                "macs_reduction": ms[0]["reduction"]["macs"],
            }
        if any(c in block for c in criteria):  # a study not run yet stays out
            out[study_name(model, split, ft_epochs)] = block
    return out


def _runs_in(block: dict) -> int:
    """How many runs a summary entry rests on (every accuracy mean_sd in it)."""
    if isinstance(block, dict):
        if "n" in block and "values" in block:
            return int(block["n"])
        return sum(_runs_in(v) for v in block.values())
    return 0


def keep_saved(saved: dict, fresh: dict, depth: int = 1, where: str = "") -> dict:
    """`fresh` over `saved`, entry by entry (`depth` levels down: study, then criterion), except
    where `fresh` rests on fewer runs: a summary made in a checkout whose runs/ is gone, or where
    only some criteria were re-run, must not erase what was measured before (runs/ is not kept in
    git, the JSON is)."""
    out = dict(saved)
    for name, block in fresh.items():
        old = saved.get(name)
        if depth > 1 and isinstance(old, dict) and isinstance(block, dict):
            out[name] = keep_saved(old, block, depth - 1, f"{where}{name} / ")
        elif old is not None and _runs_in(block) < _runs_in(old):
            print(f"kept the saved {where}{name}: it rests on {_runs_in(old)} runs, the runs "
                  f"here on {_runs_in(block)}", file=sys.stderr)
        else:
            out[name] = block
    return out


def pct(d: dict) -> str:
    return f"{100 * d['mean']:.2f} ± {100 * d['sd']:.2f} (n={d['n']})"


def print_tables(qcnn: dict, prune: dict) -> None:
    for model, r in qcnn.items():
        print(f"{model:12s} test accuracy {pct(r['accuracy'])}  params {r['params']:,}  "
              f"MACs {r['macs']:,}")
    for study, block in prune.items():
        p = block["parent"]
        print(f"\n{study} ({block['finetune_epochs']} fine-tuning epochs): parent accuracy {pct(p['accuracy'])}, params {p['params']:,}, "
              f"MACs {p['macs']:,}")
        for c, r in block.items():
            if c in ("parent", "finetune_epochs"):
                continue
            print(f"  {c:12s} before FT {pct(r['before_finetune'])}  after FT "
                  f"{pct(r['after_finetune'])}  drop {r['drop_points']['mean']:.2f} pts  "
                  f"params -{100 * r['params_reduction']:.1f}%  MACs -{100 * r['macs_reduction']:.1f}%")


def markdown(prune: dict) -> str:
    """The pruning studies as Markdown tables (what README.md shows)."""
    out = []
    for study, block in prune.items():
        p = block["parent"]
        seeds = p["accuracy"]["n"]
        out.append(f"**{study}** ({block['finetune_epochs']} fine-tuning epochs; parent "
                   f"{100 * p['accuracy']['mean']:.1f} ± {100 * p['accuracy']['sd']:.1f} %, "
                   f"{seeds} seeds)\n")
        out.append("| criterion | before fine-tuning % | after fine-tuning % | drop (points), mean | "
                   "drop per seed | params | MACs |")
        out.append("|---|---|---|---|---|---|---|")
        for c, r in block.items():
            if c in ("parent", "finetune_epochs"):
                continue
            b, a, d = r["before_finetune"], r["after_finetune"], r["drop_points"]
            out.append(f"| {c} | {100 * b['mean']:.1f} ± {100 * b['sd']:.1f} | {100 * a['mean']:.1f} ± "
                       f"{100 * a['sd']:.1f} | {d['mean']:.2f} | "
                       f"{', '.join(f'{v:+.1f}' for v in d['values'])} | "
                       f"-{100 * r['params_reduction']:.1f}% | -{100 * r['macs_reduction']:.1f}% |")
        out.append("")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("study", choices=["qcnn", "prune", "all", "summary"])
    ap.add_argument("--runs", type=Path, default=ROOT / "runs" / "fsdd-study")
    ap.add_argument("--workers", type=int, default=2, help="steps run at once (audioprune run "
                    "--jobs)")
    ap.add_argument("--markdown", action="store_true", help="also print the pruning tables as "
                    "Markdown")
    ap.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    ap.add_argument("--only", help="prune: only the studies whose name matches this regular "
                    "expression, e.g. 'val:theo ft10' or '^dcase21net official ft10'")
    ap.add_argument("--criteria", nargs="+", help="prune: only these criteria (the summary "
                    "keeps the saved results of the others)")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads per step (default: cores / workers)")
    args = ap.parse_args()
    if not FSDD.exists():
        sys.exit(f"FSDD not found at {FSDD}: set FSDD_ROOT to the free-spoken-digit-dataset folder")
    if args.study != "summary":
        recipes = study_recipes(tuple(args.seeds), args.only, tuple(args.criteria or ()),
                                qcnn=args.study in ("qcnn", "all"),
                                prune=args.study in ("prune", "all"))
        for recipe in recipes:  # the recipe runner: resumable, a step graph, --jobs workers
            run_recipe(recipe, args.runs / recipe.name, progress=False,
                       executor="local" if args.workers > 1 else "sequential",
                       jobs=args.workers, threads=args.threads)
    qcnn, prune = summarise_qcnn(args.runs), summarise_prune(args.runs)
    results = ROOT / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    merged = []
    for name, data, depth in (("fsdd_qcnn", qcnn, 1), ("fsdd_prune", prune, 2)):
        path = results / f"{name}.json"
        data = keep_saved(read_json(path) if path.is_file() else {}, data, depth)
        if data:
            write_json(path, data)
        merged.append(data)
    qcnn, prune = merged
    print_tables(qcnn, prune)
    if args.markdown:
        print("\n" + markdown(prune))


if __name__ == "__main__":
    main()
