"""Prune a trained run: score -> remove filters -> fine-tune -> evaluate -> a new run directory.

``prune_run(parent, out, PruneSpec(...), train_cfg, data)`` is what ``audioprune prune`` and the
recipes call; the spec (audioprune.pruning.spec) arrives as its edge built it and is not rebuilt.
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
  distill          only when the spec distils (``--distill-from``): fine-tuning distilled from a
                   teacher (by default the parent); teacher, loss, T, alpha, cached/online

Data and training default to the parent's config.json: same dataset, data root, split options and
training settings, with the learning rate divided by 10 (fine-tuning starts from trained weights;
the parent's rate would undo much of them) and ``--finetune-epochs`` epochs (default 10). The
front end is always the parent model's own.

Schedules: one-shot (``iterative=1``) or K rounds of (prune, fine-tune), run by the library's one
schedule (pruning/schedule.py: the per-layer counts shrink the kept fraction geometrically and
end exactly at the one-shot plan); this layer only adds what happens after each round (evaluate,
save, fine-tune for the full ``finetune_epochs``, checkpoint). The model is traced once (and
again only after a resume reloads it); the plan is resolved once, on the parent.

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
from pathlib import Path
from typing import Any

import torch

from audioprune.distill.config import DistillConfig
from audioprune.errors import ArgumentError, UserError
from audioprune.fileio import read_json, read_tensors, write_json
from audioprune.measure.counting import count
from audioprune.models.base import AudioClassifier
from audioprune.models.resolution import coarsen
from audioprune.pruning.body import body_pruner
from audioprune.pruning.calibration import DEFAULT_BATCHES, calibration_batches
from audioprune.pruning.plan import Plan, ResolvedPlan
from audioprune.pruning.pruner import Pruner
from audioprune.pruning.schedule import (
    ScheduleState,
    prune_in_rounds,
    prune_round,
    schedule_counts,
)
from audioprune.pruning.spec import PruneSpec
from audioprune.pruning.split import split_budget
from audioprune.runs.data import DataSpec, prepare_data
from audioprune.runs.kd import Distiller
from audioprune.runs.logs import environment, run_log
from audioprune.runs.results import headline_block, source_run_block, test_metrics
from audioprune.runs.run_dir import (
    CONFIG_JSON,
    MODEL_WEIGHTS,
    fp32_run,
    load_model,
    read_run_json,
    save_model,
    write_metrics,
)
from audioprune.train.checkpoint import checkpoint_extra
from audioprune.train.fit import TrainConfig, evaluate, fit
from audioprune.train.metrics import headline

log = logging.getLogger("audioprune")

SEARCH_EPOCHS = 1  # the short fine-tune each resolution candidate gets before it is scored
PRUNED_WEIGHTS = "pruned.safetensors"  # a round's model right after pruning, before fine-tuning


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


def prune_run(parent: Path, out: Path, spec: PruneSpec, train: TrainConfig, data: DataSpec,
              resume: bool = False) -> dict[str, Any]:
    """Prune the model of run `parent` by `spec` into run directory `out`; return its
    metrics.json. When the spec distils, fine-tuning distils from its teacher ("parent" = the
    unpruned parent) and metrics.json gains a `distill` block (audioprune.runs.kd)."""
    parent, out = Path(parent), Path(out)
    if not isinstance(spec, PruneSpec):
        raise ArgumentError(f"`spec` must be a PruneSpec, got {type(spec).__name__}")
    if spec.plan is None:
        raise ArgumentError("the prune spec has no plan: give a ratio, ratios or a budget")
    distill = spec.distill
    if distill is not None and distill.teacher == "parent":
        distill = DistillConfig(**{**distill.to_dict(), "teacher": str(parent.resolve())})
    _check_out(out, resume)
    if parent.resolve() == out.resolve():
        raise ArgumentError("`out` must differ from the parent run")
    fp32_run(parent, "prune")  # an int8 run's model.safetensors are its parent's fp32 weights
    parent_model, info = load_model(parent, train.device)
    model, width_spec = parent_model, spec
    if spec.resolution is not None:  # coarser features first, then the widths to the budget
        width_spec = spec.with_plan(absolute_plan(spec.plan, parent_model))
        if isinstance(spec.resolution, tuple):
            model = coarsen(parent_model, *spec.resolution)
    pruner = plan = None
    chosen = width_spec
    if spec.resolution != "search":  # a search chooses the model first (it needs the data)
        # the one trace; a plan that needs no data (no active global ranking, no sensitivity
        # allocation) is resolved now, so its errors surface before anything is written
        pruner = body_pruner(model, width_spec)
        pruner.resolve_auto(calibration=True)  # `auto`: this layer always draws calibration batches
        chosen = pruner.spec
        needs_data = (chosen.needs_data and chosen.plan.global_ranking) or \
            chosen.plan.allocation == "sensitivity"
        plan = None if needs_data else pruner.plan()
    # the pruned model keeps its parent's sample rate, clip length and standardisation
    data = DataSpec(**{**data.__dict__, "frontend": model.frontend_cfg.to_dict()})
    # the spec as resolved (`auto`'s choice in place, and why): a resume prunes the same way
    resolved = {**spec.with_plan(chosen.plan).resolved(chosen.criterion).to_dict(),
                **({"auto": pruner.auto.to_dict()} if pruner and pruner.auto else {})}
    config = {"command": "prune", "parent": str(parent.resolve()), "prune": resolved,
              "model": info["arch"], "data": data.__dict__, "train": train.to_dict(),
              "environment": environment()}
    if distill is not None:
        config["distill"] = distill.to_dict()
    out.mkdir(parents=True, exist_ok=True)
    if not resume:
        write_json(out / CONFIG_JSON, config)
    with run_log(out):
        return _Pruning(parent, out, parent_model, model, info, spec, width_spec, pruner, plan,
                        train, data, distill).run(resume)


def absolute_plan(plan: Plan, parent: AudioClassifier) -> Plan:
    """`plan` with its MAC and parameter budgets as counts: a fraction means the parent at its
    own resolution, which a coarsened model no longer is."""
    fractions = {k: getattr(plan, k) for k in ("target_macs", "target_params")
                 if isinstance(getattr(plan, k), float)}
    if not fractions:
        return plan
    base = count(parent, parent.example_features(), "classify")
    own = {"target_macs": base.macs, "target_params": base.params}
    return plan.replace(**{k: int(round(v * own[k])) for k, v in fractions.items()})


class _Pruning:
    """One prune run's state while it runs: data, calibration, the schedule's rounds."""

    def __init__(self, parent: Path, out: Path, parent_model: AudioClassifier,
                 model: AudioClassifier, info: dict[str, Any], spec: PruneSpec,
                 width_spec: PruneSpec, pruner: Pruner | None, plan: ResolvedPlan | None,
                 train: TrainConfig, data: DataSpec, distill: DistillConfig | None) -> None:
        self.parent, self.out, self.info = parent, out, info
        self.parent_model, self.model = parent_model, model  # the same unless coarsened
        self.spec, self.width_spec = spec, width_spec  # as asked; with budgets as counts
        self.pruner, self.plan, self.train, self.data, self.distill = pruner, plan, train, data, distill
        self.extra = {"dataset": data.dataset, "parent": str(parent.resolve())}
        self.after_prune: dict[str, Any] = {}
        self.records: dict[int, dict[str, Any]] = {}

    def run(self, resume: bool) -> dict[str, Any]:
        train, data, model = self.train, self.data, self.model
        bundle = self.bundle = prepare_data(data, train.seed, progress=train.progress)
        log.info("%s", bundle.index.describe())
        if bundle.index.num_classes != model.num_classes:
            raise UserError(f"{self.parent} predicts {model.num_classes} classes but "
                            f"{data.dataset} has {bundle.index.num_classes}")
        # before seeding: building the teacher draws (then replaces) initial weights
        self.kd = Distiller(self.distill, data, bundle, train) if self.distill is not None else None
        torch.manual_seed(train.seed)
        self.parent_metrics = source_run_block(self.parent, self.parent_model, bundle, train,
                                               "prune")
        widths_before = model.layer_widths()
        self.resolution: dict[str, Any] | None = None
        if self.width_spec.resolution is not None:
            self._resolution()  # chooses (search) and records the model's front end
        assert self.pruner is not None
        spec = self.pruner.spec  # `auto` resolved
        batches = None
        if spec.needs_data or spec.plan.allocation == "sensitivity":
            n = int(spec.options.get("batches", DEFAULT_BATCHES))
            batches = calibration_batches(bundle.train, n, train.batch_size, train.seed)
            self.pruner.calibrate_with(batches)
        plan = self.plan = self.plan or self.pruner.plan()
        log.info("pruning plan (%s%s): %s", plan.mode, f", level {plan.level}" if plan.level else "",
                 ", ".join(f"{n} {c}/{plan.n_units[n]}" for n, c in plan.counts.items()))
        layers0 = self.pruner.layers()
        units = {n: layers0[n].unit for n in plan.counts}
        rounds = spec.iterative
        criterion = self.pruner.record()
        if spec.progressive:
            state, summary = self._progressive(plan, resume)
            return self._finish(state, units, widths_before, criterion, summary)
        state = self._resume(rounds) if resume else None
        pruner = self.pruner
        if state is not None:  # the model was reloaded from a round: trace it again
            pruner = body_pruner(self.model, spec, batches)
        state = prune_in_rounds(pruner, plan, rounds, after_round=self._after_round, state=state,
                                shape=spec.prune_schedule)
        summary = self.records[rounds]["finetune"] if rounds in self.records else None
        return self._finish(state, units, widths_before, criterion, summary)

    # -- resolution: coarser features, searched or given

    def _resolution(self) -> None:
        """Coarsen the parent's front end as the spec says: the given (time, freq), or the grid
        point that scores best on the validation split after a short fine-tune
        (audioprune.pruning.split); the search's record is kept in search.json (a resume
        reads it instead of searching again)."""
        spec, parent = self.width_spec, self.parent_model
        search = None
        if spec.resolution == "search":
            path = self.out / "search.json"
            if path.is_file():
                search = read_json(path)
            else:
                search = self._search().to_dict()
                write_json(path, search)
            t, f = search["chosen"]["time"], search["chosen"]["freq"]
            self.model = coarsen(parent, t, f)
            self.pruner = body_pruner(self.model, spec)
            self.pruner.resolve_auto(calibration=True)
        else:
            t, f = spec.resolution  # type: ignore[misc]
        self.resolution = {"time": t, "freq": f,
                           "frontend_before": parent.frontend_cfg.to_dict(),
                           "frontend_after": self.model.frontend_cfg.to_dict(),
                           **({"search": search} if search else {})}
        log.info("resolution: hop %d -> %d, mel bins %d -> %d%s", parent.frontend_cfg.hop_length,
                 self.model.frontend_cfg.hop_length, parent.frontend_cfg.n_mels,
                 self.model.frontend_cfg.n_mels, " (searched)" if search else "")

    def _search(self) -> Any:
        """split_budget over the default grid: each candidate pruned by the spec's criterion to
        the budget and fine-tuned SEARCH_EPOCHS epoch(s) (KD too when the spec distils), scored
        by the validation split's headline metric."""
        import copy
        import tempfile

        spec, parent, train = self.width_spec, self.parent_model, self.train
        target = spec.plan.target_macs
        if not isinstance(target, int):
            raise ArgumentError("`resolution` search needs a MAC budget (`target_macs`)")
        short = TrainConfig(**{**train.to_dict(), "epochs": SEARCH_EPOCHS})
        batches = (calibration_batches(self.bundle.train,
                                       int(spec.options.get("batches", DEFAULT_BATCHES)),
                                       train.batch_size, train.seed)
                   if spec.needs_data or spec.is_auto else None)

        def build(t: float, f: float) -> tuple[AudioClassifier, Any]:
            m = coarsen(parent, t, f)
            return m, m.example_features()

        def prune(m: AudioClassifier, _x: Any, macs: int) -> None:
            pruner = body_pruner(m, spec.with_plan(spec.plan.replace(target_macs=macs)), batches)
            pruner.resolve_auto(calibration=True)
            prune_in_rounds(pruner, pruner.plan(), 1)

        def score(m: AudioClassifier) -> float:
            with tempfile.TemporaryDirectory(dir=self.out) as tmp:
                trial = copy.deepcopy(m)
                (self.kd.fit if self.kd is not None else fit)(
                    trial, self.bundle.train, self.bundle.val, short, Path(tmp))
                return headline(evaluate(trial, self.bundle.val, short))[1]

        result = split_budget(build, target, prune, score, forward_fn="classify")
        log.info("resolution search (%d candidates, %.0f s): time x%g, freq x%g scored best",
                 len(result.candidates), result.seconds, result.time, result.freq)
        return result

    # -- progressive: the rounds inside one fine-tuning run

    def _progressive(self, plan: ResolvedPlan, resume: bool
                     ) -> tuple[ScheduleState, dict[str, Any] | None]:
        """Prune at the start of each of the first `iterative` epochs of ONE fine-tuning run
        (the pruned fraction rising by the spec's schedule), fine-tune on; only epochs after
        the last pruning step can be the best. A resume rebuilds the shape the checkpoint had
        from its schedule state (the removals replayed on the parent), then continues."""
        spec, train, rdir = self.pruner.spec, self.train, self._rdir(1)
        steps = schedule_counts(plan.counts, plan.n_units, spec.iterative, spec.prune_schedule)
        if train.epochs < spec.iterative:
            raise ArgumentError(f"`progressive` prunes in {spec.iterative} steps, one per epoch: "
                                f"fine-tune for at least {spec.iterative} epochs, not {train.epochs}")
        state = ScheduleState.start(plan)
        saved = checkpoint_extra(rdir) if resume else None
        if saved is not None:  # the checkpoint's shape, rebuilt before fit loads it
            state = ScheduleState.from_dict(saved["schedule"])
            for removal in state.rounds:
                self.pruner.replay(removal)
            self.after_prune = saved.get("after_prune", {})
            log.info("progressive pruning: %d of %d steps were done", state.done, spec.iterative)

        def before_epoch(epoch: int) -> bool:
            if epoch >= spec.iterative or epoch < state.done:
                return False
            prune_round(self.pruner, state, steps[epoch])
            removed = state.original_rounds[-1]
            log.info("progressive step %d/%d (epoch %d): pruned %s", epoch + 1, spec.iterative,
                     epoch + 1, ", ".join(f"{n} -{len(v)}" for n, v in removed.items() if v)
                     or "nothing")
            if state.done == spec.iterative:  # the final shape: what fine-tuning starts from
                self.after_prune = headline_block(test_metrics(self.model, self.bundle, train))
            return True

        hooks = {"before_epoch": before_epoch, "best_from": spec.iterative - 1,
                 "extra_state": lambda: {"schedule": state.to_dict(),
                                         "after_prune": self.after_prune}}
        has_ckpt = resume and saved is not None
        summary = (self.kd.fit if self.kd is not None else fit)(
            self.model, self.bundle.train, self.bundle.val, train, rdir, resume=has_ckpt, **hooks)
        self.model.load_state_dict(read_tensors(rdir / MODEL_WEIGHTS), strict=False)
        record = {"round": 1, "removed": state.removed(plan), "widths": self.model.layer_widths(),
                  "index_map": {n: list(v) for n, v in state.kept.items()},
                  "after_prune": self.after_prune, "state": state.to_dict(), "finetune": summary,
                  "progressive_steps": state.original_rounds}
        save_model(rdir, self.model, self.info["class_names"], self.info["task"], self.extra)
        write_json(rdir / "round.json", record)
        self.records[1] = record
        return state, summary

    # -- rounds

    def _rdir(self, k: int) -> Path:
        return self.out / "rounds" / f"round{k}"

    def _after_round(self, k: int, removed: dict[str, list[int]],
                     state: ScheduleState) -> Pruner | None:
        """Round k was just pruned: evaluate, save the pruned model, fine-tune, save."""
        model, train, rdir = self.model, self.train, self._rdir(k)
        self.after_prune = headline_block(test_metrics(model, self.bundle, train))
        name, value = ("mAP", self.after_prune["mAP"]) if "mAP" in self.after_prune else \
            ("accuracy", self.after_prune.get("accuracy"))
        log.info("round %d/%d: pruned %s; test %s %.4f, params %s, MACs %s", k,
                 self.pruner.spec.iterative,
                 ", ".join(f"{n} -{len(v)}" for n, v in removed.items()) or "nothing", name,
                 value, f"{self.after_prune['params']:,}", f"{self.after_prune['macs']:,}")
        record = {"round": k, "removed": removed, "widths": model.layer_widths(),
                  "index_map": {n: list(v) for n, v in state.kept.items()},
                  "after_prune": self.after_prune, "state": state.to_dict()}
        save_model(rdir, model, self.info["class_names"], self.info["task"], self.extra,
                   weights_name=PRUNED_WEIGHTS)
        write_json(rdir / "prune.json", record)
        self._finetune(k, record, resume=False)
        return None

    def _finetune(self, k: int, record: dict[str, Any], resume: bool) -> None:
        model, train, rdir = self.model, self.train, self._rdir(k)
        summary = None
        if train.epochs > 0:
            has_ckpt = (rdir / "checkpoint" / "last.json").is_file()
            summary = (self.kd.fit if self.kd is not None else fit)(
                model, self.bundle.train, self.bundle.val, train, rdir, resume=resume and has_ckpt)
            model.load_state_dict(read_tensors(rdir / MODEL_WEIGHTS), strict=False)
        save_model(rdir, model, self.info["class_names"], self.info["task"], self.extra)
        record["finetune"] = summary
        write_json(rdir / "round.json", record)
        self.records[k] = record

    def _resume(self, rounds: int) -> ScheduleState | None:
        """The schedule as the interrupted run left it: finished rounds read back, the model of
        the last one loaded, an interrupted fine-tune continued. None: nothing was done."""
        state = None
        for k in range(1, rounds + 1):
            rdir = self._rdir(k)
            if (rdir / "round.json").is_file():
                record = read_json(rdir / "round.json")
                self.model, _ = load_model(rdir, self.train.device)
                self.records[k] = record
                self.after_prune = record["after_prune"]
                state = self._state_of(record, k)
                log.info("round %d/%d already done", k, rounds)
                continue
            if (rdir / "prune.json").is_file() and (rdir / PRUNED_WEIGHTS).is_file():
                self.model, _ = load_model(rdir, self.train.device, weights_name=PRUNED_WEIGHTS)
                record = read_json(rdir / "prune.json")
                self.after_prune = record["after_prune"]
                log.info("round %d/%d: pruned model found, continuing its fine-tune", k, rounds)
                self._finetune(k, record, resume=True)
                state = self._state_of(record, k)
            break
        return state

    def _state_of(self, record: dict[str, Any], k: int) -> ScheduleState:
        if "state" in record:
            return ScheduleState.from_dict(record["state"])
        assert self.plan is not None  # a record of an older version: rebuilt from its index map
        cumulative = schedule_counts(self.plan.counts, self.plan.n_units,
                                     self.pruner.spec.iterative)[k - 1]
        return ScheduleState({n: list(v) for n, v in record["index_map"].items()}, k,
                             dict(cumulative), [])

    # -- the record

    def _finish(self, state: ScheduleState, units: dict[str, int], widths_before: dict[str, int],
                criterion: dict[str, Any], summary: dict[str, Any] | None) -> dict[str, Any]:
        out, train, plan, bundle = self.out, self.train, self.plan, self.bundle
        assert plan is not None
        spec = self.pruner.spec
        rounds = [self.records[k] for k in sorted(self.records)]
        save_model(out, self.model, self.info["class_names"], self.info["task"], self.extra)
        final, _ = load_model(out, train.device)
        metrics = test_metrics(final, bundle, train)
        head = "mAP" if "mAP" in metrics else "accuracy"
        parent_metrics = self.parent_metrics
        kept = state.kept
        metrics.update({
            "parent": parent_metrics,
            "before_finetune": self.after_prune,
            "pruning": {
                **criterion,
                "plan": {"requested": self.spec.plan.to_dict(), "resolved": plan.to_dict(),
                         **({"widths_to": spec.plan.to_dict()}
                            if spec.plan != self.spec.plan else {})},
                "schedule": {"rounds": spec.iterative, "finetune_epochs_per_round": train.epochs,
                             "counts": schedule_counts(plan.counts, plan.n_units, spec.iterative,
                                                       spec.prune_schedule),
                             **({"shape": spec.prune_schedule} if spec.prune_schedule != "geometric" else {}),
                             **({"progressive": True, "finetune_epochs_per_round": None,
                                 "finetune_epochs": train.epochs} if spec.progressive else {})},
                "units": units,
                "widths_before": widths_before,
                "widths_after": final.layer_widths(),
                "layers": {n: {"filters_before": plan.n_units[n], "unit": units[n],
                               "filters_after": len(kept[n]),
                               "removed": sorted(set(range(plan.n_units[n])) - set(kept[n])),
                               "kept": kept[n]} for n in plan.counts},
                "rounds": [{"round": r["round"], "removed": r["removed"],
                            "after_prune": r["after_prune"]} for r in rounds],
                **({"resolution": self.resolution} if self.resolution else {}),
            },
            "reduction": {
                "params": 1 - metrics["params"] / parent_metrics["params"],
                "macs": 1 - metrics["macs"] / parent_metrics["macs"],
                f"{head}_change": (metrics[head] - parent_metrics[head]
                                   if head in parent_metrics else None),
            },
            "train_seconds": round(sum((r["finetune"] or {}).get("train_seconds", 0.0)
                                       for r in rounds), 2),
            "epochs_run": summary["epoch"] if summary else 0,
            "best_epoch": summary["best_epoch"] + 1 if summary else 0,
            "val": summary["best_val"] if summary else None,
            "history": summary["history"] if summary else [],
            "environment": environment(),
            "data_options": self.data.options,
        })
        if self.kd is not None:
            metrics["distill"] = self.kd.describe(metrics["train_seconds"])
        write_metrics(out, metrics)
        for r in range(1, (1 if spec.progressive else spec.iterative) + 1):  # complete:
            shutil.rmtree(self._rdir(r) / "checkpoint", ignore_errors=True)  # not needed any more
        return metrics


def resume_prune(out: Path, **overrides: Any) -> dict[str, Any]:
    """Continue an interrupted `prune_run` in `out` with its saved settings."""
    out = Path(out)
    _check_out(out, resume=True)
    saved = read_json(out / CONFIG_JSON)
    train = TrainConfig(**{**saved["train"], **{k: v for k, v in overrides.items() if v is not None}})
    spec = PruneSpec.from_dict(saved["prune"], saved.get("distill"))
    return prune_run(Path(saved["parent"]), out, spec, train, DataSpec(**saved["data"]),
                     resume=True)


__all__ = ["PRUNED_WEIGHTS", "absolute_plan", "prune_run", "resume_prune"]
