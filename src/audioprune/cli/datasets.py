"""`audioprune datasets [check NAME]`: list the layouts, or validate a dataset tree."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from audioprune.cli.common import split_options
from audioprune.errors import UserError


def register(sub: Any) -> None:
    p = sub.add_parser("datasets", help="list the dataset layouts audioprune reads, or check one",
                       description="`audioprune datasets [-v]` lists the layouts; `audioprune "
                       "datasets check NAME --data-root DIR` decodes every file of a tree and "
                       "reports files, classes, splits and every problem, without training (exit 1 "
                       "when problems are found).")
    p.add_argument("action", nargs="?", choices=["check"], help="check: validate a dataset tree")
    p.add_argument("name", nargs="?", help="the dataset to check (see the list)")
    p.add_argument("-v", "--verbose", action="store_true", help="show each expected tree")
    g = p.add_argument_group("check")
    g.add_argument("--data-root", help="directory holding the dataset in its official layout")
    g.add_argument("--split", help="split scheme, as for train")
    g.add_argument("--test-fold", type=int)
    g.add_argument("--val-fold", type=int)
    g.add_argument("--subset")
    g.add_argument("--split-file", type=Path)
    g.add_argument("--val-fraction", type=float)
    g.add_argument("--seed", type=int, default=0, help="seed of the validation hold-out")
    g.add_argument("--strict", action="store_true", help="(kept for old scripts: the exit status "
                   "is 1 whenever problems are found)")
    g.add_argument("--json", action="store_true", help="print the report as one JSON object "
                   "(every problem with its kind) instead of text")
    g.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_datasets)


def cmd_datasets(args: argparse.Namespace) -> int:
    from audioprune.data.registry import list_datasets

    if args.action == "check":
        return cmd_datasets_check(args)
    for info in list_datasets():
        fe = info.frontend
        print(f"{info.name:13s} {info.description}")
        print(f"{'':13s} front end: {fe.sample_rate} Hz, {fe.n_mels} mels, hop {fe.hop_length}, "
              f"clips {fe.clip_seconds} s")
        if args.verbose:
            print("\n".join(f"{'':13s} {line}" for line in info.layout.splitlines()))
        print()
    return 0


def cmd_datasets_check(args: argparse.Namespace) -> int:
    """`audioprune datasets check NAME --data-root DIR`: the report; exit 1 with problems."""
    from audioprune.data.check import check_dataset

    if not args.name:
        raise UserError("datasets check needs a dataset name, e.g. "
                        "`audioprune datasets check fsdd --data-root DIR`")
    report = check_dataset(args.name, args.data_root, split_options(args), seed=args.seed,
                           progress=not args.no_progress)
    print(json.dumps(report.to_dict(), indent=1) if args.json else report.render())
    return 1 if report.problems else 0
