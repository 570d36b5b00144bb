"""`audioprune distill`: train a student with knowledge distillation from a teacher run.

The distillation options are shared with `prune --distill-from`."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from audioprune.cli.common import (
    add_data_args,
    add_train_args,
    data_spec_from_run,
    epochs_override,
    model_kwargs,
    print_summary,
    train_config,
    training_session,
)
from audioprune.errors import UserError


def register(sub: Any) -> None:
    p = sub.add_parser("distill", help="train a fresh student from a teacher run (knowledge "
                       "distillation) into a run directory",
                       description="Train a fresh student model with knowledge distillation "
                       "from a trained (or pruned) teacher run. Data default to the teacher's; "
                       "training options are those of `train`.")
    p.add_argument("--teacher", metavar="RUN", help="the teacher run directory")
    p.add_argument("--model", help="student model name (see `audioprune models`)")
    p.add_argument("--width", type=float, help="width multiplier for the student's layers")
    p.add_argument("--model-arg", action="append", metavar="KEY=VALUE",
                   help="extra student model argument, e.g. dropout=0.2")
    p.add_argument("--spec-augment", action="store_true", help="SpecAugment masks in training")
    p.add_argument("--out", help="run directory to create")
    p.add_argument("--resume", metavar="RUN2", help="continue a stopped distill run")
    add_distill_args(p)
    add_data_args(p, required=False)
    add_train_args(p)
    p.set_defaults(func=cmd_distill)


def add_distill_args(p: argparse.ArgumentParser, for_prune: bool = False) -> None:
    from audioprune.distill.losses import RECIPES, recipes_help
    from audioprune.distill.teacher import MODES

    g = p.add_argument_group("knowledge distillation" + (" (with --distill-from)" if for_prune else ""))
    if for_prune:
        g.add_argument("--distill-from", nargs="?", const="parent", metavar="TEACHER_RUN",
                       help="fine-tune with knowledge distillation from TEACHER_RUN; with no "
                       "value (or 'parent') the unpruned parent is the teacher")
    g.add_argument("--kd-loss" if for_prune else "--loss", dest="kd_loss", choices=list(RECIPES),
                   help="distillation loss (default: hinton for single-label, bce-soft for "
                   f"multi-label data). Published defaults: {recipes_help()}")
    g.add_argument("--temperature", type=float, help="softening temperature T (default: the "
                   "loss's, see above)")
    g.add_argument("--alpha", type=float, help="weight of the distillation term; the label term "
                   "gets 1 - alpha (default: the loss's, see above)")
    g.add_argument("--teacher-mode", choices=list(MODES), default="auto",
                   help="cached: teacher logits computed once per training set and cached on "
                   "disk; online: the teacher runs on every training batch; auto (default): "
                   "online when the input changes between epochs (mixup, random crops or "
                   "placement of clips that are not exactly the clip length), else cached")


def cmd_distill(args: argparse.Namespace) -> int:
    """`audioprune distill --teacher RUN --model M --out RUN2`: see audioprune.runs.distill."""
    from audioprune.runs.distill import distill_run, resume_distill

    with training_session(args.device) as ctx:
        if args.resume:
            metrics = resume_distill(Path(args.resume), ctx, **epochs_override(args))
            out = Path(args.resume)
        else:
            if not args.teacher or not args.model or not args.out:
                raise UserError("distill needs --teacher, --model and --out (or --resume RUN2)")
            teacher = Path(args.teacher)
            data = data_spec_from_run(args, teacher)
            metrics = distill_run(teacher, args.model, model_kwargs(args), data,
                                  train_config(args), Path(args.out), loss=args.kd_loss,
                                  temperature=args.temperature, alpha=args.alpha,
                                  teacher_mode=args.teacher_mode, ctx=ctx)
            out = Path(args.out)
        if ctx.is_main:
            print_summary(metrics, out)
            print_distill_summary(metrics)
    return 0


def print_distill_summary(metrics: dict[str, Any]) -> None:
    from audioprune.train.metrics import headline

    d = metrics["distill"]
    teacher = d["teacher"]
    name, value = headline(metrics)
    cache = d.get("cache")
    how = f"{d['teacher_mode']}{' (cache hit)' if cache and cache['hit'] else ''}"
    print(f"teacher {teacher['arch']} {name} {teacher.get(name, float('nan')):.4f}  params "
          f"{teacher['params']:,}  MACs {teacher['macs']:,}; student {name} {value:.4f} "
          f"({100 * (value - teacher.get(name, float('nan'))):+.1f} points) with "
          f"{metrics['params'] / teacher['params']:.1%} of the parameters")
    print(f"loss {d['loss']} (T={d['temperature']:g}, alpha={d['alpha']:g}); teacher logits "
          f"{how}: {d['teacher_seconds']:.1f}s; {d['total_seconds']:.1f}s in all")
