"""Options and helpers shared by several subcommands: data and training options, summaries."""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from audioprune.errors import UserError

if TYPE_CHECKING:  # the CLI imports torch-heavy modules only inside the command that needs them
    from audioprune.runs.data import DataSpec
    from audioprune.train.distributed import DistContext
    from audioprune.train.fit import TrainConfig

def parse_kv(pairs: list[str] | None, what: str) -> dict[str, Any]:
    """KEY=VALUE pairs with JSON-ish values: --model-arg dropout=0.1 --model-arg width=0.5."""
    out: dict[str, Any] = {}
    for item in pairs or []:
        if "=" not in item:
            raise UserError(f"{what} {item!r} must look like KEY=VALUE")
        key, raw = item.split("=", 1)
        try:
            out[key.replace("-", "_")] = json.loads(raw)
        except json.JSONDecodeError:
            out[key.replace("-", "_")] = raw
    return out


def add_data_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--dataset", required=required, help="dataset layout (see `audioprune datasets`)")
    g.add_argument("--data-root", help="directory holding the dataset in its official layout")
    g.add_argument("--split", help="split scheme, e.g. fsdd: official | speaker:NAME; ravdess: actors:1,2; "
                   "speech_commands: official; any dataset with folds: fold:K")
    g.add_argument("--fold", type=int, metavar="K", help="cross-validation fold K (= --split fold:K): "
                   "esc50 1-5, urbansound8k 1-10, fsdd 1-6 (leave one speaker out, the next "
                   "speaker validates), ravdess 1-6 (actor groups), speech_commands 1-5 "
                   "(speaker folds), gtzan/folder/synthetic 1-5 (seeded stratified)")
    g.add_argument("--test-fold", type=int, help="fold used as the test set (folded datasets)")
    g.add_argument("--val-fold", type=int, help="fold used for validation (default: a stratified "
                   "part of the training folds)")
    g.add_argument("--subset", help="dataset subset, e.g. esc50: esc10")
    g.add_argument("--split-file", type=Path, help="explicit split list (gtzan fault-filtered split)")
    g.add_argument("--val-fraction", type=float, help="fraction of train held out for validation")
    g.add_argument("--frontend", action="append", metavar="KEY=VALUE",
                   help="front-end override, e.g. n_mels=64, clip_seconds=5, sample_rate=16000")
    g.add_argument("--cache-dir", help="feature cache location (default ~/.cache/audioprune or "
                   "$AUDIOPRUNE_CACHE)")
    g.add_argument("--no-cache", action="store_true", help="decode audio on every access")
    g.add_argument("--strict", action="store_true", help="fail on undecodable audio instead of "
                   "skipping it with a warning")
    g.add_argument("--skip-missing", action="store_true", help="train on the files that are "
                   "there when the metadata lists missing ones (named in the log and in "
                   "metrics.json) instead of refusing; classes left with test clips but no "
                   "training clip are named in a warning, and training refuses when that is "
                   "every test clip's class")


def split_options(args: argparse.Namespace) -> dict[str, Any]:
    """The split options given on the command line (--split, --fold, --test-fold, ...)."""
    from audioprune.data.registry import SPLIT_OPTIONS

    options = {k: getattr(args, k) for k in SPLIT_OPTIONS if getattr(args, k, None) is not None}
    if getattr(args, "fold", None) is not None:
        if "split" in options:
            raise UserError(f"give --fold {args.fold} or --split {options['split']}, not both")
        options["split"] = f"fold:{args.fold}"
    return options


def data_spec(args: argparse.Namespace) -> "DataSpec":
    from audioprune.runs.data import DataSpec

    options = split_options(args)
    if "split_file" in options:
        options["split_file"] = str(options["split_file"])
    return DataSpec(dataset=args.dataset, data_root=args.data_root, options=options,
                    frontend=parse_kv(args.frontend, "--frontend"), cache=not args.no_cache,
                    cache_dir=args.cache_dir, strict=args.strict,
                    skip_missing=getattr(args, "skip_missing", False))


def data_spec_from_run(args: argparse.Namespace, run: Path) -> "DataSpec":
    """The data of `run` (its config.json) with the data options given on the command line on
    top; with --dataset, only what was given."""
    from audioprune.runs.parents import parent_data_spec

    if args.dataset:
        return data_spec(args)
    given = data_spec(argparse.Namespace(**{**vars(args), "dataset": "?"}))
    data = parent_data_spec(run, options=given.options, data_root=args.data_root,
                            cache_dir=args.cache_dir)
    data.frontend = {**data.frontend, **given.frontend}
    data.cache = data.cache and not args.no_cache
    data.strict = data.strict or args.strict
    data.skip_missing = data.skip_missing or getattr(args, "skip_missing", False)
    return data


def add_train_args(p: argparse.ArgumentParser, for_prune: bool = False) -> None:
    """The training options; `for_prune` (prune's fine-tuning): the precision flag is
    --train-precision only, since prune's --precision is a budget's deployment precision."""
    from audioprune.train.fit import SAMPLERS, TrainConfig
    from audioprune.train.precision import PRECISIONS

    d = TrainConfig()
    g = p.add_argument_group("training")
    g.add_argument("--epochs", type=int, default=d.epochs)
    g.add_argument("--batch-size", type=int, default=d.batch_size)
    g.add_argument("--lr", type=float, default=d.lr)
    g.add_argument("--weight-decay", type=float, default=d.weight_decay)
    g.add_argument("--schedule", choices=["cosine", "step", "none"], default=d.schedule)
    g.add_argument("--step-size", type=int, default=d.step_size, help="epochs per step (step schedule)")
    g.add_argument("--patience", type=int, default=d.patience,
                   help="early stopping: epochs without validation gain (0 = off)")
    g.add_argument("--mixup", type=float, default=d.mixup, help="mixup Beta(a, a) parameter; 0 = off")
    g.add_argument("--seed", type=int, default=d.seed)
    g.add_argument("--device", default=d.device, help="cpu, cuda or cuda:N")
    g.add_argument("--workers", type=int, default=d.num_workers, help="DataLoader worker processes "
                   "(training and evaluation; persistent across epochs; on a GPU batches come "
                   "from pinned memory)")
    g.add_argument("--sampler", choices=list(SAMPLERS), default=d.sampler,
                   help="how training clips are drawn: shuffle (a permutation per epoch, "
                   "default) or balanced (PANNs' class-balanced draws for long-tailed sets "
                   "such as AudioSet: every class equally often, rare ones repeated)")
    s = p.add_argument_group("speed")
    if for_prune:
        s.add_argument("--train-precision", dest="train_precision", choices=list(PRECISIONS),
                       help="fine-tuning precision: fp32, bf16 or fp16 (default: the parent's); "
                       "not --precision, which is the deployment precision of --target-budget")
    else:
        s.add_argument("--precision", "--train-precision", dest="precision",
                       choices=list(PRECISIONS), default=d.precision,
                       help="training precision: fp32 (default); bf16 = autocast in bfloat16 "
                       "(GPUs from Ampere on, CPUs with AVX512-BF16 or AMX); fp16 = autocast "
                       "in float16 with loss scaling (older GPUs). Weights, loss, metrics, "
                       "batch-norm statistics and the log-mel front end stay fp32")
    s.add_argument("--channels-last", action="store_true", default=None if for_prune else False,
                   help="NHWC memory layout for the convolutions (often faster on GPUs with "
                   "tensor cores; measure with bench/bench_memory_format.py)")
    s.add_argument("--compile", action="store_true", default=None if for_prune else False,
                   help="torch.compile the training forward (compiles for a minute or more "
                   "first; evaluation stays eager; needs a C++ compiler on CPU)")
    g.add_argument("--no-progress", action="store_true", help="no progress bars (logs only); "
                   "bars are drawn on a terminal only, AUDIOPRUNE_PROGRESS=1 forces them")


def train_config(args: argparse.Namespace) -> "TrainConfig":
    from audioprune.train.fit import TrainConfig

    return TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                       weight_decay=args.weight_decay, schedule=args.schedule,
                       step_size=args.step_size, patience=args.patience, mixup=args.mixup,
                       seed=args.seed, device=args.device, num_workers=args.workers,
                       progress=not args.no_progress, init=getattr(args, "init", None),
                       freeze=parse_patterns(getattr(args, "freeze", None)),
                       body_lr_scale=getattr(args, "body_lr_scale", None) or 1.0,
                       precision=args.precision, channels_last=args.channels_last,
                       compile=args.compile, sampler=args.sampler)


def parse_patterns(text: str | None) -> list[str] | None:
    """'bn0,block1.*' -> ['bn0', 'block1.*'] (None stays None)."""
    if text is None:
        return None
    items = [t.strip() for t in text.split(",") if t.strip()]
    return items or None


def model_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    kwargs = parse_kv(args.model_arg, "--model-arg")
    if args.width is not None:
        kwargs["width"] = args.width
    if args.spec_augment:
        kwargs["spec_augment"] = {"time_masks": 2, "time_width": 20, "freq_masks": 2,
                                  "freq_width": 8}
    return kwargs


def print_summary(metrics: dict[str, Any], run_dir: Path) -> None:
    from audioprune.train.metrics import headline

    name, value = headline(metrics)
    print(f"{run_dir}: {metrics['dataset']} [{metrics['split']}] test {name} {value:.4f}  "
          f"params {metrics['params']:,}  MACs {metrics['macs']:,}  size {metrics['size_bytes']:,} B")


@contextmanager
def training_session(device: str) -> Iterator["DistContext"]:
    """The process group of a training command (one process, or one of torchrun's) with
    console logging on rank 0; the group is shut down however the command ends."""
    from audioprune.runs.logs import setup_logging
    from audioprune.train.distributed import init_distributed, shutdown

    ctx = init_distributed(device)
    setup_logging(ctx.is_main)
    try:
        yield ctx
    finally:
        shutdown(ctx)


def epochs_override(args: argparse.Namespace) -> dict[str, int]:
    """{"epochs": N} when --epochs was given on a --resume, so that a resumed run keeps its
    own epoch count otherwise."""
    return {"epochs": args.epochs} if args.epochs_given else {}
