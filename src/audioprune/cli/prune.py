"""`audioprune prune`: score filters, remove them for real, fine-tune, write a run."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from audioprune.cli.common import (
    add_data_args,
    add_train_args,
    data_spec_from_run,
    parse_kv,
    print_summary,
)
from audioprune.cli.distill import add_distill_args, print_distill_summary
from audioprune.errors import UserError


def register(sub: Any) -> None:
    p = sub.add_parser("prune", help="prune a trained run's filters, fine-tune, write a new run",
                       description="Score every filter with a criterion, remove filters for real "
                       "(Torch-Pruning), fine-tune and evaluate. Data and training settings "
                       "default to the parent run's (learning rate / 10).")
    p.add_argument("run", nargs="?", help="the trained run directory to prune")
    p.add_argument("--criterion", help="pruning criterion, e.g. wdc, betweenness, l1, fpgm, random; "
                   "active (data-driven): hrank, activation, taylor (--criterion-arg batches=N); "
                   "Torch-Pruning's group importances: tp-magnitude, tp-lamp, tp-fpgm; auto: "
                   "what the cross-validated benchmarks support (tp-magnitude at every "
                   "measured budget; the evidence is recorded in metrics.json)")
    what = p.add_argument_group("what to prune (give one of --ratio/--ratios/--target-*)")
    what.add_argument("--ratio", type=float, help="fraction of filters removed from every "
                      "selected layer, in [0, 1)")
    what.add_argument("--ratios", help="per-layer fractions, e.g. conv1=0.5,conv2=0.5 or C1=0.5")
    what.add_argument("--target-macs", help="MAC budget per example (body): a count, e.g. 30M, "
                      "or a fraction of the parent's, e.g. 0.5 or 50%%")
    what.add_argument("--target-params", help="parameter budget: a count, e.g. 128k, or a "
                      "fraction of the parent's, e.g. 0.3")
    what.add_argument("--target-budget", metavar="BUDGET",
                      help="a challenge's limits at once: dcase2024 (also dcase2022/2023/2025: "
                      "128 kB of parameters at --precision, 30 MMACs per second of audio) or "
                      "params_bytes=128k,macs=30M")
    what.add_argument("--precision", choices=["int8", "fp16", "fp32"], default="int8",
                      help="--target-budget: the precision the model will be deployed in (a "
                      "parameter costs 1/2/4 bytes; default int8: quantize it afterwards)")
    what.add_argument("--round-to", type=int, metavar="N",
                      help="keep a multiple of N filters in every pruned layer (rounded up), e.g. "
                      "16 on AVX-512 CPUs, 8 on AVX2: widths between two multiples cost the time "
                      "of the next one (audioprune profile shows blocked MACs)")
    what.add_argument("--layers", help="layers to prune: names, glob patterns or aliases, e.g. "
                      "conv1,conv2 or 'block4.*,block5.*' or C7-C12 (default: all prunable)")
    what.add_argument("--global", dest="global_ranking", action="store_true",
                      help="rank filters across the selected layers (scores normalised per layer)")
    what.add_argument("--global-norm", choices=["minmax", "zscore"], default="minmax",
                      help="per-layer score normalisation for --global")
    what.add_argument("--allocation", choices=["uniform", "sensitivity"], default="uniform",
                      help="budgets: how they are split between layers - one ratio for all "
                      "(uniform), or by each layer's loss rise on 8 training batches when it "
                      "alone is pruned (sensitivity)")
    what.add_argument("--iterative", type=int, default=1, metavar="K",
                      help="K rounds of prune + fine-tune ending at the requested sparsity")
    what.add_argument("--prune-schedule", choices=["geometric", "cubic"],
                      default="geometric", help="how the pruned fraction rises over the K rounds: "
                      "the same fraction of what is left each round, or cubic (Zhu & Gupta "
                      "2017: much early, little late)")
    what.add_argument("--progressive", action="store_true",
                      help="prune the K rounds inside ONE fine-tuning run, one at the start of each "
                      "of its first K epochs (with --distill-from parent: progressive pruning "
                      "inside distillation)")
    what.add_argument("--resolution", metavar="search|TIME,FREQ",
                      help="read coarser features before pruning the widths (audioprune's own "
                      "models): TIME,FREQ multiplies the hop by TIME and the mel bins by FREQ "
                      "(e.g. 2,0.5), weights kept; search: the grid point that scores best on "
                      "the validation split after a one-epoch fine-tune at --target-macs")
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
    crit.add_argument("--scope", choices=["root", "group"],
                      help="score a layer's own filters (root; the papers' setting, default for "
                      "weight criteria) or the whole dependency group: its BN and the next "
                      "layers' input slices too, as Torch-Pruning's group importances (group; "
                      "default for taylor)")
    crit.add_argument("--group-reduction", choices=["mean", "sum", "max", "min"], default="mean",
                      help="--scope group: how the layers' importances are combined")
    p.add_argument("--finetune-epochs", type=int, help="fine-tuning epochs (default 10; 0 = "
                   "prune only)")
    p.add_argument("--out", help="run directory to create")
    p.add_argument("--resume", metavar="RUN2", help="continue an interrupted prune run")
    add_data_args(p, required=False)
    add_train_args(p, for_prune=True)
    add_distill_args(p, for_prune=True)
    p.set_defaults(func=cmd_prune, epochs=None, batch_size=None, lr=None, weight_decay=None,
                   schedule=None, step_size=None, patience=None, mixup=None, seed=None,
                   device=None, workers=None, sampler=None)


def cmd_prune(args: argparse.Namespace) -> int:
    """`audioprune prune RUN --criterion C --ratio R --out RUN2`: see audioprune.runs.prune."""
    from audioprune.runs.parents import finetune_config
    from audioprune.runs.prune import prune_run, resume_prune
    from audioprune.runs.logs import setup_logging

    setup_logging()
    if args.finetune_epochs is not None and args.epochs is not None:
        raise UserError("give --finetune-epochs or --epochs (an alias), not both")
    epochs = args.finetune_epochs if args.finetune_epochs is not None else args.epochs
    overrides = {"batch_size": args.batch_size, "lr": args.lr, "weight_decay": args.weight_decay,
                 "schedule": args.schedule, "step_size": args.step_size, "patience": args.patience,
                 "mixup": args.mixup, "seed": args.seed, "device": args.device,
                 "num_workers": args.workers, "progress": False if args.no_progress else None,
                 "precision": args.train_precision, "channels_last": args.channels_last,
                 "compile": args.compile, "sampler": args.sampler}
    _check_train_precision(args.train_precision, args.device)
    if args.resume:
        metrics = resume_prune(Path(args.resume), **overrides,
                               **({"epochs": epochs} if epochs is not None else {}))
        out = Path(args.resume)
    else:
        if not args.run or not args.criterion or not args.out:
            raise UserError("prune needs RUN, --criterion and --out (or --resume RUN2)")
        spec = prune_spec(args)
        parent = Path(args.run)
        if args.frontend and not args.dataset:
            raise UserError("the pruned model keeps its parent's front end; drop --frontend")
        data = data_spec_from_run(args, parent)
        metrics = prune_run(parent, Path(args.out), spec, finetune_config(parent, epochs, **overrides),
                            data)
        out = Path(args.out)
    print_summary(metrics, out)
    print_prune_summary(metrics)
    if "distill" in metrics:
        print_distill_summary(metrics)
    return 0


def _check_train_precision(precision: str | None, device: str | None) -> None:
    """--train-precision against the device before anything runs. TrainConfig names its
    setting `precision`, which on this command is --precision (the deployment precision of
    a budget): its complaint is renamed to the fine-tuning flag."""
    from audioprune.train.fit import TrainConfig

    if precision is None:
        return
    try:
        TrainConfig(precision=precision, device=device or "cpu").validate()
    except UserError as exc:
        raise UserError(exc.template.replace("`precision`", "`train_precision`")) from None


def prune_spec(args: argparse.Namespace) -> Any:
    """The command line's pruning request as one PruneSpec (checked there, once)."""
    from audioprune.pruning.plan import Plan
    from audioprune.pruning.spec import PruneSpec
    from audioprune.pruning.targets import parse_layers, parse_ratios

    options = parse_kv(args.criterion_arg, "--criterion-arg")
    for key in ("representative", "knn", "approx", "knn_k"):
        if getattr(args, key) is not None:
            options[key] = getattr(args, key)
    if args.paper_compat:
        options["paper_compat"] = True
    plan = Plan(ratio=args.ratio,
                ratios=parse_ratios(args.ratios) if args.ratios is not None else None,
                target_macs=args.target_macs, target_params=args.target_params,
                budget=args.target_budget, precision=args.precision, round_to=args.round_to,
                layers=parse_layers(args.layers), global_ranking=args.global_ranking,
                normalise=args.global_norm, allocation=args.allocation)
    return PruneSpec(args.criterion, plan, options, scope=args.scope,
                     group_reduction=args.group_reduction, aggregate=args.aggregate,
                     quaternion_mode=args.quaternion_mode, iterative=args.iterative,
                     prune_schedule=args.prune_schedule, progressive=args.progressive,
                     resolution=_resolution(args.resolution), distill=prune_distill_config(args))


def _resolution(text: str | None) -> Any:
    """--resolution: "search", or TIME,FREQ as two numbers (the spec checks their ranges)."""
    if text is None or text == "search":
        return text
    try:
        time, freq = (float(v) for v in text.split(","))
    except ValueError:
        raise UserError(f"--resolution must be search or TIME,FREQ such as 2,0.5, got {text!r}") \
            from None
    return (time, freq)


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


def prune_distill_config(args: argparse.Namespace) -> Any:
    """`prune --distill-from` as a DistillConfig (None without it)."""
    from audioprune.distill.config import DistillConfig

    if args.distill_from is None:
        given = [f for f, v in (("--kd-loss", args.kd_loss), ("--temperature", args.temperature),
                                ("--alpha", args.alpha)) if v is not None]
        if given or args.teacher_mode != "auto":
            raise UserError(f"{', '.join(given) or '--teacher-mode'} only applies with "
                            f"--distill-from [TEACHER_RUN]")
        return None
    return DistillConfig(args.distill_from, args.kd_loss, args.temperature, args.alpha,
                         args.teacher_mode)
