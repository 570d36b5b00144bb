"""`audioprune demo`: the built-in recipe on synthetic (or given) data."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("demo", help="the main job: train and evaluate on the built-in data")
    p.add_argument("--out", help="directory for the demo's runs (default runs/demo, or "
                   "runs/demo-DATASET with --dataset)")
    p.add_argument("--dataset", default="synthetic")
    p.add_argument("--data-root")
    p.add_argument("--epochs", type=int, default=None, help="override the demo's epoch count")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_demo)


def cmd_demo(args: argparse.Namespace) -> int:
    from audioprune.demo import run_demo

    run_demo(Path(args.out) if args.out else None, dataset=args.dataset, data_root=args.data_root,
             epochs=args.epochs, progress=not args.no_progress)
    return 0
