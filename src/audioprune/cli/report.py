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
    p.add_argument("--baseline", default="parent", help="what each method is compared with, "
                   "unit by unit (fold x seed): parent (default: each run against its own "
                   "unpruned parent), a criterion (e.g. l1: the same plan pruned by l1) or a "
                   "model (e.g. dcase21net: unpruned models against it)")
    p.add_argument("--ci", choices=["bootstrap", "t"], default="bootstrap",
                   help="95%% interval: percentile bootstrap over the units (default) or "
                   "Student's t (more conservative with few units)")
    p.add_argument("--budget", help="mark each run within or outside a complexity budget: "
                   "dcase2024 (128 kB of parameters at the run's precision, 30 MMACs per second "
                   "of audio) or params_bytes=128k,macs=30M")
    p.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    from audioprune.report import write_report

    report = write_report(args.runs, Path(args.out), title=args.title, baseline=args.baseline,
                          ci=args.ci, budget=args.budget)
    print(report.table, end="")
    if report.summary_table:
        print("\nover folds and seeds (mean [95% CI]; * = interval of the difference excludes 0):")
        print(report.summary_table, end="")
        print(f"summary: {report.summary_csv}")
    print(f"\nreport: {report.markdown}\ntable:  {report.csv}")
    for path in report.plots:
        print(f"plot:   {path}")
    return 0
