"""`audioprune profile`: parameters, MACs, size and latency of a run."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from audioprune.errors import UserError


def register(sub: Any) -> None:
    p = sub.add_parser("profile", help="parameters, MACs, size and latency (eager, ONNX Runtime) "
                       "of a run; writes RUN/profile.json")
    p.add_argument("run", help="run directory")
    p.add_argument("--json", action="store_true", help="print profile.json instead of tables")
    p.add_argument("--threads", type=int, help="intra-op threads for both runtimes (default: "
                   "torch's, i.e. OMP_NUM_THREADS or the core count)")
    p.add_argument("--batch-sizes", default="1,32", help="batch sizes to time (default 1,32)")
    p.add_argument("--no-onnx", action="store_true", help="skip the ONNX export and ONNX "
                   "Runtime timing")
    p.add_argument("--budget", help="check a complexity budget: dcase2024 (also dcase2022/2023/"
                   "2025: 128 kB of parameters at the run's precision, 30 MMACs per second of "
                   "audio) or params_bytes=128k,macs=30M; exit 1 when it fails")
    p.set_defaults(func=cmd_profile)


def cmd_profile(args: argparse.Namespace) -> int:
    """`audioprune profile RUN`: see audioprune.runs.profile."""
    from audioprune.runs.logs import setup_logging
    from audioprune.runs.profile import PROFILE_JSON, profile_run
    from audioprune.runs.profile_text import profile_summary

    if not args.json:
        setup_logging()
    try:
        sizes = tuple(int(b) for b in args.batch_sizes.split(",") if b.strip())
    except ValueError:
        raise UserError(f"--batch-sizes {args.batch_sizes!r}: give integers separated by "
                        f"commas, e.g. 1,32") from None
    prof = profile_run(Path(args.run), batch_sizes=sizes, threads=args.threads,
                       onnx=not args.no_onnx, budget=args.budget)
    if args.json:
        print(json.dumps(prof, indent=2))
    else:
        print(profile_summary(prof))
        print(f"\nwritten to {Path(args.run) / PROFILE_JSON}")
    return 0 if prof.get("budget", {}).get("pass", True) else 1
