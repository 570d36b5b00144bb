"""`audioprune report`: tables and accuracy-vs-cost plots over run directories."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("report", help="tables and accuracy-vs-cost plots over run directories")
    p.add_argument("runs", nargs="+", help="run directories, globs, or folders holding runs "
                   "(pruned runs bring their parents)")
    p.add_argument("--out", required=True, help="directory for report.md, report.csv and PNGs")
    p.add_argument("--title", help="title of report.md")
    p.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    from audioprune.report import write_report

    report = write_report(args.runs, Path(args.out), title=args.title)
    print(report.table, end="")
    print(f"\nreport: {report.markdown}\ntable:  {report.csv}")
    for path in report.plots:
        print(f"plot:   {path}")
    return 0
