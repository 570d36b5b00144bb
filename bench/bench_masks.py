"""Masks against structural pruning: same sparsity, what it does to parameters, MACs and latency.

A side-by-side, not a timed test (issue 7, benchmark 5). `torch.nn.utils.prune` is what a PyTorch
user reaches for first; it multiplies weights by a 0/1 mask and keeps every tensor at full size.
audioprune removes filters for real (Torch-Pruning's dependency graph). For each model
(dcase21net and cnn6 at width 0.25, random weights by default or a trained run's with --run, on
the FSDD front end) and each filter ratio R it builds, in one process:

  dense          the model as it is
  ours           structural: `prune_model` with criterion l1 and ratio R on every prunable layer
                 (the classifier excepted): filters, their BN and the next layer's inputs removed
  l1_unstructured  masks: prune.l1_unstructured on every conv/linear weight (classifier excepted),
                 each layer at the SAME weight sparsity the structural pruning gave it
  ln_structured  masks: prune.ln_structured (n=2, dim=0) with amount R: the same number of
                 whole filters of each layer zeroed (the mask twin of ours)
  ln_structured, baked   the same after prune.remove (zeros written into dense weights, no hook)

and reports stored parameters, non-zero weights, MACs per example (FlopCounterMode: it sees the
convolutions actually run, so masks change nothing) and CPU latency in PyTorch eager at batch 1
and 32, every variant in eval mode on features (no BN folding for any), timed round-robin
(bench/benchlib.py), threads stated.

    .venv/bin/python bench/bench_masks.py              # writes bench/results/masks.json
    .venv/bin/python bench/bench_masks.py --quick      # dcase21net only, fewer rounds
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn.utils import prune as tprune

from audioprune.data.registry import get_dataset_info
from audioprune.measure.counting import count_macs, count_params
from audioprune.measure.latency import torch_threads
from audioprune.models.registry import create_model
from audioprune.pruning.body import prune_body
from audioprune.pruning.plan import Plan
from audioprune.pruning.spec import PruneSpec
from audioprune.runs.run_dir import load_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402

MODELS = {"dcase21net": {}, "cnn6": {"width": 0.25}}
BATCHES = (1, 32)


def build(name: str, kwargs: dict[str, Any], run: Path | None) -> nn.Module:
    if run is not None:
        model, _ = load_model(run)
        return model.eval()
    torch.manual_seed(0)
    return create_model(name, 10, frontend=get_dataset_info("fsdd").frontend, **kwargs).eval()


def maskable(model: nn.Module) -> dict[str, nn.Module]:
    """Conv / linear layers with a weight, the classifier excepted (it is never pruned)."""
    skip = getattr(model, "classifier_name", "fc_out")
    return {n: m for n, m in model.named_modules()
            if isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Linear)) and n != skip}


def nonzero_weights(model: nn.Module) -> int:
    """Non-zero entries of the weights as the forward pass sees them (mask applied)."""
    total = 0
    for name, mod in model.named_modules():
        if name.startswith("frontend"):
            continue
        for pname, p in mod.named_parameters(recurse=False):
            if pname.endswith("_orig"):  # a masked tensor: count what the forward pass uses
                p = getattr(mod, pname[:-5])
            total += int(torch.count_nonzero(p.detach()))
    return total


def variants(model: nn.Module, ratio: float) -> dict[str, nn.Module]:
    ours = copy.deepcopy(model)
    prune_body(ours, PruneSpec("l1", Plan(ratio=ratio)))
    ours.eval()
    before, after = maskable(model), maskable(ours)
    l1 = copy.deepcopy(model)
    for name, mod in maskable(l1).items():  # the same per-layer weight sparsity as ours
        amount = 1.0 - after[name].weight.numel() / before[name].weight.numel()
        tprune.l1_unstructured(mod, "weight", amount=amount)
    ln, baked = copy.deepcopy(model), copy.deepcopy(model)  # (a masked module cannot be copied)
    for masked in (ln, baked):
        for mod in maskable(masked).values():
            tprune.ln_structured(mod, "weight", amount=ratio, n=2, dim=0)
    for mod in maskable(baked).values():
        tprune.remove(mod, "weight")
    return {"dense": model, "ours (structural)": ours, "l1_unstructured (mask)": l1,
            "ln_structured (mask)": ln, "ln_structured (mask baked)": baked}


def bench_model(name: str, kwargs: dict[str, Any], ratio: float, args: argparse.Namespace) -> dict[str, Any]:
    model = build(name, kwargs, args.run)
    vs = variants(model, ratio)
    base_params = count_params(model)
    base_macs = count_macs(model)["model"]
    feats = torch.randn(1, *model.feature_shape(model.frontend_cfg.clip_samples
                                                or model.frontend_cfg.sample_rate),
                        generator=torch.Generator().manual_seed(0))
    rows: dict[str, Any] = {}
    for vname, m in vs.items():
        macs = count_macs(m)["model"]
        rows[vname] = {"params_stored": count_params(m), "nonzero_weights": nonzero_weights(m),
                       "macs": macs, "macs_ratio": round(macs / base_macs, 4),
                       "widths": m.layer_widths() if hasattr(m, "layer_widths") else None}
    with torch.inference_mode(), torch_threads(args.threads):
        for b in args.batches:
            x = feats.expand(b, *feats.shape[1:]).contiguous()
            fns = {v: (lambda m=m: m.classify(x)) for v, m in vs.items()}
            timed = benchlib.round_robin(fns, rounds=args.rounds, budget_s=args.budget)
            for v in vs:
                rows[v][f"latency_b{b}"] = timed.row(v, "dense")
    return {"model": name, "kwargs": kwargs, "ratio": ratio, "params": base_params,
            "macs": base_macs, "features": list(feats.shape[1:]),
            "weights": str(args.run) if args.run else "random (seed 0)", "variants": rows}


def print_result(res: dict[str, Any]) -> None:
    print(f"\n{res['model']} {res['kwargs'] or ''} filter ratio {res['ratio']}: dense "
          f"{res['params']:,} params, {res['macs']:,} MACs, features {res['features']}")
    headers = ["variant", "stored params", "non-zero", "MACs", "b1 ms / dense", "b32 ms / dense"]
    rows = []
    for v, r in res["variants"].items():
        rows.append([v, f"{r['params_stored']:,}", f"{r['nonzero_weights']:,}",
                     f"{r['macs']:,} ({r['macs_ratio']:.2f})"]
                    + [f"{r[k]['ms']:.2f} / {r[k]['ratio']:.2f}" if k in r else "-"
                       for k in ("latency_b1", "latency_b32")])
    print(benchlib.table(headers, rows))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="dcase21net only, 3 rounds")
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=None)
    parser.add_argument("--ratios", type=float, nargs="+", default=[0.5],
                        help="fractions of filters removed per layer (default 0.5)")
    parser.add_argument("--run", type=Path, default=None,
                        help="a trained run directory to use instead of random weights "
                             "(then only its model is benchmarked)")
    parser.add_argument("--batches", type=int, nargs="+", default=list(BATCHES),
                        help="batch sizes timed (default 1 32)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    parser.add_argument("--rounds", type=int, default=None, help="round-robin rounds (default 15, "
                        "3 with --quick)")
    parser.add_argument("--budget", type=float, default=0.15, help="seconds per variant per round")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    args.rounds = args.rounds or (3 if args.quick else 15)
    out = args.out or (benchlib.QUICK_RESULTS if args.quick else benchlib.RESULTS) / "masks.json"
    if args.run is not None:
        models = [(None, {})]
    else:
        names = args.models or (["dcase21net"] if args.quick else list(MODELS))
        models = [(n, MODELS[n]) for n in names]
    start = time.perf_counter()
    meta = {**benchlib.machine(), "threads": args.threads, "rounds": args.rounds,
            "budget_s_per_variant_round": args.budget, "quick": args.quick}
    results = []
    for name, kwargs in models:
        for ratio in args.ratios:
            res = bench_model(name or "", kwargs, ratio, args)
            if name is None:
                res["model"] = str(args.run)
            results.append(res)
            print_result(res)
    meta.update(load_average_1min_at_end=benchlib.load_average(),
                wall_seconds=round(time.perf_counter() - start, 1))
    benchlib.save(out, {"meta": meta, "results": results})
    print(f"\nsaved {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
