"""Prune a trained run: score -> remove filters -> fine-tune -> evaluate -> a new run directory.

``prune_run(parent, out, PruneConfig(...), train_cfg, data)`` is what ``audioprune prune`` calls.
The new run directory is a normal run (model.safetensors + model.json with the pruned widths,
loadable with ``load_model``; metrics.json with the same top-level keys as a trained run, for the
final pruned and fine-tuned model) plus, in metrics.json:

  parent           the unpruned model: run path, params, macs, size_bytes, accuracy|mAP on the
                   same test split (read from its metrics.json when that describes the same
                   dataset, split and number of test clips, else evaluated here)
  before_finetune  accuracy|mAP, params, macs, size_bytes right after the (last) pruning step
  pruning          criterion, options, plan (as asked and as resolved), schedule, per-layer
                   widths before/after and the removed filter indices (numbered as in the parent)
  reduction        1 - pruned/parent for params and macs, and accuracy_change | mAP_change
                   (pruned minus parent; negative = a drop)
  distill          only with ``--distill-from``: fine-tuning distilled from a teacher (by default
                   the parent); teacher, loss, T, alpha, cached/online (audioprune.distill)

Data and training default to the parent's config.json: same dataset, data root, split options and
training settings, with the learning rate divided by 10 (fine-tuning starts from trained weights;
the parent's rate would undo much of them) and ``--finetune-epochs`` epochs (default 10). The
front end is always the parent model's own.

Schedules: one-shot (``iterative=1``) or K rounds of (prune, fine-tune) whose per-layer counts
shrink the kept fraction geometrically and end exactly at the one-shot plan (plan.schedule_counts);
each round re-scores the filters of the fine-tuned model, and fine-tunes for the full
``finetune_epochs``. The plan itself (which layers, how many filters; global allocation; budget
search) is resolved once on the parent.

Active criteria (hrank, activation, taylor) see data: before every pruning step the model runs
``batches`` calibration batches (criterion option, default 8) of the training set, drawn by a
seeded permutation, and the criterion scores the recorded feature maps or gradients.

Resumable: each round lives in ``rounds/round<k>/`` (the pruned model as pruned.safetensors +
model.json, fine-tuning checkpoints, round.json when done); ``resume_prune(out)`` skips finished
rounds, continues the interrupted fine-tune from its last epoch, and redoes nothing else.
Checkpoints are deleted when the run completes.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from audioprune.distill.config import DistillConfig
from audioprune.errors import ArgumentError, UserError
from audioprune.fileio import read_json, read_tensors, write_json
from audioprune.model_inputs import call_model
from audioprune.models.base import AudioClassifier
from audioprune.pruning.auto import AUTO, check_no_options, choose_criterion
from audioprune.pruning.calibration import DEFAULT_BATCHES, Batch, calibration_batches
from audioprune.pruning.criteria import describe_criterion
from audioprune.pruning.importance import ActiveImportance, CriterionImportance, make_importance
from audioprune.pruning.plan import PlanSpec, ResolvedPlan, schedule_counts
from audioprune.pruning.pruner import Pruner
from audioprune.runs.data import DataSpec, prepare_data
from audioprune.runs.kd import Distiller
from audioprune.runs.logs import environment, run_log
from audioprune.runs.results import headline_block, source_run_block, test_metrics
from audioprune.runs.run_dir import (
    CONFIG_JSON,
    MODEL_WEIGHTS,
    load_model,
    read_run_json,
    save_model,
    write_metrics,
)
from audioprune.train.fit import TrainConfig, fit

log = logging.getLogger("audioprune")

PRUNED_WEIGHTS = "pruned.safetensors"  # a round's model right after pruning, before fine-tuning


@dataclass
class PruneConfig:
    """How to prune: the criterion and its options, the plan, the schedule, quaternion handling."""

    criterion: str
    plan: PlanSpec
    criterion_options: dict[str, Any] = field(default_factory=dict)
    iterative: int = 1
    aggregate: str = "mean"
    quaternion_mode: str = "aggregate"
    scope: str | None = None  # None: the criterion's default (root; taylor: group)
    group_reduction: str = "mean"
    auto: dict[str, Any] | None = None  # criterion "auto": what it chose and why (pruning.auto)

    @property
    def active(self) -> bool:
        """True for criteria that need calibration data (hrank, activation, taylor)."""
        try:
            return describe_criterion(self.criterion).inputs != "weights"
        except ValueError as exc:
            raise ArgumentError(f"`criterion`: {exc}") from None

    def importance(self) -> CriterionImportance | ActiveImportance:
        return make_importance(self.criterion, self.criterion_options, aggregate=self.aggregate,
                               quaternion_mode=self.quaternion_mode, scope=self.scope,
                               group_reduction=self.group_reduction)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["plan"] = self.plan.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> PruneConfig:
        d = dict(d)
        d["plan"] = PlanSpec.from_dict(d["plan"])
        return cls(**d)


def model_pruner(model: AudioClassifier, cfg: PruneConfig,
                 batches: list[Batch] | None = None) -> Pruner:
    """A Pruner for an audio model of this package: its body (``classify``) is traced on
    features of its clip length, so the front end is neither traced nor counted; calibration
    batches are (waveforms, targets) run through the whole model."""
    if cfg.iterative < 1:
        raise ArgumentError(f"`iterative` needs at least 1 round, got {cfg.iterative}")
    cfg.importance()  # a bad criterion or option fails here, before any data is read
    return Pruner(model, model.example_features(), cfg.criterion, forward_fn="classify",
                  quaternion="aggregate" if cfg.quaternion_mode == "aggregate" else "concat",
                  aggregate=cfg.aggregate, scope=cfg.scope, group_reduction=cfg.group_reduction,
                  criterion_options=cfg.criterion_options, calibration_data=batches,
                  calibration_forward=call_model)


def plan_pruning(model: AudioClassifier, cfg: PruneConfig,
                 batches: list[Batch] | None = None) -> tuple[Pruner, ResolvedPlan]:
    """Resolve `cfg.plan` on `model` (counts per layer). An active criterion with global
    ranking needs its scores, hence `batches`, to plan."""
    pruner = model_pruner(model, cfg, batches)
    return pruner, pruner.plan(cfg.plan)


def prune_model(model: AudioClassifier, cfg: PruneConfig,
                batches: list[Batch] | None = None) -> dict[str, Any]:
    """One-shot pruning in place: returns {"plan": ..., "removed": {layer: indices}}. Passive
    criteria need no data; active ones take (waveforms, targets) calibration `batches`."""
    _, plan = plan_pruning(model, cfg, batches)
    removed = model_pruner(model, cfg, batches).step(plan.counts)
    return {"plan": plan.to_dict(), "removed": removed}


def _check_out(out: Path, resume: bool) -> None:
    if resume:
        if not (out / CONFIG_JSON).is_file():
            raise ArgumentError(f"`resume` {out}: no {CONFIG_JSON} there; is it a prune run?")
        cfg = read_run_json(out / CONFIG_JSON)
        if cfg.get("command") != "prune":
            raise ArgumentError(f"`resume` {out}: it is a {cfg.get('command')!r} run, not a "
                                f"prune run")
    elif (out / CONFIG_JSON).exists():
        raise ArgumentError(f"{out} already holds a run; choose another `out`, or continue it "
                            f"with `resume` {out}")


def prune_run(parent: Path, out: Path, cfg: PruneConfig, train: TrainConfig, data: DataSpec,
              resume: bool = False, distill: DistillConfig | None = None) -> dict[str, Any]:
    """Prune the model of run `parent` into run directory `out`; return its metrics.json.
    With `distill`, fine-tuning distils from its teacher ("parent" = the unpruned parent) and
    metrics.json gains a `distill` block (audioprune.runs.kd)."""
    parent, out = Path(parent), Path(out)
    if distill is not None and distill.teacher == "parent":
        distill = DistillConfig(**{**distill.to_dict(), "teacher": str(parent.resolve())})
    if distill is not None:
        distill.validate()
    _check_out(out, resume)
    if parent.resolve() == out.resolve():
        raise ArgumentError("`out` must differ from the parent run")
    model, info = load_model(parent, train.device)
    if cfg.criterion == AUTO:  # the calibration batches taylor needs are drawn below
        check_no_options(cfg.criterion_options)
        choice = choose_criterion(model, model.example_features(), cfg.plan, calibration=True,
                                  forward_fn="classify")
        cfg = replace(cfg, criterion=choice.criterion, auto=choice.to_dict())
    # errors in the plan surface before anything is written; an active criterion ranking
    # globally, and a sensitivity allocation, need data to plan, so they plan once it is loaded
    needs_data = (cfg.active and cfg.plan.global_ranking) or cfg.plan.allocation == "sensitivity"
    planned = None if needs_data else plan_pruning(model, cfg)
    # the pruned model always keeps its parent's front end (sample rate, clip, standardisation)
    data = DataSpec(**{**data.__dict__, "frontend": model.frontend_cfg.to_dict()})
    config = {"command": "prune", "parent": str(parent.resolve()), "prune": cfg.to_dict(),
              "model": info["arch"], "data": data.__dict__, "train": train.to_dict(),
              "environment": environment()}
    if distill is not None:
        config["distill"] = distill.to_dict()
    out.mkdir(parents=True, exist_ok=True)
    if not resume:
        write_json(out / CONFIG_JSON, config)
    with run_log(out):
        return _prune(parent, out, model, info, cfg, planned, train, data, resume, distill=distill)


def _prune(parent: Path, out: Path, model: AudioClassifier, info: dict[str, Any],
           cfg: PruneConfig, planned: tuple[Pruner, ResolvedPlan] | None, train: TrainConfig,
           data: DataSpec, resume: bool, distill: DistillConfig | None = None) -> dict[str, Any]:
    bundle = prepare_data(data, train.seed, progress=train.progress)
    log.info("%s", bundle.index.describe())
    if bundle.index.num_classes != model.num_classes:
        raise UserError(f"{parent} predicts {model.num_classes} classes but {data.dataset} has "
                        f"{bundle.index.num_classes}")
    class_names, task = info["class_names"], info["task"]
    extra = {"dataset": data.dataset, "parent": str(parent.resolve())}
    # before seeding: building the teacher draws (then replaces) initial weights
    kd = Distiller(distill, data, bundle, train) if distill is not None else None
    torch.manual_seed(train.seed)

    parent_metrics = source_run_block(parent, model, bundle, train, "prune")
    widths_before = model.layer_widths()
    importance = cfg.importance()
    n_batches = getattr(importance, "batches", DEFAULT_BATCHES)  # sensitivity: the default 8
    batches = (calibration_batches(bundle.train, n_batches, train.batch_size, train.seed)
               if isinstance(importance, ActiveImportance) or cfg.plan.allocation == "sensitivity"
               else None)
    pruner, plan = planned or plan_pruning(model, cfg, batches)
    log.info("pruning plan (%s%s): %s", plan.mode, f", level {plan.level}" if plan.level else "",
             ", ".join(f"{n} {c}/{plan.n_units[n]}" for n, c in plan.counts.items()))
    layers0 = pruner.layers()
    units = {n: layers0[n].unit for n in plan.counts}
    schedule = schedule_counts(plan.counts, plan.n_units, cfg.iterative)

    index_map = {n: list(range(k)) for n, k in plan.n_units.items()}  # current -> parent index
    prev = {n: 0 for n in plan.counts}
    rounds: list[dict[str, Any]] = []
    after_prune: dict[str, Any] = {}
    summary: dict[str, Any] | None = None
    for k, cumulative in enumerate(schedule, start=1):
        rdir = out / "rounds" / f"round{k}"
        done = rdir / "round.json"
        if resume and done.is_file():
            record = read_json(done)
            model, _ = load_model(rdir, train.device)
            index_map, after_prune, summary = record["index_map"], record["after_prune"], record["finetune"]
            rounds.append(record)
            prev = cumulative
            log.info("round %d/%d already done", k, len(schedule))
            continue
        if resume and (rdir / "prune.json").is_file() and (rdir / PRUNED_WEIGHTS).is_file():
            model, _ = load_model(rdir, train.device, weights_name=PRUNED_WEIGHTS)
            record = read_json(rdir / "prune.json")
            index_map, after_prune = record["index_map"], record["after_prune"]
            log.info("round %d/%d: pruned model found, continuing its fine-tune", k, len(schedule))
        else:
            step = {n: cumulative[n] - prev[n] for n in cumulative}
            removed_now = model_pruner(model, cfg, batches).step(step)
            removed = {}
            for name, idxs in removed_now.items():
                removed[name] = [index_map[name][i] for i in idxs]
                gone = set(idxs)
                index_map[name] = [p for i, p in enumerate(index_map[name]) if i not in gone]
            after_prune = headline_block(test_metrics(model, bundle, train))
            name, value = ("mAP", after_prune["mAP"]) if "mAP" in after_prune else \
                ("accuracy", after_prune.get("accuracy"))
            log.info("round %d/%d: pruned %s; test %s %.4f, params %s, MACs %s", k, len(schedule),
                     ", ".join(f"{n} -{len(v)}" for n, v in removed.items()) or "nothing", name,
                     value, f"{after_prune['params']:,}", f"{after_prune['macs']:,}")
            record = {"round": k, "removed": removed, "widths": model.layer_widths(),
                      "index_map": index_map, "after_prune": after_prune}
            save_model(rdir, model, class_names, task, extra, weights_name=PRUNED_WEIGHTS)
            write_json(rdir / "prune.json", record)
        summary = None
        if train.epochs > 0:
            has_ckpt = (rdir / "checkpoint" / "last.json").is_file()
            summary = (kd.fit if kd is not None else fit)(model, bundle.train, bundle.val, train,
                                                          rdir, resume=resume and has_ckpt)
            model.load_state_dict(read_tensors(rdir / MODEL_WEIGHTS), strict=False)
        save_model(rdir, model, class_names, task, extra)
        record["finetune"] = summary
        write_json(done, record)
        rounds.append(record)
        prev = cumulative

    save_model(out, model, class_names, task, extra)
    final, _ = load_model(out, train.device)
    metrics = test_metrics(final, bundle, train)
    head = "mAP" if "mAP" in metrics else "accuracy"
    metrics.update({
        "parent": parent_metrics,
        "before_finetune": after_prune,
        "pruning": {
            **importance.describe(),
            **({"auto": cfg.auto} if cfg.auto else {}),
            "plan": {"requested": cfg.plan.to_dict(), "resolved": plan.to_dict()},
            "schedule": {"rounds": cfg.iterative, "finetune_epochs_per_round": train.epochs,
                         "counts": schedule},
            "units": units,
            "widths_before": widths_before,
            "widths_after": final.layer_widths(),
            "layers": {n: {"filters_before": plan.n_units[n], "unit": units[n],
                           "filters_after": len(index_map[n]),
                           "removed": sorted(set(range(plan.n_units[n])) - set(index_map[n])),
                           "kept": index_map[n]} for n in plan.counts},
            "rounds": [{"round": r["round"], "removed": r["removed"], "after_prune": r["after_prune"]}
                       for r in rounds],
        },
        "reduction": {
            "params": 1 - metrics["params"] / parent_metrics["params"],
            "macs": 1 - metrics["macs"] / parent_metrics["macs"],
            f"{head}_change": (metrics[head] - parent_metrics[head]
                               if head in parent_metrics else None),
        },
        "train_seconds": round(sum((r["finetune"] or {}).get("train_seconds", 0.0) for r in rounds), 2),
        "epochs_run": summary["epoch"] if summary else 0,
        "best_epoch": summary["best_epoch"] + 1 if summary else 0,
        "val": summary["best_val"] if summary else None,
        "history": summary["history"] if summary else [],
        "environment": environment(),
        "data_options": data.options,
    })
    if kd is not None:
        metrics["distill"] = kd.describe(metrics["train_seconds"])
    write_metrics(out, metrics)
    for r in range(1, len(schedule) + 1):  # the run is complete: checkpoints are no longer needed
        shutil.rmtree(out / "rounds" / f"round{r}" / "checkpoint", ignore_errors=True)
    return metrics


def resume_prune(out: Path, **overrides: Any) -> dict[str, Any]:
    """Continue an interrupted `prune_run` in `out` with its saved settings."""
    out = Path(out)
    _check_out(out, resume=True)
    saved = read_json(out / CONFIG_JSON)
    train = TrainConfig(**{**saved["train"], **{k: v for k, v in overrides.items() if v is not None}})
    distill = DistillConfig.from_dict(saved["distill"]) if saved.get("distill") else None
    return prune_run(Path(saved["parent"]), out, PruneConfig.from_dict(saved["prune"]), train,
                     DataSpec(**saved["data"]), resume=True, distill=distill)
