"""`audioprune predict RUN FILE...`: tag or classify audio files with any run's model."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("predict", help="tag or classify audio files with a run's model",
                       description="Labels and scores per file (sigmoid for multi-label runs, "
                       "softmax for single-label ones). Files longer than the model's clip "
                       "length are cut into windows (half a window apart) whose scores are "
                       "pooled; files that cannot be decoded are named and skipped.")
    p.add_argument("run", help="run directory (trained, pruned, distilled or imported; an "
                   "int8 run from `audioprune quantize` runs its int8 model in ONNX Runtime)")
    p.add_argument("files", nargs="+", help="audio files (wav, flac, ogg, aiff, au; any rate)")
    p.add_argument("--top-k", type=int, default=5, help="labels shown per file (default 5)")
    p.add_argument("--pool", choices=["mean", "max"], default="mean",
                   help="how window scores are combined for long files (default mean)")
    p.add_argument("--hop", type=float, dest="hop_seconds", metavar="SECONDS",
                   help="window hop for long files (default half the clip length)")
    p.add_argument("--json", action="store_true", help="one JSON document on stdout")
    p.add_argument("--device", default="cpu")
    p.set_defaults(func=cmd_predict)


def cmd_predict(args: argparse.Namespace) -> int:
    from audioprune.runs.predict import model_description, predict_files

    done, skipped = predict_files(Path(args.run), args.files, args.top_k, args.pool,
                                  args.hop_seconds, args.device)
    which = model_description(Path(args.run))
    print(f"{args.run}: {which}", file=sys.stderr)
    for name, why in skipped:
        print(f"skipped {why}", file=sys.stderr)
    if args.json:
        print(json.dumps({"run": str(args.run), "model": which, "pool": args.pool,
                          "predictions": [p.to_dict() for p in done],
                          "skipped": [{"file": f, "reason": w} for f, w in skipped]}, indent=2))
    else:
        for p in done:
            top = ", ".join(f"{label} {score:.3f}" for label, score in p.top)
            win = f", {p.windows} windows ({args.pool})" if p.windows > 1 else ""
            print(f"{p.file} ({p.seconds:.1f} s{win}): {top}")
    return 0 if done or not skipped else 2
