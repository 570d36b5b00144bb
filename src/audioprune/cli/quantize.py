"""`audioprune quantize RUN --out RUN_INT8`: int8 post-training quantization (ONNX Runtime)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("quantize", help="int8 quantization of a run (ONNX Runtime), evaluated",
                       description="Export the run's inference form to ONNX, quantize it to int8 "
                       "with ONNX Runtime (static: QDQ, calibrated on training batches; dynamic: "
                       "weights only) and evaluate the int8 model on the test split.")
    p.add_argument("run", help="the fp32 run directory (trained, pruned, distilled, imported)")
    p.add_argument("--out", required=True, help="run directory to create")
    p.add_argument("--method", choices=["static", "dynamic"], default="static")
    p.add_argument("--calibration-batches", type=int, default=8, metavar="N",
                   help="training batches that calibrate the activation ranges (static)")
    p.add_argument("--per-tensor", dest="per_channel", action="store_false",
                   help="one weight scale per tensor instead of per output channel")
    p.add_argument("--per-channel", dest="per_channel", action="store_true", default=True,
                   help="one weight scale per output channel (default)")
    p.add_argument("--qat-epochs", type=int, default=0, metavar="N",
                   help="quantization-aware fine-tuning epochs before quantizing (fake-quantized "
                   "weights and inputs; default 0: post-training only)")
    p.add_argument("--full-range-weights", dest="reduce_range", action="store_false",
                   help="8-bit weights instead of the default 7: only for CPUs with VNNI or ARM "
                   "(ONNX Runtime's int8 kernels saturate with them on other x86 CPUs)")
    p.add_argument("--data-root", help="where the run's dataset lives now (if it moved)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true", help="no progress bars (logs only)")
    p.set_defaults(func=cmd_quantize)


def cmd_quantize(args: argparse.Namespace) -> int:
    from audioprune.runs.logs import setup_logging
    from audioprune.runs.quantize import quantize_run

    setup_logging()
    m = quantize_run(Path(args.run), Path(args.out), method=args.method,
                     calibration_batches_n=args.calibration_batches, per_channel=args.per_channel,
                     qat_epochs=args.qat_epochs, data_root=args.data_root, seed=args.seed,
                     progress=not args.no_progress, reduce_range=args.reduce_range)
    head = "mAP" if "mAP" in m else "accuracy"
    fp32 = m["fp32_onnx"].get(head)
    print(f"{args.out}: int8 ({m['quantization']['method']}) {head} {m[head]:.4f} vs fp32 "
          f"{fp32:.4f} (ONNX Runtime, {m['num_examples']} test clips); {m['size_bytes']:,} B "
          f"= {m['size_ratio']:.2f} of fp32; parent {m['parent']['run']}")
    return 0
