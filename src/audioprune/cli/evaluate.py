"""`audioprune evaluate`: evaluate a run on its test split or another dataset."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from audioprune.cli.common import (
    add_data_args,
    data_spec,
    print_summary,
)


def register(sub: Any) -> None:
    p = sub.add_parser("evaluate", help="evaluate a run on its test split (or another dataset)")
    p.add_argument("run", help="run directory")
    add_data_args(p, required=False)
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_evaluate)


def cmd_evaluate(args: argparse.Namespace) -> int:
    from audioprune.runs.evaluate import evaluate_run
    from audioprune.runs.logs import setup_logging

    setup_logging()
    metrics, path = evaluate_run(Path(args.run), data_spec(args) if args.dataset else None,
                                 device=args.device, progress=not args.no_progress)
    print_summary(metrics, Path(args.run))
    print(f"metrics written to {path}")
    return 0
