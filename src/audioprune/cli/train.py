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
    p.add_argument("--folds", metavar="all|K,K,...", help="cross-validation: one run per fold, "
                   "OUT/fold1, OUT/fold2, ...; finished folds are skipped, a stopped one resumes")
    t = p.add_argument_group("transfer learning")
    t.add_argument("--init", metavar="RUN", help="start from the weights of RUN (trained, "
                   "pruned or imported, e.g. a PANNs checkpoint); its architecture and front end "
                   "are kept (--frontend clip_seconds=S may change); the classifier is replaced "
                   "when the class count differs")
    t.add_argument("--freeze", metavar="LAYERS", help="layers kept fixed: names or patterns, "
                   "e.g. 'bn0,block1.*,block2.*'")
    t.add_argument("--body-lr-scale", type=float, metavar="S", help="learning rate of every layer "
                   "but the classifier = --lr x S (e.g. 0.1 for a pretrained body)")
    add_data_args(p, required=False)
    add_train_args(p)
    p.set_defaults(func=cmd_train)


def cmd_train(args: argparse.Namespace) -> int:
    from audioprune.runs.train import resume_run, train_run

    with training_session(args.device) as ctx:
        if args.resume:
            metrics = resume_run(Path(args.resume), ctx, **epochs_override(args))
            out = Path(args.resume)
        else:
            if not (args.model or args.init) or not args.dataset or not args.out:
                raise UserError("train needs --model (or --init RUN), --dataset and --out (or "
                                "--resume RUN)")
            if args.folds:
                return _train_folds(args, ctx)
            metrics = train_run(args.model or "", model_kwargs(args), data_spec(args),
                                train_config(args), Path(args.out), ctx=ctx)
            out = Path(args.out)
        if ctx.is_main:
            print_summary(metrics, out)
    return 0


def _train_folds(args: argparse.Namespace, ctx: Any) -> int:
    """`train --folds all`: every fold in turn into OUT/fold<K> (resumable)."""
    from audioprune.data.folds import fold_list
    from audioprune.runs.run_dir import METRICS_JSON
    from audioprune.runs.train import resume_run, train_run

    if args.fold is not None or args.split or args.test_fold is not None:
        raise UserError("--folds runs every fold itself; drop --fold / --split / --test-fold")
    spec = data_spec(args)
    out = Path(args.out)
    for k in fold_list(args.folds, spec.dataset, spec.data_root, spec.options):
        run = out / f"fold{k}"
        if (run / METRICS_JSON).is_file():
            print(f"{run}: done before, skipped")
            continue
        fold_spec = type(spec)(**{**spec.__dict__, "options": {**spec.options, "split": f"fold:{k}"}})
        if (run / "config.json").is_file():
            metrics = resume_run(run, ctx, **epochs_override(args))
        else:
            metrics = train_run(args.model, model_kwargs(args), fold_spec, train_config(args),
                                run, ctx=ctx)
        if ctx.is_main:
            print_summary(metrics, run)
    return 0
