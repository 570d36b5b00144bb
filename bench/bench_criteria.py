"""Criteria quality at equal MACs: our criteria against Torch-Pruning's own importances on real FSDD.

A side-by-side, not a timed test (issue 7, benchmark 1, the core claim). A trained parent on the
speaker-independent FSDD split (`speaker:nicolas`: one speaker held out, so a small CNN does not
saturate) is pruned to MAC budgets (default 50 %, 30 %, 15 % of the parent) by

  ours   wdc, betweenness, betweenness-index (ties in index order), similarity,
         similarity-nystrom, opnorm, l1, fpgm, random:
         `audioprune.pruning.body.prune_body` with `Plan(target_macs=...)` (the smallest uniform
         ratio over every prunable layer, the classifier excepted, that meets the budget, then
         filters given back while the budget holds);
  peer   Torch-Pruning's GroupMagnitudeImportance, FPGMImportance, RandomImportance and
         TaylorImportance choosing the filters of the SAME per-layer counts (see prune_peer),
         and LAMPImportance through Torch-Pruning's own `BasePruner` with global_pruning=True
         (the way it is meant to be used: with per-layer ranking LAMP's score is monotone in the
         weight magnitude and ranks exactly as magnitude does), its `pruning_ratio` searched by
         bisection for the smallest ratio whose model meets the budget. MACs are counted with
         OUR counter (FlopCounterMode) and the achieved ratio is recorded. Taylor's gradients
         come from 8 seeded training batches (our `taylor` calibration).

then fine-tuned with the same budget for every method (`audioprune.train.fit.fit` on the parent's
data, the parent's training settings with lr / 10, --finetune-epochs epochs, best validation
epoch kept) and evaluated on the test split before and after fine-tuning.

Units: without --folds, seed s uses parent `dcase21net-speaker-nicolas-e20-s{s}` (from
runs/fsdd-study when it exists there, else runs/bench-criteria/, trained there by the recipe
runner when missing), and s seeds fine-tuning, the random criteria and Taylor's calibration
batches. With `--folds all` (or fold numbers) the protocol is FSDD leave-one-speaker-out: each
(fold, seed) unit has its own parent `dcase21net-fold{k}-e20-s{s}` trained on fold k (speaker k
held out for testing, the next speaker for validation). `--parent RUN` uses one given parent for
every seed instead.

Equal budgets. Our plans give filters back while the budget holds (Plan.fill), the peers'
pruning_ratio is bisected; a cell whose MACs end more than 2% below its budget (relative:
< 0.98 x budget) is recorded as missed and left out of every mean and comparison. Statistics
(summary, BENCHMARKS.md): per method and budget the mean over units with a 95% interval, the
paired difference to the unpruned parent (the drop) and to --baseline (default tp-magnitude,
Torch-Pruning's best importance at heavy budgets) with its interval and Wilcoxon / sign-test
p-values (audioprune.report.stats). `--redo METHOD` drops that method's saved results and
measures them again.

Resumable: every finished (parent, method, budget, seed, fine-tuning epochs) is saved at once in
the results JSON and skipped when the script runs again. `--max-minutes` stops starting new ones.
Two calls with different --seeds may run at once on one --out (one core each): every save
merges what the other call saved meanwhile, under a lock file beside the JSON.

    .venv/bin/python bench/bench_criteria.py --quick    # 1 seed, 30 % budget, 2 epochs, 5 methods
    .venv/bin/python bench/bench_criteria.py            # 3 seeds x 3 budgets x 14 methods, 5 epochs
    .venv/bin/python bench/bench_criteria.py --folds all --seeds 0 --out bench/results/criteria_fsdd_loso.json
    .venv/bin/python bench/bench_criteria.py --plot-only
Results: bench/results/criteria_fsdd.json + criteria_fsdd.png (--quick: bench/results/quick/).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import fcntl
import logging
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch_pruning as tp

from audioprune.distill.config import DistillConfig
from audioprune.errors import UserError
from audioprune.fileio import atomic_write, read_json, read_tensors
from audioprune.measure.counting import count_macs, count_params
from audioprune.models.base import AudioClassifier
from audioprune.pruning.calibration import (
    DEFAULT_BATCHES,
    accumulate_gradients,
    calibration_batches,
    clear_gradients,
)
from audioprune.pruning.criteria import select_prune
from audioprune.pruning.body import body_pruner, prune_body
from audioprune.pruning.plan import Plan
from audioprune.pruning.spec import PruneSpec
from audioprune.pruning.pruner import default_loss as calibration_loss
from audioprune.report.stats import mean_ci, paired_difference
from audioprune.runs.data import DataBundle, DataSpec, prepare_data
from audioprune.runs.parents import finetune_config, parent_data_spec
from audioprune.runs.prune import prune_run
from audioprune.runs.run_dir import MODEL_WEIGHTS, load_model
from audioprune.train.fit import TrainConfig, evaluate, fit

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402

# betweenness-index: betweenness with ties (often every filter at 0) in index order, as before
# the tie-break by weighted degree became the default (centrality.py, "Ties in betweenness")
# NAME+sens: the budget split by layer sensitivity (allocation="sensitivity", 8 calibration
# batches drawn by the seed); NAME+group: the criterion in group scope (the root filter, its BN
# and the next layers' input slices). tp-magnitude+sens is Torch-Pruning's group magnitude (our
# registered tp-magnitude criterion) under our sensitivity allocation.
# Schedules (issue 18, heavy budgets): NAME+ft3x one-shot with 3x the fine-tuning epochs;
# NAME+kd one-shot, fine-tuned by distillation from the unpruned parent; NAME+iter3kd three
# rounds of prune + distil (the epochs each round, so 3x in all), through the library's
# prune_run (audioprune prune --iterative 3 --distill-from parent).
# variant -> (rounds, distil from the parent, fine-tuning epochs as a multiple of the protocol's)
SCHEDULES = {"ft3x": (1, False, 3), "kd": (1, True, 1), "iter3kd": (3, True, 3)}
OURS = ("wdc", "betweenness", "betweenness-index", "similarity", "similarity-nystrom", "opnorm",
        "l1", "fpgm", "random", "l1+sens", "tp-magnitude+sens", "wdc+group", "betweenness+group",
        "tp-magnitude+ft3x", "tp-magnitude+kd", "tp-magnitude+iter3kd", "betweenness+ft3x")
# name -> (importance factory, global ranking)
PEERS: dict[str, tuple[Callable[[], tp.importance.Importance], bool]] = {
    "tp-magnitude": (lambda: tp.importance.GroupMagnitudeImportance(p=2), False),
    "tp-fpgm": (lambda: tp.importance.FPGMImportance(), False),
    "tp-lamp": (lambda: tp.importance.LAMPImportance(), True),
    "tp-random": (lambda: tp.importance.RandomImportance(), False),
    "tp-taylor": (lambda: tp.importance.TaylorImportance(), False),
}
METHODS = OURS + tuple(PEERS)
QUICK_METHODS = ("wdc", "l1", "random", "tp-magnitude", "tp-taylor")
NYSTROM_LANDMARKS = 8  # the default 32 would make Nystrom exact on layers of <= 32 filters
SPLIT = "speaker:nicolas"
FSDD_FOLDS = 6  # leave-one-speaker-out
BUDGET_TOLERANCE = 0.02  # a cell more than 2% (relative) below its budget is "missed"
log = logging.getLogger("bench_criteria")


# ------------------------------------------------------------------------------ results file


@contextlib.contextmanager
def _locked(out: Path):
    lock = out.with_suffix(".lock")
    lock.parent.mkdir(parents=True, exist_ok=True)
    with open(lock, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def save_shared(out: Path, data: dict[str, Any]) -> None:
    """Save `data`, first taking in what another call saved to `out` since we read it, so that
    two calls on different seeds never drop each other's results (the write itself is atomic)."""
    with _locked(out):
        disk = read_json(out) if out.is_file() else {}
        for key in ("runs", "parents", "seed_parents"):
            mine = data.setdefault(key, {})
            for k, v in disk.get(key, {}).items():
                mine.setdefault(k, v)
        calls = data.setdefault("calls", [])
        calls[:0] = [c for c in disk.get("calls", []) if c not in calls]
        benchlib.save(out, data)


# ------------------------------------------------------------------------------ parents


def parent_name(model: str, width: float, epochs: int, seed: int, fold: int | None = None) -> str:
    w = "" if width == 1.0 else f"-w{width:g}"
    where = f"fold{fold}" if fold is not None else SPLIT.replace(":", "-")
    return f"{model}{w}-{where}-e{epochs}-s{seed}"


def unit_label(seed: int, fold: int | None) -> str:
    """How results name a unit: "fold3-s0" with folds, "0" (the seed) without (as before)."""
    return f"fold{fold}-s{seed}" if fold is not None else str(seed)


def find_or_train_parent(args: argparse.Namespace, seed: int, out: Path | None = None,
                         fold: int | None = None) -> Path:
    """The study's parent when it exists, else ours under runs/bench-criteria (trained now with
    the recipe runner when missing: benchlib.train_parent); with `out`, that run (trained there
    when missing: a results file's parent whose run directory is gone)."""
    name = parent_name(args.model, args.width, args.train_epochs, seed, fold)
    if out is None:
        for root in (benchlib.ROOT / "runs" / "fsdd-study", args.workdir):
            if (root / name / "metrics.json").is_file():
                return root / name
        out = args.workdir / name
    elif (out / "metrics.json").is_file():
        return out
    split = f"fold:{fold}" if fold is not None else SPLIT
    return benchlib.train_parent(out, args.model, split, args.train_epochs, seed, args.data_root,
                                 {"width": args.width} if args.width != 1.0 else {}, args.device)


def run_id(path: Path) -> str:
    """How results name a parent: its path relative to the repository (absolute outside it)."""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(benchlib.ROOT))
    except ValueError:
        return str(path)


def parent_for(args: argparse.Namespace, seed: int, pinned: dict[str, str],
               fold: int | None = None) -> Path:
    """--parent, else the parent this results file already used for the unit (so a parent that
    appears in runs/fsdd-study later does not mix into finished results), else a new one."""
    unit = unit_label(seed, fold)
    if args.parent is not None:
        pinned[unit] = run_id(args.parent)  # so that later calls without --parent find it
        return args.parent
    saved = pinned.get(unit)
    if saved:  # retrained in place when gone (training is deterministic; run_all checks it)
        return find_or_train_parent(args, seed, benchlib.ROOT / saved, fold)
    path = find_or_train_parent(args, seed, fold=fold)
    pinned[unit] = run_id(path)
    return path


# ------------------------------------------------------------------------------ pruning


def criterion_of(method: str, seed: int) -> tuple[str, dict[str, Any], str]:
    """(criterion, its options, variant) of one of OURS."""
    criterion, _, variant = method.partition("+")
    options: dict[str, Any] = {}
    if criterion == "betweenness-index":
        criterion, options = "betweenness", {"tie_break": "index"}
    elif criterion == "random":
        options = {"seed": seed}
    elif criterion == "similarity-nystrom":
        options = {"m": NYSTROM_LANDMARKS, "seed": seed}
    return criterion, options, variant


def prune_ours(model: AudioClassifier, method: str, target: int, seed: int,
               bundle: DataBundle, batch_size: int) -> dict[str, Any]:
    criterion, options, variant = criterion_of(method, seed)
    plan = Plan(target_macs=target, allocation="sensitivity" if variant == "sens" else "uniform")
    batches = (calibration_batches(bundle.train, DEFAULT_BATCHES, batch_size, seed)
               if variant == "sens" else None)
    info = prune_body(model, PruneSpec(criterion, plan, options,
                                       scope="group" if variant == "group" else None), batches)
    return {"level": info["plan"]["level"], "options": options,
            **({"sensitivity": info["plan"]["sensitivity"]} if variant == "sens" else {}),
            **({"scope": "group"} if variant == "group" else {})}


def _copy_with_grads(model: AudioClassifier) -> AudioClassifier:
    """deepcopy drops .grad; Taylor needs it on the copy the pruner works on."""
    clone = copy.deepcopy(model)
    for dst, src in zip(clone.parameters(), model.parameters()):
        dst.grad = None if src.grad is None else src.grad.clone()
    return clone


def tp_prune_at(model: AudioClassifier, method: str, ratio: float, seed: int) -> AudioClassifier:
    """A copy of `model` pruned by Torch-Pruning's BasePruner at `pruning_ratio=ratio`."""
    factory, global_pruning = PEERS[method]
    clone = _copy_with_grads(model)
    torch.manual_seed(seed)  # RandomImportance draws from torch's generator
    pruner = tp.pruner.BasePruner(
        clone, clone.example_features(), factory(), pruning_ratio=ratio,
        global_pruning=global_pruning, ignored_layers=[getattr(clone, clone.classifier_name)],
        forward_fn=lambda m, x: m.classify(x))
    pruner.step()
    clear_gradients(clone.parameters())
    return clone


def prune_peer(model: AudioClassifier, method: str, target: int, seed: int,
               bundle: DataBundle, batch_size: int) -> tuple[AudioClassifier, dict[str, Any]]:
    """A Torch-Pruning importance at `target` MACs.

    Local importances (magnitude, FPGM, random, Taylor) prune exactly as many filters of each
    layer as our criteria do at this budget (the same plan: uniform ratio, then filters given
    back while the budget holds), Torch-Pruning's importance choosing WHICH filters (scored on
    our dependency graph, Torch-Pruning's groups, its sign convention): so every local method
    lands at the same MACs and only the criterion differs. (Torch-Pruning's own BasePruner prunes
    a uniform ratio per layer and cannot give filters back: at 15% of dcase21net's MACs it lands
    at 11.0%, where our plans now land at the budget.) LAMP ranks globally - that is its point -
    so it runs through Torch-Pruning's BasePruner with global_pruning and its pruning_ratio
    bisected; where that cannot reach the budget within 2% the cell is recorded as missed."""
    if method == "tp-taylor":
        batches = calibration_batches(bundle.train, DEFAULT_BATCHES, batch_size, seed)
        accumulate_gradients(model, batches, calibration_loss)
    factory, global_pruning = PEERS[method]
    if not global_pruning:
        try:
            pruner = body_pruner(model, PruneSpec("l1", Plan(target_macs=target)))
            plan = pruner.plan()
            names = [n for n, c in plan.counts.items() if c]
            torch.manual_seed(seed)  # RandomImportance draws from torch's generator
            scores = pruner.graph.scores(factory(), names)
            pruner.graph.prune({n: select_prune(scores[n], plan.counts[n]).tolist() for n in names})
        finally:
            clear_gradients(model.parameters())
        return model, {"plan": "same per-layer counts as ours", "counts": plan.counts,
                       "level": plan.level, "global_pruning": False}
    cache: dict[float, tuple[AudioClassifier, int]] = {}

    def at(ratio: float) -> tuple[AudioClassifier, int]:
        if ratio not in cache:
            pruned = tp_prune_at(model, method, ratio, seed)
            cache[ratio] = (pruned, count_macs(pruned)["model"])
        return cache[ratio]

    grid = [round(0.05 * k, 2) for k in range(1, 20)]
    hi = next((r for r in grid if at(r)[1] <= target), None)
    if hi is None:
        raise UserError(f"{method}: no Torch-Pruning pruning_ratio up to {grid[-1]} meets the "
                        f"budget of {target:,} MACs (smallest reached: "
                        f"{min(m for _, m in cache.values()):,})")
    lo = hi - 0.05
    for _ in range(8):  # 0.05 / 2^8 = 0.0002: finer than one filter of any layer here
        mid = (lo + hi) / 2
        if at(mid)[1] <= target:
            hi = mid
        else:
            lo = mid
    clear_gradients(model.parameters())
    pruned, _ = at(hi)
    return pruned, {"pruning_ratio": round(hi, 6), "global_pruning": PEERS[method][1],
                    "ratio_trials": len(cache)}


# ------------------------------------------------------------------------------ one config


def accuracy(model: AudioClassifier, bundle: DataBundle, cfg: TrainConfig) -> float:
    return float(evaluate(model, bundle.test, cfg)["accuracy"])


def run_config(parent: Path, bundle: DataBundle, method: str, budget: float, seed: int,
               epochs: int, parent_macs: int, scratch: Path, device: str = "cpu",
               fold: int | None = None) -> dict[str, Any]:
    """Prune the parent with `method` to `budget` of its MACs (on the CPU), fine-tune and
    evaluate on `device`."""
    model, info = load_model(parent)
    cfg = finetune_config(parent, epochs=epochs, seed=seed, progress=False, device=device)
    target = int(budget * parent_macs)
    variant = method.partition("+")[2]
    if variant in ("kd", "iter3kd"):
        return run_schedule(parent, method, budget, seed, cfg, parent_macs, scratch, fold,
                            info["arch"])
    if variant in SCHEDULES:  # one shot, longer fine-tuning (ft3x)
        cfg.epochs = SCHEDULES[variant][2] * epochs
    t0 = time.perf_counter()
    if method in PEERS:
        model, how = prune_peer(model, method, target, seed, bundle, cfg.batch_size)
    else:
        how = prune_ours(model, method, target, seed, bundle, cfg.batch_size)
    prune_s = time.perf_counter() - t0
    macs, params = count_macs(model)["model"], count_params(model)
    model.to(device)
    before = accuracy(model, bundle, cfg)
    work = scratch / f"{parent.name}-{method}-{budget}-s{seed}"
    shutil.rmtree(work, ignore_errors=True)
    t0 = time.perf_counter()
    summary = fit(model, bundle.train, bundle.val, cfg, work)
    model.load_state_dict(read_tensors(work / MODEL_WEIGHTS), strict=False)  # best val epoch
    finetune_s = time.perf_counter() - t0
    after = accuracy(model, bundle, cfg)
    shutil.rmtree(work, ignore_errors=True)
    return {**_cell(parent, info["arch"], method, budget, seed, fold, epochs, cfg.epochs, cfg.lr,
                    target, parent_macs, macs, params, model.layer_widths()),
            "how": how, "accuracy_before": before, "accuracy_after": after,
            "best_val_accuracy": (summary["best_val"] or {}).get("accuracy"),
            "best_epoch": summary["best_epoch"] + 1, "prune_s": round(prune_s, 2),
            "finetune_s": round(finetune_s, 1)}


def _cell(parent: Path, arch: str, method: str, budget: float, seed: int, fold: int | None,
          epochs: int, total_epochs: int, lr: float, target: int, parent_macs: int, macs: int,
          params: int, widths: dict[str, int]) -> dict[str, Any]:
    """What every result cell records about its unit, method, budget and pruned size."""
    return {"parent": run_id(parent), "arch": arch, "method": method,
            "family": "torch-pruning" if method in PEERS else "audioprune", "budget": budget,
            "seed": seed, **({"fold": fold} if fold is not None else {}),
            "finetune_epochs": epochs, "finetune_epochs_total": total_epochs, "finetune_lr": lr,
            "target_macs": target, "macs": macs, "macs_ratio": round(macs / parent_macs, 4),
            "missed_budget": macs < (1 - BUDGET_TOLERANCE) * target,
            "params": params, "widths": widths}


def run_schedule(parent: Path, method: str, budget: float, seed: int, cfg: TrainConfig,
                 parent_macs: int, scratch: Path, fold: int | None, arch: str) -> dict[str, Any]:
    """A SCHEDULES variant through the library's prune_run (a run directory in `scratch`,
    deleted after): K rounds of prune + fine-tune, with distillation from the parent."""
    criterion, options, variant = criterion_of(method, seed)
    rounds, distil, _ = SCHEDULES[variant]
    target = int(budget * parent_macs)
    epochs = cfg.epochs
    work = scratch / f"{parent.name}-{method}-{budget}-s{seed}"
    shutil.rmtree(work, ignore_errors=True)
    t0 = time.perf_counter()
    spec = PruneSpec(criterion, Plan(target_macs=target), options, iterative=rounds,
                     distill=DistillConfig("parent") if distil else None)
    m = prune_run(parent, work, spec, cfg, parent_data_spec(parent))
    wall = time.perf_counter() - t0
    model, _ = load_model(work)
    widths = model.layer_widths()
    shutil.rmtree(work, ignore_errors=True)
    first = m["pruning"]["rounds"][0]["after_prune"]
    return {**_cell(parent, arch, method, budget, seed, fold, epochs, rounds * epochs, cfg.lr,
                    target, parent_macs, m["macs"], m["params"], widths),
            "how": {"rounds": rounds, "distill": m.get("distill"),
                    "level": m["pruning"]["plan"]["resolved"]["level"]},
            "accuracy_before": first["accuracy"],  # after the first round's pruning
            "accuracy_after": m["accuracy"], "best_val_accuracy": (m.get("val") or {}).get("accuracy"),
            "best_epoch": m["best_epoch"],
            "prune_s": round(wall - m["train_seconds"], 2),  # wall minus training: pruning, evals
            "finetune_s": round(m["train_seconds"], 1)}


# ------------------------------------------------------------------------------ summary + plot


def unit_of(rec: dict[str, Any]) -> str:
    return unit_label(rec["seed"], rec.get("fold"))


def _missed(rec: dict[str, Any]) -> bool:
    """A cell more than BUDGET_TOLERANCE below its budget (older records: from their MACs)."""
    if "missed_budget" in rec:
        return bool(rec["missed_budget"])
    return rec["macs"] < (1 - BUDGET_TOLERANCE) * rec["target_macs"]


def summarise(runs: dict[str, dict[str, Any]], parents: dict[str, Any],
              baseline: str = "tp-magnitude", ci: str = "bootstrap") -> list[dict[str, Any]]:
    """Per (method, budget): mean and 95% interval over the units whose MACs met the budget, the
    paired difference to the parent (the drop) and to `baseline` on the same units."""
    groups: dict[tuple[str, float], list[dict[str, Any]]] = {}
    for rec in runs.values():
        groups.setdefault((rec["method"], rec["budget"]), []).append(rec)
    kept = {key: {unit_of(r): r for r in recs if not _missed(r)} for key, recs in groups.items()}
    order = {m: i for i, m in enumerate(METHODS)}
    rows = []
    for (method, budget), recs in sorted(groups.items(), key=lambda kv: (-kv[0][1], order.get(kv[0][0], 99))):
        ok = kept[(method, budget)]
        after = {u: r["accuracy_after"] for u, r in ok.items()}
        before = {u: r["accuracy_before"] for u, r in ok.items()}
        parent_acc = {u: parents[r["parent"]]["accuracy"] for u, r in ok.items()}
        iv, iv_before = mean_ci(list(after.values()), method=ci), mean_ci(list(before.values()), method=ci)
        drop = paired_difference(after, parent_acc, method=ci)
        base = kept.get((baseline, budget), {})
        vs = (paired_difference(after, {u: r["accuracy_after"] for u, r in base.items()}, method=ci)
              if method != baseline and base else None)
        plain = kept.get((method.partition("+")[0], budget), {}) if "+" in method else {}
        vs_plain = (paired_difference(after, {u: r["accuracy_after"] for u, r in plain.items()},
                                      method=ci) if plain else None)
        rows.append({
            "method": method, "family": recs[0]["family"], "budget": budget,
            "units": sorted(ok), "n": len(ok), "missed": sorted(unit_of(r) for r in recs if _missed(r)),
            "macs_ratio": statistics.mean(r["macs_ratio"] for r in recs),
            "macs_ratio_min": min(r["macs_ratio"] for r in recs),
            "params": statistics.mean(r["params"] for r in recs),
            "accuracy_after": iv.mean, "accuracy_after_ci": [iv.low, iv.high],
            "accuracy_after_sd": statistics.stdev(after.values()) if len(after) > 1 else None,
            "accuracy_before": iv_before.mean, "accuracy_before_ci": [iv_before.low, iv_before.high],
            "accuracy_before_sd": statistics.stdev(before.values()) if len(before) > 1 else None,
            "parent_accuracy": statistics.mean(parent_acc.values()) if parent_acc else None,
            "vs_parent": _diff(drop), "baseline": baseline if vs is not None else None,
            "vs_baseline": _diff(vs) if vs is not None else None, "ci": ci,
            # NAME+variant against NAME itself (its plain form: root scope, uniform, one shot)
            "vs_plain": _diff(vs_plain) if vs_plain is not None else None,
            "finetune_s": statistics.mean(r["finetune_s"] for r in recs),
            "prune_s": statistics.mean(r["prune_s"] for r in recs)})
    return rows


def _diff(d: Any) -> dict[str, Any]:
    iv = d.interval
    return {"mean": iv.mean, "ci": [iv.low, iv.high], "n": iv.n, "wilcoxon_p": d.wilcoxon_p,
            "sign_p": d.sign_p, "significant": d.significant}


def _pct_ci(mean: float, ci: list[float] | None, signed: bool = False) -> str:
    f = "+.1f" if signed else ".1f"
    if ci is None or ci[0] == ci[1]:
        return format(100 * mean, f)
    return f"{100 * mean:{f}} [{100 * ci[0]:{f}}, {100 * ci[1]:{f}}]"


def print_summary(rows: list[dict[str, Any]]) -> None:
    def diff(d: dict[str, Any] | None) -> str:
        if not d or not d["n"]:
            return "-"
        return _pct_ci(d["mean"], d["ci"], True) + (" *" if d["significant"] else "")

    headers = ["budget", "method", "MACs ratio", "units", "acc. after FT % [95% CI]",
               "vs parent (points)", f"vs {rows[0].get('baseline') or 'baseline'} (points)",
               "Wilcoxon p"]
    body = [[f"{r['budget']:.0%}", r["method"], f"{r['macs_ratio']:.3f}",
             f"{r['n']}" + (f" ({len(r['missed'])} missed)" if r["missed"] else ""),
             _pct_ci(r["accuracy_after"], r["accuracy_after_ci"]), diff(r["vs_parent"]),
             diff(r["vs_baseline"]),
             f"{r['vs_baseline']['wilcoxon_p']:.3f}" if r["vs_baseline"] and
             r["vs_baseline"]["wilcoxon_p"] is not None else "-"] for r in rows]
    print(benchlib.table(headers, body))


def plot(rows: list[dict[str, Any]], parents: dict[str, Any], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(12, 4.8), sharey=True)
    methods = [m for m in METHODS if any(r["method"] == m for r in rows)]
    colours = {m: plt.get_cmap("tab10")(i) for i, m in enumerate(OURS)}
    colours.update({m: plt.get_cmap("Dark2")(i) for i, m in enumerate(PEERS)})
    right = 100 * max(max(r["macs_ratio"] for r in rows), max(r["budget"] for r in rows)) + 5
    parent_acc = statistics.mean(p["accuracy"] for p in parents.values()) if parents else None
    for ax, key, label in ((axes[0], "accuracy_before", "before fine-tuning"),
                           (axes[1], "accuracy_after", "after fine-tuning")):
        for m in methods:
            pts = sorted((r for r in rows if r["method"] == m), key=lambda r: r["macs_ratio"])
            ours = m in OURS
            ci = [r.get(key + "_ci") or [r[key], r[key]] for r in pts]
            ax.errorbar([100 * r["macs_ratio"] for r in pts], [100 * r[key] for r in pts],
                        yerr=[[100 * (r[key] - c[0]) for r, c in zip(pts, ci)],
                              [100 * (c[1] - r[key]) for r, c in zip(pts, ci)]], label=m,
                        color=colours[m], linestyle="-" if ours else "--",
                        marker="o" if ours else "s", capsize=3, linewidth=1.4)
        if parent_acc is not None:
            ax.axhline(100 * parent_acc, color="black", linewidth=0.8, linestyle=":",
                       label="parent (unpruned)")
        ax.set_xlim(0, right)
        ax.set_xlabel("MACs, % of the parent")
        ax.set_title(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("test accuracy, %")
    axes[1].legend(fontsize=7, ncol=2, loc="lower right")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    atomic_write(path, lambda p: fig.savefig(p, format="png", dpi=110))
    plt.close(fig)


# ------------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="1 seed, the 30 %% budget, 2 fine-tuning epochs, 5 methods")
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=None)
    parser.add_argument("--budgets", type=float, nargs="+", default=None,
                        help="MAC budgets as fractions of the parent (default 0.5 0.3 0.15)")
    parser.add_argument("--seeds", type=int, nargs="+", default=None, help="default 0 1 2")
    parser.add_argument("--folds", nargs="+", default=None, metavar="all|K",
                        help="FSDD leave-one-speaker-out folds (all = 1..6): one parent per "
                        "(fold, seed) unit")
    parser.add_argument("--finetune-epochs", type=int, default=None, help="default 5, 2 with --quick")
    parser.add_argument("--model", default="dcase21net")
    parser.add_argument("--device", default="cpu", help="fine-tuning (and parent training) "
                        "device, e.g. cuda when a GPU is lent: the full run is the heavy one")
    parser.add_argument("--width", type=float, default=1.0)
    parser.add_argument("--train-epochs", type=int, default=20, help="parent training epochs")
    parser.add_argument("--parent", type=Path, default=None, help="one parent run for every seed")
    parser.add_argument("--data-root", type=Path, default=benchlib.FSDD)
    parser.add_argument("--workdir", type=Path, default=benchlib.ROOT / "runs" / "bench-criteria")
    parser.add_argument("--out", type=Path, default=None, help="results JSON (the PNG goes beside it)")
    parser.add_argument("--max-minutes", type=float, default=None,
                        help="start no new configuration after this many minutes")
    parser.add_argument("--baseline", default="tp-magnitude", choices=METHODS,
                        help="the method every other is compared with, unit by unit")
    parser.add_argument("--ci", choices=["bootstrap", "t"], default="bootstrap")
    parser.add_argument("--redo", nargs="+", choices=METHODS, default=[],
                        help="drop these methods' saved results (of the units and budgets asked "
                        "for) and measure them again")
    parser.add_argument("--plot-only", action="store_true", help="summary and plot from the JSON")
    args = parser.parse_args(argv)
    quick = args.quick
    methods = args.methods or (QUICK_METHODS if quick else METHODS)
    budgets = args.budgets or ([0.3] if quick else [0.5, 0.3, 0.15])
    seeds = args.seeds or ([0] if quick else [0, 1, 2])
    folds: list[int | None] = [None]
    if args.folds:
        folds = (list(range(1, FSDD_FOLDS + 1)) if args.folds == ["all"]
                 else sorted({int(k) for k in args.folds}))
        if any(not 1 <= k <= FSDD_FOLDS for k in folds):  # type: ignore[operator]
            parser.error(f"--folds: FSDD has folds 1..{FSDD_FOLDS}")
    units = [(seed, fold) for fold in folds for seed in seeds]
    split = f"fold:*/{FSDD_FOLDS}" if args.folds else SPLIT
    epochs = args.finetune_epochs if args.finetune_epochs is not None else (2 if quick else 5)
    out = args.out or (benchlib.QUICK_RESULTS if quick else benchlib.RESULTS) / "criteria_fsdd.json"
    png = out.with_suffix(".png")
    logging.getLogger("audioprune").setLevel(logging.WARNING)

    data = read_json(out) if out.is_file() else {"runs": {}, "parents": {}, "seed_parents": {}}
    runs, parents = data["runs"], data["parents"]
    start = time.perf_counter()
    if args.redo and not args.plot_only:
        drop_for_redo(args, data, out, units, budgets, epochs)
    if not args.plot_only:
        if not benchlib.fsdd_available(args.data_root):
            print(f"FSDD not found at {args.data_root} (expected {args.data_root}/recordings); "
                  f"bench_criteria needs the real recordings: skipped", flush=True)
            return 0
        meta = {**benchlib.machine(), "threads": torch.get_num_threads(), "quick": quick,
                "methods": list(methods), "budgets": budgets, "seeds": seeds,
                "folds": [f for f in folds if f is not None], "finetune_epochs": epochs,
                "split": split, "redo": args.redo}
        stopped = run_all(args, methods, budgets, units, epochs, data, out, start)
        meta.update(load_average_1min_at_end=benchlib.load_average(),
                    wall_seconds_this_call=round(time.perf_counter() - start, 1),
                    stopped_early=stopped)
        data.setdefault("calls", []).append(meta)
        save_shared(out, data)  # takes in what a call running beside this one saved
    pinned = data.get("seed_parents", {})
    used = {pinned[unit_label(s, f)] for s, f in units if unit_label(s, f) in pinned}
    used |= {run_id(args.parent)} if args.parent else set()
    mine = {k: r for k, r in runs.items() if r["finetune_epochs"] == epochs and r["parent"] in used
            and r["method"] in methods and r["budget"] in budgets and r["seed"] in seeds}
    rows = summarise(mine, parents, args.baseline, args.ci)
    used_parents = {k: parents[k] for k in sorted(used) if k in parents}
    data["summary"] = rows
    data["summary_setup"] = {"split": split, "baseline": args.baseline, "ci": args.ci,
                             "budget_tolerance": BUDGET_TOLERANCE, "finetune_epochs": epochs,
                             "units": [unit_label(s, f) for s, f in units]}
    save_shared(out, data)
    if rows:
        accs = [p["accuracy"] for p in used_parents.values()]
        parent_iv = mean_ci(accs, method=args.ci)
        print(f"\n{args.model} on FSDD [{split}], {epochs} fine-tuning epochs; parents over "
              f"{len(accs)} units: {100 * parent_iv.mean:.1f}% "
              f"[{100 * parent_iv.low:.1f}, {100 * parent_iv.high:.1f}]")
        print_summary(rows)
        plot(rows, used_parents, png, f"{args.model}, FSDD [{split}]: test accuracy vs MACs at equal "
             f"budgets, fine-tuning {epochs} epochs (lr/10)\nsolid: audioprune criteria, dashed: "
             f"Torch-Pruning importances via its BasePruner; mean and 95% interval over "
             f"{len(units)} units")
        print(f"\nsaved {out} and {png}")
    return 0


def drop_for_redo(args: argparse.Namespace, data: dict[str, Any], out: Path,
                  units: list[tuple[int, int | None]], budgets: list[float], epochs: int) -> None:
    """Remove the saved results that --redo names (so run_all measures them again)."""
    pinned = data.get("seed_parents", {})
    parents = {pinned.get(unit_label(s, f)) for s, f in units}
    with _locked(out):
        disk = read_json(out) if out.is_file() else data
        gone = [k for k, r in disk["runs"].items() if r["method"] in args.redo
                and r["budget"] in budgets and r["finetune_epochs"] == epochs
                and r["parent"] in parents]
        for k in gone:
            disk["runs"].pop(k)
        benchlib.save(out, disk)
    data["runs"] = disk["runs"]
    print(f"--redo: dropped {len(gone)} saved result(s) of {', '.join(args.redo)}", flush=True)


def run_all(args: argparse.Namespace, methods: tuple[str, ...] | list[str], budgets: list[float],
            units: list[tuple[int, int | None]], epochs: int, data: dict[str, Any], out: Path,
            start: float) -> bool:
    """Every missing (unit, budget, method); True when --max-minutes stopped it early."""
    runs, parents = data["runs"], data["parents"]
    todo = len(units) * len(budgets) * len(methods)
    done = 0

    def out_of_time() -> bool:
        minutes = (time.perf_counter() - start) / 60
        if args.max_minutes is None or minutes <= args.max_minutes:
            return False
        print(f"--max-minutes {args.max_minutes:g} reached after {minutes:.1f} min (run the same "
              f"command again to continue)", flush=True)
        return True

    for seed, fold in units:
        if out_of_time():
            return True
        parent = parent_for(args, seed, data.setdefault("seed_parents", {}), fold)
        pid = run_id(parent)
        pending = [(b, m) for b in budgets for m in methods
                   if f"{pid}|{m}|{b}|s{seed}|ft{epochs}" not in runs]
        if not pending:
            done += len(budgets) * len(methods)
            continue
        model, _ = load_model(parent)
        spec = parent_data_spec(parent, data_root=str(args.data_root))
        spec = DataSpec(**{**spec.__dict__, "frontend": model.frontend_cfg.to_dict()})
        bundle = prepare_data(spec, seed, progress=False)
        parent_macs = count_macs(model)["model"]
        acc = accuracy(model, bundle, finetune_config(parent, progress=False))
        if pid not in parents:
            parents[pid] = {"accuracy": acc, "macs": parent_macs, "params": count_params(model),
                            "widths": model.layer_widths(), "unit": unit_label(seed, fold)}
        elif abs(parents[pid]["accuracy"] - acc) > 1e-9 or parents[pid]["macs"] != parent_macs:
            raise UserError(
                f"parent {pid} now has test accuracy {acc:.4f} and {parent_macs:,} MACs, but "
                f"{out} recorded {parents[pid]['accuracy']:.4f} and {parents[pid]['macs']:,}: "
                f"its finished results rest on another model (retrained differently?); write to "
                f"a new --out, or give the original run with --parent")
        for budget in budgets:
            for method in methods:
                key = f"{pid}|{method}|{budget}|s{seed}|ft{epochs}"
                done += 1
                if key in runs:
                    continue
                if out_of_time():
                    return True
                rec = run_config(parent, bundle, method, budget, seed, epochs, parent_macs,
                                 args.workdir / "scratch", args.device, fold)
                runs[key] = rec
                save_shared(out, data)
                print(f"[{done}/{todo}] {unit_label(seed, fold)} {budget:.0%} {method:<18} MACs "
                      f"{rec['macs_ratio']:.3f}{' MISSED' if rec['missed_budget'] else ''}  acc "
                      f"{100 * rec['accuracy_before']:.1f} -> {100 * rec['accuracy_after']:.1f}%  "
                      f"(prune {rec['prune_s']:.1f}s, fine-tune {rec['finetune_s']:.0f}s)",
                      flush=True)
    return False


if __name__ == "__main__":
    raise SystemExit(main())
