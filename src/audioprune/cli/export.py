"""`audioprune export`: ONNX export with a parity check in ONNX Runtime."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("export", help="export a run's model to ONNX (quaternion layers fused, BN "
                       "folded) and check it against PyTorch in ONNX Runtime")
    p.add_argument("run", help="run directory")
    p.add_argument("--onnx", required=True, metavar="FILE", help="the .onnx file to write")
    p.add_argument("--opset", type=int, default=18, help="ONNX opset (default 18)")
    p.add_argument("--with-frontend", action="store_true", help="export waveform -> logits "
                   "(the log-mel front end included) instead of features -> logits")
    p.add_argument("--data-root", help="where the run's dataset lives now, for the parity "
                   "check's real inputs (default: the run's config.json)")
    p.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    """`audioprune export RUN --onnx FILE`: see audioprune.measure.onnx_export."""
    from audioprune.runs.export import export_run

    r = export_run(Path(args.run), Path(args.onnx), opset=args.opset,
                   with_frontend=args.with_frontend, data_root=args.data_root)
    shape = ", ".join(map(str, r["input_shape"]))
    print(f"{r['path']}: {r['arch']} ({r['input']} ({shape}) -> logits), opset {r['opset']}, "
          f"{r['size_bytes']:,} bytes")
    print(f"parity with PyTorch on {r['inputs']}: max |diff| {r['max_abs_diff']:.2e} "
          f"(limit {r['tolerance']:g})")
    return 0
