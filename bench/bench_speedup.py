"""Real speed-up of pruned models against their MAC ratio: how much of the theoretical saving is real.

A side-by-side, not a timed test (issue 7, benchmark 3). For one parent and its pruned models it
measures, in one process, CPU latency in PyTorch eager and in ONNX Runtime at batch 1 and 32 (the
inference form that `audioprune profile` times: eval mode, batch norm folded into the convs,
features -> logits; threads set for both runtimes and stated), and sets the latency ratio to the
parent next to the MAC ratio. "Realised" is (1 - latency ratio) / (1 - MAC ratio): 100 % means
the whole MAC saving became wall time, 0 % none of it.

Which models:
  parent     the first dcase21net training run under --runs (default runs/fsdd-study) that has
             prune runs, else the first dcase21net training run there or in runs/fsdd-loso,
             else a dcase21net with random weights on the FSDD front end (latency does not depend
             on the weights' values)
  pruned     its prune runs under --runs (e.g. `...-wdc-C10.5_C20.5`), AND the parent pruned in
             memory to MAC budgets of --budgets (default 50 %, 30 %, 15 % of the parent) with
             --criterion (default wdc; uniform ratio over every prunable layer, the plan of
             the criteria recipe), AND every other layer-width structure the prune runs under
             --structures hold for this architecture (default runs/fsdd-loso: the runs of
             recipes/fsdd/criteria.yaml and recipes/fsdd/heavy.yaml at the parent's front end,
             e.g. a sensitivity allocation, which spends the same MACs in other layers; random
             weights); models with identical widths are timed once.

Every (runtime, batch) is timed round-robin over all models (bench/benchlib.py).

    .venv/bin/python bench/bench_speedup.py             # writes bench/results/speedup.json
    .venv/bin/python bench/bench_speedup.py --quick     # 3 rounds, results under bench/results/quick/
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import torch

from audioprune.data.registry import get_dataset_info
from audioprune.fileio import read_json
from audioprune.measure.counting import count_macs, count_params
from audioprune.measure.latency import ort_session, torch_threads
from audioprune.measure.onnx_export import clip_samples, export_onnx, inference_model
from audioprune.models.base import AudioClassifier
from audioprune.models.registry import create_model, model_config, model_from_config
from audioprune.pruning.body import prune_body
from audioprune.pruning.plan import Plan
from audioprune.pruning.spec import PruneSpec
from audioprune.runs.run_dir import load_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402

ARCH = "dcase21net"
BATCHES = (1, 32)


def _runs(root: Path, command: str) -> list[Path]:
    found = []
    for cfg in sorted(root.glob("*/config.json")) if root.is_dir() else []:
        run = cfg.parent
        try:
            saved = read_json(cfg)
        except ValueError:
            continue
        if (saved.get("command") == command and (run / "metrics.json").is_file()
                and read_json(run / "model.json").get("arch") == ARCH):
            found.append(run)
    return found


def find_models(runs: Path) -> tuple[Path | None, list[Path]]:
    """(parent run, its prune runs) under `runs`; the parent is None when no training run exists."""
    parents = _runs(runs, "train")
    pruned = _runs(runs, "prune")
    for parent in parents:
        kids = [p for p in pruned if read_json(p / "config.json").get("parent") == str(parent.resolve())]
        if kids:
            return parent, kids
    fallback = parents or _runs(benchlib.ROOT / "runs" / "fsdd-loso", "train")
    return (fallback[0] if fallback else None), []


def criteria_structures(runs: Path, frontend: dict[str, Any]) -> dict[str, dict[str, int]]:
    """{label: widths} of the distinct pruned structures of this architecture among the prune
    runs under `runs` (their model.json) that keep the parent's front end `frontend` (a coarsened
    resolution is another input size, not another structure), labelled by the first run."""
    out: dict[str, dict[str, int]] = {}
    seen: set[tuple] = set()
    for run in _runs(runs, "prune"):
        spec = read_json(run / "model.json")
        same_input = all((spec.get("frontend") or {}).get(k) == frontend.get(k)
                         for k in ("sample_rate", "hop_length", "n_mels", "clip_seconds"))
        key = tuple(sorted(spec.get("widths", {}).items()))
        if same_input and key and key not in seen:
            seen.add(key)
            out[run.name] = spec["widths"]
    return out


def models_to_time(args: argparse.Namespace) -> tuple[dict[str, AudioClassifier],
                                                      dict[str, dict[str, list[str]]]]:
    """name -> model (the parent first, no two with the same widths) and name -> where it came
    from (with the models it stands for)."""
    parent_run, pruned_runs = find_models(args.runs)
    if parent_run is not None:
        parent, _ = load_model(parent_run)
        source: dict[str, str] = {"parent": str(parent_run)}
    else:
        torch.manual_seed(0)
        parent = create_model(ARCH, 10, frontend=get_dataset_info("fsdd").frontend)
        source = {"parent": "random weights (seed 0), FSDD front end"}
    models: dict[str, AudioClassifier] = {"parent": parent}
    for run in pruned_runs:
        models[run.name] = load_model(run)[0]
        source[run.name] = str(run)
    base = count_macs(parent)["model"]
    for budget in args.budgets:
        m = model_from_config(model_config(parent))  # a copy of the parent, weights included
        m.load_state_dict(parent.state_dict())
        prune_body(m, PruneSpec(args.criterion, Plan(target_macs=int(budget * base))))
        name = f"ours ({args.criterion}, uniform) @ {budget:.0%} MACs"
        models[name] = m
        source[name] = f"parent pruned in memory, target_macs {budget:.0%} of the parent, uniform ratio"
    cfg = model_config(parent)
    for label, widths in criteria_structures(args.structures, cfg["frontend"]).items():
        torch.manual_seed(0)
        models[label] = model_from_config({**cfg, "widths": widths})
        source[label] = f"widths of {args.structures.name}/{label} (random weights)"
    unique, same = dedupe(models)
    return unique, {label: {"same_widths": names, "sources": [source[n] for n in names]}
                    for label, names in same.items()}


def dedupe(models: dict[str, AudioClassifier]) -> tuple[dict[str, AudioClassifier], dict[str, list[str]]]:
    """One model per distinct width structure, named after the first model with it (and how many
    more share it); also {name: every model with those widths}."""
    by_widths: dict[tuple, list[str]] = {}
    for name, m in models.items():
        by_widths.setdefault(tuple(sorted(m.layer_widths().items())), []).append(name)
    out, same = {}, {}
    for names in by_widths.values():
        label = names[0] if len(names) == 1 else f"{names[0]} (+{len(names) - 1} same widths)"
        out[label], same[label] = models[names[0]], names
    return out, same


def bench(models: dict[str, AudioClassifier], args: argparse.Namespace) -> dict[str, Any]:
    parent_name = next(iter(models))
    parent = models[parent_name]
    base_macs = count_macs(parent)["model"]
    samples = clip_samples(parent)
    feats = torch.randn(1, *parent.feature_shape(samples), generator=torch.Generator().manual_seed(0))
    rows: dict[str, Any] = {}
    deploy, sessions = {}, {}
    for name, m in models.items():
        m.eval()
        macs = count_macs(m)["model"]
        rows[name] = {"widths": m.layer_widths(), "params": count_params(m), "macs": macs,
                      "macs_ratio": round(macs / base_macs, 4)}
        deploy[name] = inference_model(m)
        if not args.no_onnx:
            sessions[name] = ort_session(export_onnx(m), args.threads)
    runtimes = ["eager"] + ([] if args.no_onnx else ["onnxruntime"])
    for runtime in runtimes:
        for b in BATCHES:
            x = feats.expand(b, *feats.shape[1:]).contiguous()
            if runtime == "eager":
                fns = {n: (lambda d=d: d.classify(x)) for n, d in deploy.items()}
            else:
                xn = x.numpy()
                fns = {n: (lambda s=s: s.run(None, {s.get_inputs()[0].name: xn}))
                       for n, s in sessions.items()}
            with torch.inference_mode(), torch_threads(args.threads):
                timed = benchlib.round_robin(fns, rounds=args.rounds, budget_s=args.budget)
            for n in models:
                r = timed.row(n, parent_name)
                saved = 1 - rows[n]["macs_ratio"]
                r["realised"] = round((1 - r["ratio"]) / saved, 4) if saved > 0 else None
                r["cpu_realised"] = round((1 - r["cpu_ratio"]) / saved, 4) if saved > 0 else None
                rows[n][f"{runtime}_b{b}"] = r
            print(f"{runtime} batch {b}: done", file=sys.stderr, flush=True)
    return {"parent": parent_name, "features": list(feats.shape[1:]), "models": rows}


def print_result(res: dict[str, Any], runtimes: list[str]) -> None:
    headers = ["model", "params", "MACs ratio"]
    for rt in runtimes:
        headers += [f"{rt} b1", f"{rt} b32"]
    rows = []
    for name, r in res["models"].items():
        row = [name, f"{r['params']:,}", f"{r['macs_ratio']:.3f}"]
        for rt in runtimes:
            for b in BATCHES:
                t = r[f"{rt}_b{b}"]
                row.append(f"{t['ms']:.2f} ms ({t['ratio']:.2f}; cpu {t['cpu_ratio']:.2f})")
        rows.append(row)
    print("\nlatency: median ms (ratio to parent, wall; and process CPU time)")
    print(benchlib.table(headers, rows))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds; results under bench/results/quick/")
    parser.add_argument("--runs", type=Path, default=benchlib.ROOT / "runs" / "fsdd-study")
    parser.add_argument("--budgets", type=float, nargs="*", default=[0.5, 0.3, 0.15],
                        help="MAC budgets (fractions of the parent) pruned in memory")
    parser.add_argument("--criterion", default="wdc")
    parser.add_argument("--structures", type=Path, default=benchlib.ROOT / "runs" / "fsdd-loso",
                        help="a runs folder whose prune runs' other structures are timed too")
    parser.add_argument("--threads", type=int, default=1, help="intra-op threads, both runtimes")
    parser.add_argument("--rounds", type=int, default=None, help="default 9, 3 with --quick")
    parser.add_argument("--budget", type=float, default=0.2, help="seconds per model per round")
    parser.add_argument("--no-onnx", action="store_true", help="eager only")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    args.rounds = args.rounds or (3 if args.quick else 9)
    out = args.out or (benchlib.QUICK_RESULTS if args.quick else benchlib.RESULTS) / "speedup.json"
    start = time.perf_counter()
    meta = {**benchlib.machine(), "threads": args.threads, "rounds": args.rounds,
            "budget_s_per_model_round": args.budget, "quick": args.quick,
            "timed": "inference form (eval, BN folded), features -> logits"}
    models, source = models_to_time(args)
    res = bench(models, args)
    res["sources"] = source
    print_result(res, ["eager"] + ([] if args.no_onnx else ["onnxruntime"]))
    meta.update(load_average_1min_at_end=benchlib.load_average(),
                wall_seconds=round(time.perf_counter() - start, 1))
    benchlib.save(out, {"meta": meta, **res})
    print(f"\nsaved {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
