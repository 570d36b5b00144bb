"""`audioprune run RECIPE.yaml`: a whole recipe, resumable (audioprune.pipeline)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("run", help="run a YAML recipe: train -> prune -> fine-tune -> evaluate "
                       "-> profile -> report (resumable)")
    p.add_argument("recipe", help="recipe file (see recipes/) or a built-in name, e.g. demo")
    p.add_argument("--out", help="output directory (default runs/<recipe name>)")
    p.add_argument("--dataset", help="replace the recipe's dataset section with this dataset")
    p.add_argument("--data-root", help="where the dataset lives (overrides dataset.root)")
    p.add_argument("--device", help="cpu, cuda or cuda:N (overrides the recipe's device)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (logs only)")
    p.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    """`audioprune run RECIPE.yaml`: see audioprune.pipeline.runner."""
    from audioprune.pipeline.recipe import resolve_recipe
    from audioprune.pipeline.runner import run_recipe, summary, with_overrides

    recipe = with_overrides(resolve_recipe(args.recipe), dataset=args.dataset,
                            data_root=args.data_root, device=args.device)
    result = run_recipe(recipe, Path(args.out) if args.out else None, progress=not args.no_progress)
    print(summary(result))
    return 0
