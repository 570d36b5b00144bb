"""`audioprune run RECIPE.yaml`: a whole recipe, resumable (audioprune.pipeline)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from audioprune.errors import UserError


def register(sub: Any) -> None:
    p = sub.add_parser("run", help="run a YAML recipe: train -> prune -> fine-tune -> evaluate "
                       "-> profile -> report (resumable)")
    p.add_argument("recipe", help="recipe file (see recipes/) or a built-in name, e.g. demo")
    p.add_argument("--out", help="output directory (default: the recipe's out:, or runs/<recipe name>)")
    p.add_argument("--variant", help="run the recipe's variant of this name (its `variants:` "
                   "block), e.g. full: the paper's own data; runs go to runs/<name>-<variant>")
    p.add_argument("--dataset", help="replace the recipe's dataset section with this dataset")
    p.add_argument("--data-root", help="where the dataset lives (overrides dataset.root)")
    p.add_argument("--device", help="cpu, cuda or cuda:N (overrides the recipe's device)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (logs only)")
    par = p.add_argument_group("parallel sweeps")
    par.add_argument("--jobs", type=int, default=1, metavar="N",
                     help="run N steps at once (worker processes; a GPU per job when the recipe "
                     "trains on CUDA); default 1: one after another")
    par.add_argument("--executor", choices=["local", "ray"], default="local",
                     help="local worker processes (default) or a Ray cluster (pip install "
                     "'audioprune[ray]')")
    par.add_argument("--address", help="--executor ray: the cluster (auto or HOST:PORT; default: "
                     "start a local one with --jobs workers)")
    par.add_argument("--threads-per-job", type=int, metavar="N",
                     help="torch threads of every step (default: cores // jobs; the same N gives "
                     "the same metrics whatever the executor)")
    par.add_argument("--status", action="store_true",
                     help="show what is done, running, failed or still to do, and exit")
    p.set_defaults(func=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    """`audioprune run RECIPE.yaml`: see audioprune.pipeline.runner."""
    from audioprune.pipeline.recipe import resolve_recipe
    from audioprune.pipeline.runner import run_recipe, summary, with_overrides

    recipe = with_overrides(resolve_recipe(args.recipe, args.variant), dataset=args.dataset,
                            data_root=args.data_root, device=args.device)
    out = Path(args.out) if args.out else None
    if args.status:
        return print_status(recipe, out)
    if args.threads_per_job is not None and args.threads_per_job < 1:
        raise UserError(f"--threads-per-job must be at least 1, got {args.threads_per_job}")
    result = run_recipe(recipe, out, progress=not args.no_progress,
                        executor=args.executor if (args.jobs > 1 or args.executor == "ray")
                        else "sequential", jobs=args.jobs, threads=args.threads_per_job,
                        address=args.address)
    print(summary(result))
    return 0


def print_status(recipe: Any, out: Path | None) -> int:
    from audioprune.pipeline.sweep import sweep_status

    rows = sweep_status(recipe, out)
    width = max(len(r["step"]) for r in rows)
    for r in rows:
        extra = f"  {r['error']}" if r.get("error") else ""
        print(f"{r['state']:8s} {r['kind']:8s} {r['step']:{width}s}"
              f"{'  profiled' if r['profiled'] else ''}{extra}")
    counts = {s: sum(r["state"] == s for r in rows) for s in
              ("done", "running", "failed", "partial", "new")}
    print(", ".join(f"{n} {s}" for s, n in counts.items() if n) + f" of {len(rows)} steps")
    return 0
