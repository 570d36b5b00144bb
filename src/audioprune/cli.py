"""The `audioprune` command. Each subcommand parses its options and calls the library; user
errors (UserError) print one clear line and exit with status 2, never a traceback."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from audioprune import __version__
from audioprune.errors import UserError

if TYPE_CHECKING:  # the CLI imports torch-heavy modules only inside the command that needs them
    from audioprune.train.experiment import DataSpec
    from audioprune.train.fit import TrainConfig

Handler = Callable[[argparse.Namespace], int]


def _parse_kv(pairs: list[str] | None, what: str) -> dict[str, Any]:
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
    g.add_argument("--split", help="split scheme, e.g. fsdd: official | speaker:NAME; ravdess: actors:1,2")
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


def data_spec(args: argparse.Namespace) -> "DataSpec":
    from audioprune.train.experiment import DataSpec

    options = {k: getattr(args, k) for k in ("split", "test_fold", "val_fold", "subset",
                                            "split_file", "val_fraction")
               if getattr(args, k, None) is not None}
    if "split_file" in options:
        options["split_file"] = str(options["split_file"])
    return DataSpec(dataset=args.dataset, data_root=args.data_root, options=options,
                    frontend=_parse_kv(args.frontend, "--frontend"), cache=not args.no_cache,
                    cache_dir=args.cache_dir, strict=args.strict)


def data_spec_from_run(args: argparse.Namespace, run: Path) -> "DataSpec":
    """The data of `run` (its config.json) with the data options given on the command line on
    top; with --dataset, only what was given."""
    from audioprune.prune.run import parent_data_spec

    if args.dataset:
        return data_spec(args)
    given = data_spec(argparse.Namespace(**{**vars(args), "dataset": "?"}))
    data = parent_data_spec(run, options=given.options, data_root=args.data_root,
                            cache_dir=args.cache_dir)
    data.frontend = {**data.frontend, **given.frontend}
    data.cache = data.cache and not args.no_cache
    data.strict = data.strict or args.strict
    return data


def add_train_args(p: argparse.ArgumentParser) -> None:
    from audioprune.train.fit import TrainConfig

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
    g.add_argument("--workers", type=int, default=d.num_workers, help="DataLoader worker processes")
    g.add_argument("--no-progress", action="store_true", help="no progress bars (logs only)")


def train_config(args: argparse.Namespace) -> "TrainConfig":
    from audioprune.train.fit import TrainConfig

    return TrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                       weight_decay=args.weight_decay, schedule=args.schedule,
                       step_size=args.step_size, patience=args.patience, mixup=args.mixup,
                       seed=args.seed, device=args.device, num_workers=args.workers,
                       progress=not args.no_progress)


def cmd_train(args: argparse.Namespace) -> int:
    from audioprune.train.distributed import init_distributed, shutdown
    from audioprune.train.experiment import resume_run, setup_logging, train_run

    ctx = init_distributed(args.device)
    setup_logging(ctx.is_main)
    try:
        if args.resume:
            metrics = resume_run(Path(args.resume), ctx, **({"epochs": args.epochs}
                                                            if args.epochs_given else {}))
            out = Path(args.resume)
        else:
            if not args.model or not args.dataset or not args.out:
                raise UserError("train needs --model, --dataset and --out (or --resume RUN)")
            kwargs = _parse_kv(args.model_arg, "--model-arg")
            if args.width is not None:
                kwargs["width"] = args.width
            if args.spec_augment:
                kwargs["spec_augment"] = {"time_masks": 2, "time_width": 20, "freq_masks": 2,
                                          "freq_width": 8}
            metrics = train_run(args.model, kwargs, data_spec(args), train_config(args),
                                Path(args.out), ctx=ctx)
            out = Path(args.out)
        if ctx.is_main:
            print_summary(metrics, out)
    finally:
        shutdown(ctx)
    return 0


def print_summary(metrics: dict[str, Any], run_dir: Path) -> None:
    from audioprune.train.metrics import headline

    name, value = headline(metrics)
    print(f"{run_dir}: {metrics['dataset']} [{metrics['split']}] test {name} {value:.4f}  "
          f"params {metrics['params']:,}  MACs {metrics['macs']:,}  size {metrics['size_bytes']:,} B")


def cmd_evaluate(args: argparse.Namespace) -> int:
    from audioprune.train.experiment import evaluate_run, setup_logging

    setup_logging()
    metrics, path = evaluate_run(Path(args.run), data_spec(args) if args.dataset else None,
                                 device=args.device, progress=not args.no_progress)
    print_summary(metrics, Path(args.run))
    print(f"metrics written to {path}")
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    """`audioprune prune RUN --criterion C --ratio R --out RUN2`: see audioprune.prune.run."""
    from audioprune.prune.plan import PlanSpec, parse_layers, parse_ratios
    from audioprune.prune.run import (
        PruneConfig,
        finetune_config,
        prune_run,
        resume_prune,
    )
    from audioprune.train.experiment import setup_logging

    setup_logging()
    if args.finetune_epochs is not None and args.epochs is not None:
        raise UserError("give --finetune-epochs or --epochs (an alias), not both")
    epochs = args.finetune_epochs if args.finetune_epochs is not None else args.epochs
    overrides = {"batch_size": args.batch_size, "lr": args.lr, "weight_decay": args.weight_decay,
                 "schedule": args.schedule, "step_size": args.step_size, "patience": args.patience,
                 "mixup": args.mixup, "seed": args.seed, "device": args.device,
                 "num_workers": args.workers, "progress": False if args.no_progress else None}
    if args.resume:
        metrics = resume_prune(Path(args.resume), **overrides,
                               **({"epochs": epochs} if epochs is not None else {}))
        out = Path(args.resume)
    else:
        if not args.run or not args.criterion or not args.out:
            raise UserError("prune needs RUN, --criterion and --out (or --resume RUN2)")
        options = _parse_kv(args.criterion_arg, "--criterion-arg")
        for key in ("representative", "knn", "approx", "knn_k"):
            if getattr(args, key) is not None:
                options[key] = getattr(args, key)
        if args.paper_compat:
            options["paper_compat"] = True
        plan = PlanSpec(ratio=args.ratio,
                        ratios=parse_ratios(args.ratios) if args.ratios is not None else None,
                        target_macs=args.target_macs, target_params=args.target_params,
                        layers=parse_layers(args.layers), global_ranking=args.global_ranking,
                        normalise=args.global_norm).validate()
        cfg = PruneConfig(args.criterion, plan, options, iterative=args.iterative,
                          aggregate=args.aggregate, quaternion_mode=args.quaternion_mode)
        parent = Path(args.run)
        if args.frontend and not args.dataset:
            raise UserError("the pruned model keeps its parent's front end; drop --frontend")
        data = data_spec_from_run(args, parent)
        metrics = prune_run(parent, Path(args.out), cfg, finetune_config(parent, epochs, **overrides),
                            data, distill=prune_distill_config(args))
        out = Path(args.out)
    print_summary(metrics, out)
    print_prune_summary(metrics)
    if "distill" in metrics:
        print_distill_summary(metrics)
    return 0


def print_prune_summary(metrics: dict[str, Any]) -> None:
    from audioprune.train.metrics import headline

    parent, before = metrics["parent"], metrics["before_finetune"]
    name, value = headline(metrics)
    p_value = parent.get(name, float("nan"))
    b_value = before.get(name, float("nan"))
    print(f"parent {name} {p_value:.4f}  params {parent['params']:,}  MACs {parent['macs']:,}; "
          f"pruned: {name} {b_value:.4f} before fine-tuning, {value:.4f} after; "
          f"params -{100 * metrics['reduction']['params']:.1f}%  "
          f"MACs -{100 * metrics['reduction']['macs']:.1f}%")


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


def prune_distill_config(args: argparse.Namespace) -> Any:
    """`prune --distill-from` as a DistillConfig (None without it)."""
    from audioprune.distill.distiller import DistillConfig

    if args.distill_from is None:
        given = [f for f, v in (("--kd-loss", args.kd_loss), ("--temperature", args.temperature),
                                ("--alpha", args.alpha)) if v is not None]
        if given or args.teacher_mode != "auto":
            raise UserError(f"{', '.join(given) or '--teacher-mode'} only applies with "
                            f"--distill-from [TEACHER_RUN]")
        return None
    return DistillConfig(args.distill_from, args.kd_loss, args.temperature, args.alpha,
                         args.teacher_mode)


def _model_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    kwargs = _parse_kv(args.model_arg, "--model-arg")
    if args.width is not None:
        kwargs["width"] = args.width
    if args.spec_augment:
        kwargs["spec_augment"] = {"time_masks": 2, "time_width": 20, "freq_masks": 2,
                                  "freq_width": 8}
    return kwargs


def cmd_distill(args: argparse.Namespace) -> int:
    """`audioprune distill --teacher RUN --model M --out RUN2`: see audioprune.distill.run."""
    from audioprune.distill.run import distill_run, resume_distill
    from audioprune.train.distributed import init_distributed, shutdown
    from audioprune.train.experiment import setup_logging

    ctx = init_distributed(args.device)
    setup_logging(ctx.is_main)
    try:
        if args.resume:
            metrics = resume_distill(Path(args.resume), ctx, **({"epochs": args.epochs}
                                                                if args.epochs_given else {}))
            out = Path(args.resume)
        else:
            if not args.teacher or not args.model or not args.out:
                raise UserError("distill needs --teacher, --model and --out (or --resume RUN2)")
            teacher = Path(args.teacher)
            data = data_spec_from_run(args, teacher)
            metrics = distill_run(teacher, args.model, _model_kwargs(args), data,
                                  train_config(args), Path(args.out), loss=args.kd_loss,
                                  temperature=args.temperature, alpha=args.alpha,
                                  teacher_mode=args.teacher_mode, ctx=ctx)
            out = Path(args.out)
        if ctx.is_main:
            print_summary(metrics, out)
            print_distill_summary(metrics)
    finally:
        shutdown(ctx)
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


def cmd_datasets(args: argparse.Namespace) -> int:
    from audioprune.data.registry import list_datasets

    if args.action == "check":
        return cmd_datasets_check(args)
    for info in list_datasets():
        fe = info.frontend
        print(f"{info.name:13s} {info.description}")
        print(f"{'':13s} front end: {fe.sample_rate} Hz, {fe.n_mels} mels, hop {fe.hop_length}, "
              f"clips {fe.clip_seconds} s")
        if args.verbose:
            print("\n".join(f"{'':13s} {line}" for line in info.layout.splitlines()))
        print()
    return 0


def cmd_datasets_check(args: argparse.Namespace) -> int:
    """`audioprune datasets check NAME --data-root DIR`: report; 1 with problems and --strict."""
    from audioprune.data.check import check_dataset

    if not args.name:
        raise UserError("datasets check needs a dataset name, e.g. "
                        "`audioprune datasets check fsdd --data-root DIR`")
    options = {k: getattr(args, k) for k in ("split", "test_fold", "val_fold", "subset",
                                            "split_file", "val_fraction")
               if getattr(args, k) is not None}
    report = check_dataset(args.name, args.data_root, options, seed=args.seed,
                           progress=not args.no_progress)
    print(report.render())
    return 1 if args.strict and report.problems else 0


def cmd_models(args: argparse.Namespace) -> int:
    from audioprune.models.registry import list_models

    for name, desc in list_models().items():
        print(f"{name:14s} {desc}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from audioprune.demo import run_demo

    run_demo(Path(args.out) if args.out else None, dataset=args.dataset, data_root=args.data_root,
             epochs=args.epochs, progress=not args.no_progress)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """`audioprune run RECIPE.yaml`: see audioprune.pipeline.runner."""
    from audioprune.pipeline.recipe import resolve_recipe
    from audioprune.pipeline.runner import run_recipe, summary, with_overrides

    recipe = with_overrides(resolve_recipe(args.recipe), dataset=args.dataset,
                            data_root=args.data_root, device=args.device)
    result = run_recipe(recipe, Path(args.out) if args.out else None, progress=not args.no_progress)
    print(summary(result))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from audioprune.report import write_report

    report = write_report(args.runs, Path(args.out), title=args.title)
    print(report.table, end="")
    print(f"\nreport: {report.markdown}\ntable:  {report.csv}")
    for path in report.plots:
        print(f"plot:   {path}")
    return 0


def cmd_profile(args: argparse.Namespace) -> int:
    """`audioprune profile RUN`: see audioprune.measure.profile."""
    from audioprune.measure.profile import PROFILE_JSON, profile_run
    from audioprune.measure.summary import profile_summary
    from audioprune.train.experiment import setup_logging

    if not args.json:
        setup_logging()
    try:
        sizes = tuple(int(b) for b in args.batch_sizes.split(",") if b.strip())
    except ValueError:
        raise UserError(f"--batch-sizes {args.batch_sizes!r}: give integers separated by "
                        f"commas, e.g. 1,32") from None
    prof = profile_run(Path(args.run), batch_sizes=sizes, threads=args.threads,
                       onnx=not args.no_onnx)
    if args.json:
        print(json.dumps(prof, indent=2))
    else:
        print(profile_summary(prof))
        print(f"\nwritten to {Path(args.run) / PROFILE_JSON}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """`audioprune export RUN --onnx FILE`: see audioprune.measure.onnx_export."""
    from audioprune.measure.onnx_export import export_run

    r = export_run(Path(args.run), Path(args.onnx), opset=args.opset,
                   with_frontend=args.with_frontend, data_root=args.data_root)
    shape = ", ".join(map(str, r["input_shape"]))
    print(f"{r['path']}: {r['arch']} ({r['input']} ({shape}) -> logits), opset {r['opset']}, "
          f"{r['size_bytes']:,} bytes")
    print(f"parity with PyTorch on {r['inputs']}: max |diff| {r['max_abs_diff']:.2e} "
          f"(limit {r['tolerance']:g})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="audioprune", description=__doc__)
    parser.add_argument("--version", action="version", version=f"audioprune {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

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

    p = sub.add_parser("evaluate", help="evaluate a run on its test split (or another dataset)")
    p.add_argument("run", help="run directory")
    add_data_args(p, required=False)
    p.add_argument("--device", default="cpu")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("prune", help="prune a trained run's filters, fine-tune, write a new run",
                       description="Score every filter with a criterion, remove filters for real "
                       "(Torch-Pruning), fine-tune and evaluate. Data and training settings "
                       "default to the parent run's (learning rate / 10).")
    p.add_argument("run", nargs="?", help="the trained run directory to prune")
    p.add_argument("--criterion", help="pruning criterion, e.g. wdc, betweenness, l1, fpgm, random; "
                   "active (data-driven): hrank, activation, taylor (--criterion-arg batches=N)")
    what = p.add_argument_group("what to prune (give one of --ratio/--ratios/--target-*)")
    what.add_argument("--ratio", type=float, help="fraction of filters removed from every "
                      "selected layer, in [0, 1)")
    what.add_argument("--ratios", help="per-layer fractions, e.g. conv1=0.5,conv2=0.5 or C1=0.5")
    what.add_argument("--target-macs", help="MAC budget per example (body), e.g. 30M")
    what.add_argument("--target-params", help="parameter budget, e.g. 128k")
    what.add_argument("--layers", help="layers to prune: names, glob patterns or aliases, e.g. "
                      "conv1,conv2 or 'block4.*,block5.*' or C7-C12 (default: all prunable)")
    what.add_argument("--global", dest="global_ranking", action="store_true",
                      help="rank filters across the selected layers (scores normalised per layer)")
    what.add_argument("--global-norm", choices=["minmax", "zscore"], default="minmax",
                      help="per-layer score normalisation for --global")
    what.add_argument("--iterative", type=int, default=1, metavar="K",
                      help="K rounds of prune + fine-tune ending at the requested sparsity")
    crit = p.add_argument_group("criterion options")
    crit.add_argument("--paper-compat", action="store_true",
                      help="graph criteria: raw cosine as the networkx edge weight (authors' code)")
    crit.add_argument("--representative", choices=["auto", "rank1", "flat"])
    crit.add_argument("--knn", type=int, help="graph criteria: k-nearest-neighbour graph")
    crit.add_argument("--approx", choices=["knn"], help="betweenness/closeness: fast path")
    crit.add_argument("--knn-k", type=int, help="neighbours for --approx knn")
    crit.add_argument("--criterion-arg", action="append", metavar="KEY=VALUE",
                      help="any other criterion option, e.g. seed=3, m=64")
    crit.add_argument("--aggregate", choices=["mean", "max", "min", "norm"], default="mean",
                      help="quaternion layers: combine the r,i,j,k scores (default mean, as the "
                      "QCNN authors)")
    crit.add_argument("--quaternion-mode", choices=["aggregate", "concat"], default="aggregate",
                      help="quaternion layers: score components and aggregate, or one "
                      "concatenated filter / representative per quaternion")
    p.add_argument("--finetune-epochs", type=int, help="fine-tuning epochs (default 10; 0 = "
                   "prune only)")
    p.add_argument("--out", help="run directory to create")
    p.add_argument("--resume", metavar="RUN2", help="continue an interrupted prune run")
    add_data_args(p, required=False)
    add_train_args(p)
    add_distill_args(p, for_prune=True)
    p.set_defaults(func=cmd_prune, epochs=None, batch_size=None, lr=None, weight_decay=None,
                   schedule=None, step_size=None, patience=None, mixup=None, seed=None,
                   device=None, workers=None)

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

    p = sub.add_parser("datasets", help="list the dataset layouts audioprune reads, or check one",
                       description="`audioprune datasets [-v]` lists the layouts; `audioprune "
                       "datasets check NAME --data-root DIR` decodes every file of a tree and "
                       "reports files, classes, splits and problems, without training (exit 1 "
                       "with --strict when problems are found).")
    p.add_argument("action", nargs="?", choices=["check"], help="check: validate a dataset tree")
    p.add_argument("name", nargs="?", help="the dataset to check (see the list)")
    p.add_argument("-v", "--verbose", action="store_true", help="show each expected tree")
    g = p.add_argument_group("check")
    g.add_argument("--data-root", help="directory holding the dataset in its official layout")
    g.add_argument("--split", help="split scheme, as for train")
    g.add_argument("--test-fold", type=int)
    g.add_argument("--val-fold", type=int)
    g.add_argument("--subset")
    g.add_argument("--split-file", type=Path)
    g.add_argument("--val-fraction", type=float)
    g.add_argument("--seed", type=int, default=0, help="seed of the validation hold-out")
    g.add_argument("--strict", action="store_true", help="exit 1 when problems are found")
    g.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_datasets)

    p = sub.add_parser("models", help="list the registered models")
    p.set_defaults(func=cmd_models)

    p = sub.add_parser("demo", help="the main job: train and evaluate on the built-in data")
    p.add_argument("--out", help="directory for the demo's runs (default runs/demo, or "
                   "runs/demo-DATASET with --dataset)")
    p.add_argument("--dataset", default="synthetic")
    p.add_argument("--data-root")
    p.add_argument("--epochs", type=int, default=None, help="override the demo's epoch count")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("run", help="run a YAML recipe: train -> prune -> fine-tune -> evaluate "
                       "-> profile -> report (resumable)")
    p.add_argument("recipe", help="recipe file (see recipes/) or a built-in name, e.g. demo")
    p.add_argument("--out", help="output directory (default runs/<recipe name>)")
    p.add_argument("--dataset", help="replace the recipe's dataset section with this dataset")
    p.add_argument("--data-root", help="where the dataset lives (overrides dataset.root)")
    p.add_argument("--device", help="cpu, cuda or cuda:N (overrides the recipe's device)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars (logs only)")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("report", help="tables and accuracy-vs-cost plots over run directories")
    p.add_argument("runs", nargs="+", help="run directories, globs, or folders holding runs "
                   "(pruned runs bring their parents)")
    p.add_argument("--out", required=True, help="directory for report.md, report.csv and PNGs")
    p.add_argument("--title", help="title of report.md")
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("profile", help="parameters, MACs, size and latency (eager, ONNX Runtime) "
                       "of a run; writes RUN/profile.json")
    p.add_argument("run", help="run directory")
    p.add_argument("--json", action="store_true", help="print profile.json instead of tables")
    p.add_argument("--threads", type=int, help="intra-op threads for both runtimes (default: "
                   "torch's, i.e. OMP_NUM_THREADS or the core count)")
    p.add_argument("--batch-sizes", default="1,32", help="batch sizes to time (default 1,32)")
    p.add_argument("--no-onnx", action="store_true", help="skip the ONNX export and ONNX "
                   "Runtime timing")
    p.set_defaults(func=cmd_profile)

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
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.epochs_given = any(a == "--epochs" or a.startswith("--epochs=") for a in argv)
    try:
        return args.func(args)
    except UserError as exc:
        print(f"audioprune {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"audioprune {args.command}: interrupted; resume with --resume where supported",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
