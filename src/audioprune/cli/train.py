"""`audioprune train`: train a model on a dataset into a run directory."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from audioprune.cli.common import (
    add_data_args,
    add_train_args,
    data_spec,
    epochs_override,
    model_kwargs,
    print_summary,
    train_config,
    training_session,
)
from audioprune.errors import UserError


def register(sub: Any) -> None:
    p = sub.add_parser("train", help="train a model on a dataset into a run directory")
    p.add_argument("--model", help="model name (see `audioprune models`)")
    p.add_argument("--width", type=float, help="width multiplier for the model's layers")
    p.add_argument("--model-arg", action="append", metavar="KEY=VALUE",
                   help="extra model argument, e.g. dropout=0.2")
    p.add_argument("--spec-augment", action="store_true", help="SpecAugment masks in training")
    p.add_argument("--out", help="run directory to create")
    p.add_argument("--resume", metavar="RUN", help="continue a stopped run from its last epoch")
    add_data_args(p, required=False)
    add_train_args(p)
    p.set_defaults(func=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    from audioprune.train.experiment import resume_run, train_run

    with training_session(args.device) as ctx:
        if args.resume:
            metrics = resume_run(Path(args.resume), ctx, **epochs_override(args))
            out = Path(args.resume)
        else:
            if not args.model or not args.dataset or not args.out:
                raise UserError("train needs --model, --dataset and --out (or --resume RUN)")
            metrics = train_run(args.model, model_kwargs(args), data_spec(args), train_config(args),
                                Path(args.out), ctx=ctx)
            out = Path(args.out)
        if ctx.is_main:
            print_summary(metrics, out)
    return 0
