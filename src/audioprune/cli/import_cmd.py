"""`audioprune import panns CHECKPOINT --model cnn14 --out RUN`: a pretrained model as a run."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    from audioprune.models.panns_checkpoint import PANNS_VARIANTS

    p = sub.add_parser("import", help="import a model trained elsewhere (PANNs checkpoints) as a "
                       "run directory")
    kinds = p.add_subparsers(dest="source", required=True)
    panns = kinds.add_parser("panns", help="a PANNs checkpoint (Cnn14_mAP=0.431.pth, ...), read "
                             "without unpickling code (torch.load weights_only)")
    panns.add_argument("checkpoint", help="the .pth file")
    panns.add_argument("--model", required=True, choices=list(PANNS_VARIANTS),
                       help="which PANNs model it holds (sets the front end it was trained with)")
    panns.add_argument("--out", required=True, help="run directory to create")
    p.set_defaults(func=cmd_import)


def cmd_import(args: argparse.Namespace) -> int:
    from audioprune.runs.imported import import_panns_run

    metrics = import_panns_run(Path(args.checkpoint), args.model, Path(args.out))
    src = metrics["source"]
    print(f"{args.out}: PANNs {src['variant']} ({src['arch']}), {metrics['num_classes']} classes, "
          f"params {metrics['params']:,}, MACs {metrics['macs']:,} per 10 s clip; "
          f"sha256 {src['sha256'][:12]}")
    return 0
