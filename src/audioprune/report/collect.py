"""From run directories to report rows: what each run is (unpruned parent, pruned child, KD
student: its `distill.teacher` block plays the parent), its headline metric, its costs and, when profiled, its latency.

Only files are read (metrics.json, model.json, config.json, profile.json); no model is built, so
a report over hundreds of runs is instant.

Compute. `compute_s` is the wall time that produced the model itself, from its metrics.json: a
trained run's `train_seconds`; a pruned run's fine-tuning (`train_seconds`, the parent's training
not included); a KD student's (or KD fine-tune's) `distill.total_seconds` (training plus teacher
logits). `total_compute_s` adds the compute of every run it was derived from (parent, teacher, and
theirs), each counted once: the fair cost to compare pruning with KD, since both need the trained
teacher. It is None when any of those runs' compute is unknown (a run without timings, a parent
directory that is gone and whose block, written before blocks carried `train_seconds`, does not
say): a partial sum would understate it. A pruned run's parent is found from the `parent` block
prune writes into metrics.json; when the parent directory is gone, the numbers that block holds
(measured on the same test split) stand in for it.
"""

from __future__ import annotations

import glob
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audioprune.distill.losses import RECIPES
from audioprune.errors import UserError
from audioprune.fileio import read_json

METRICS = "metrics.json"
PROFILE = "profile.json"


@dataclass
class Row:
    """One line of the report; `parent` is the key (resolved path) of the row it is compared to."""

    key: str
    name: str
    model: str
    dataset: str
    split: str
    metric: str  # "accuracy" | "mAP"
    value: float | None
    params: int
    macs: int
    size_bytes: int
    kind: str = "unpruned"  # unpruned | pruned | distilled | quantized
    criterion: str = ""
    plan: str = ""
    level: float | None = None  # fraction pruned (uniform ratio or budget level), for sorting
    parent: str | None = None
    parent_value: float | None = None  # the parent's metric on this run's test split
    parent_params: int | None = None
    parent_macs: int | None = None
    latency_ms: dict[str, float] = field(default_factory=dict)  # "eager b1" -> median ms
    threads: int | None = None
    compute_s: float | None = None  # wall time that produced this model (see the module doc)
    total_compute_s: float | None = None  # ... plus every run upstream (parent, teacher), once each
    upstream: list[str] = field(default_factory=list)  # keys of the runs it was made from
    seed: int | None = None  # the training / fine-tuning seed (config.json)
    model_label: str = ""  # architecture with its options and training epochs: "cnn6(width=0.25) e20"
    plan_key: str = ""  # the plan with the fine-tuning that followed: "50% of C1,C2 ft10"
    method: str = ""  # everything that defines the run but its fold and seed (report.aggregate)
    precision: str = "fp32"  # int8 for a quantized run (its model.int8.onnx)
    deployed_params: int | None = None  # parameters as deployed (int8: BN folded, fused)
    # int8: the fp32 ONNX file it was quantized from (the fused, BN-folded graph: a quaternion
    # model's real convs hold 4x its stored parameters, so this, not size_bytes' checkpoint, is
    # what int8 shrinks)
    fp32_onnx_bytes: int | None = None
    clip_seconds: float | None = None  # audio per example (model.json's front end)
    uar: float | None = None  # unweighted average recall (single-label runs)
    variant: str = ""  # how a prune differs besides criterion and plan: "res(search)", ...
    scratch_of: str | None = None  # a from-scratch baseline: the key of the prune run it copies
    cpu: str | None = None  # the CPU it was trained on (metrics.json's environment; older runs: None)

    @property
    def params_bytes(self) -> int:
        """Parameter memory at the deployed precision, zeros counted (the DCASE rule)."""
        from audioprune.measure.budget import BYTES_PER_PARAM

        return (self.deployed_params or self.params) * BYTES_PER_PARAM.get(self.precision, 4)

    @property
    def macs_per_second(self) -> float | None:
        """MACs per second of audio (MACs are per example of `clip_seconds`)."""
        return self.macs / self.clip_seconds if self.clip_seconds else None

    @property
    def is_parent(self) -> bool:
        return self.kind == "unpruned"

    def delta_value(self) -> float | None:
        """Metric change against the parent (same units as the metric)."""
        if self.value is None or self.parent_value is None:
            return None
        return self.value - self.parent_value

    def delta_params(self) -> float | None:
        """Relative change of the parameter count against the parent (-0.5 = half)."""
        return self.params / self.parent_params - 1 if self.parent_params else None

    def delta_macs(self) -> float | None:
        return self.macs / self.parent_macs - 1 if self.parent_macs else None


def find_runs(patterns: list[str | Path]) -> list[Path]:
    """Run directories named by `patterns`: run directories, globs, or directories that hold runs
    (searched recursively for metrics.json). Order is kept, duplicates dropped."""
    found: dict[Path, None] = {}
    for pattern in patterns:
        text = str(pattern)
        paths = [Path(p) for p in sorted(glob.glob(text))] if glob.has_magic(text) else [Path(text)]
        if not paths:
            raise UserError(f"{text!r} matches no file or directory")
        hits = 0
        for path in paths:
            if not path.is_dir():
                if glob.has_magic(text):
                    continue
                raise UserError(f"{path} is not a directory; pass run directories (or globs)")
            runs = [path] if (path / METRICS).is_file() else \
                sorted(p.parent for p in path.rglob(METRICS) if _is_run(p.parent, path))
            for run in runs:
                found[run.resolve()] = None
            hits += len(runs)
        if not hits:
            raise UserError(f"no run directory (a folder with {METRICS}) under {text!r}; "
                            f"evaluate the runs first or check the path")
    return list(found)


def _is_run(run: Path, top: Path) -> bool:
    """A folder with metrics.json that is not inside a run's working folders (checkpoints)."""
    rel = run.relative_to(top).parts
    return not any(part in ("checkpoint", "rounds") for part in rel)


def _read(path: Path) -> dict[str, Any]:
    try:
        return read_json(path)
    except ValueError as exc:
        raise UserError(f"{path} is not valid JSON ({exc})") from exc


def _headline(metrics: dict[str, Any]) -> tuple[str, float | None]:
    if "mAP" in metrics:
        return "mAP", metrics["mAP"]
    return "accuracy", metrics.get("accuracy")


def _clip_seconds(run: Path) -> float | None:
    """Seconds of audio per example: the front end's clip length (1 s when it keeps full
    length, as profile and the counts take it)."""
    info = _read(run / "model.json") if (run / "model.json").is_file() else {}
    front = info.get("frontend")
    if not isinstance(front, dict):
        return None
    return float(front.get("clip_seconds") or 1.0)


def _model_name(run: Path, metrics: dict[str, Any]) -> str:
    info = _read(run / "model.json") if (run / "model.json").is_file() else {}
    arch = info.get("arch") or metrics.get("model")
    if not arch and (run / "config.json").is_file():
        arch = _read(run / "config.json").get("model")
    return str(arch or run.name)


def format_plan(requested: dict[str, Any]) -> str:
    """A pruning plan as a short label: '50% of C1,C2', 'C1=50%, C2=25%', 'MACs <= 30M'."""
    layers = requested.get("layers")
    where = f" of {','.join(layers)}" if layers else ""
    scope = (" (global)" if requested.get("global_ranking") else "") + \
        (f" (round to {requested['round_to']})" if requested.get("round_to") else "")
    if requested.get("ratio") is not None:
        return f"{100 * requested['ratio']:g}%{where}{scope}"
    if requested.get("ratios"):
        return ", ".join(f"{k}={100 * v:g}%" for k, v in requested["ratios"].items())
    if requested.get("budget"):
        return f"budget {requested['budget']} ({requested.get('precision', 'int8')}){where}{scope}"
    limits = []
    for key, label in (("target_macs", "MACs"), ("target_params", "params")):
        value = requested.get(key)
        if isinstance(value, str):  # as typed, before validation: '30M', '0.5', '50%'
            limits.append(f"{label} <= {value}")
        elif isinstance(value, float) and 0 < value <= 1:
            limits.append(f"{label} <= {100 * value:g}% of the parent's")
        elif value is not None:
            limits.append(f"{label} <= {_si(value)}")
    return f"{' and '.join(limits)}{where}{scope}" if limits else "?"


def _si(n: float) -> str:
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(n) >= div:
            return f"{n / div:g}{suffix}"
    return f"{n:g}"


def _level(pruning: dict[str, Any]) -> float | None:
    requested = pruning.get("plan", {}).get("requested", {})
    if requested.get("ratio") is not None:
        return float(requested["ratio"])
    resolved = pruning.get("plan", {}).get("resolved", {})
    if resolved.get("level") is not None:
        return float(resolved["level"])
    ratios = resolved.get("ratios") or requested.get("ratios") or {}
    return max(ratios.values()) if ratios else None


def _latency(run: Path) -> tuple[dict[str, float], int | None]:
    """Median latencies from profile.json as {"eager b1": ms, "onnxruntime b32": ms, ...}."""
    path = run / PROFILE
    if not path.is_file():
        return {}, None
    prof = _read(path)
    out: dict[str, float] = {}
    for backend, by_batch in (prof.get("latency_ms") or {}).items():
        if not isinstance(by_batch, dict):
            continue
        for batch, stats in by_batch.items():
            if isinstance(stats, dict) and stats.get("median") is not None:
                out[f"{backend} {batch}"] = float(stats["median"])
    return out, prof.get("threads")


def _compute(metrics: dict[str, Any], distill: dict[str, Any] | None) -> float | None:
    """This run's own wall-clock compute: KD's total (training + teacher logits), else training."""
    if distill and distill.get("total_seconds") is not None:
        return float(distill["total_seconds"])
    seconds = metrics.get("train_seconds")
    return None if seconds is None else float(seconds)


def read_row(run: Path) -> Row:
    """The report row of one run directory."""
    run = Path(run).resolve()
    metrics = _read(run / METRICS)
    metric, value = _headline(metrics)
    for key in ("params", "macs", "size_bytes"):
        if key not in metrics:
            raise UserError(f"{run / METRICS} has no {key!r}; it was not written by audioprune "
                            f"train/prune/distill (re-evaluate it with `audioprune evaluate {run}`)")
    latency, threads = _latency(run)
    config = _read(run / "config.json") if (run / "config.json").is_file() else {}
    row = Row(key=str(run), name=run.name, model=_model_name(run, metrics),
              dataset=str(metrics.get("dataset", "?")), split=str(metrics.get("split", "?")),
              metric=metric, value=value, params=int(metrics["params"]), macs=int(metrics["macs"]),
              size_bytes=int(metrics["size_bytes"]), latency_ms=latency, threads=threads)
    parent = metrics.get("parent")
    distill = metrics.get("distill") if isinstance(metrics.get("distill"), dict) else None
    row.compute_s = _compute(metrics, distill)
    quant = metrics.get("quantization") if isinstance(metrics.get("quantization"), dict) else None
    row.precision = str(metrics.get("precision", "fp32"))
    row.deployed_params = metrics.get("params_deployed")
    row.fp32_onnx_bytes = metrics.get("fp32_onnx_bytes")
    row.clip_seconds = _clip_seconds(run)
    row.uar = metrics.get("uar")
    row.cpu = (metrics.get("environment") or {}).get("cpu")
    scratch = metrics.get("scratch_of")
    if isinstance(scratch, dict) and scratch.get("run"):
        row.scratch_of = str(Path(scratch["run"]).resolve())
    if quant is not None and isinstance(parent, dict):  # an int8 copy: vs the fp32 run it came from
        row.kind = "quantized"
        row.criterion = f"{row.precision} {quant.get('method', '?')}" + \
            (f" qat{quant['qat']['epochs']}" if isinstance(quant.get("qat"), dict) else "")
        row.plan = f"of {Path(str(parent.get('run', '?'))).name}"
    elif isinstance(parent, dict):
        pruning = metrics.get("pruning") or {}
        row.kind = "pruned"
        row.criterion = str(pruning.get("criterion", "?")) + kd_label(distill)
        row.plan = format_plan(pruning.get("plan", {}).get("requested", {}))
        row.level = _level(pruning)
    elif distill and isinstance(distill.get("teacher"), dict):  # a KD student: vs its teacher
        parent = distill["teacher"]
        row.kind = "distilled"
        row.criterion = f"kd ({distill['loss']})" if distill.get("loss") else "kd"
        row.plan = f"student {row.model}"
    if isinstance(parent, dict):
        row.parent = str(Path(parent["run"]).resolve()) if parent.get("run") else None
        row.parent_value = parent.get(metric)
        row.parent_params = parent.get("params")
        row.parent_macs = parent.get("macs")
    teacher = (distill or {}).get("teacher")
    for block in (parent, teacher):  # a pruned run fine-tuned with KD needs both
        if isinstance(block, dict) and block.get("run"):
            key = str(Path(block["run"]).resolve())
            if key not in row.upstream:
                row.upstream.append(key)
    _describe_method(row, run, metrics, config)
    return row


def _describe_method(row: Row, run: Path, metrics: dict[str, Any], config: dict[str, Any]) -> None:
    """seed, model_label, plan_key and method: what report.aggregate groups runs by."""
    train = config.get("train") or {}
    row.seed = train.get("seed")
    info = _read(run / "model.json") if (run / "model.json").is_file() else {}
    kwargs = dict(info.get("kwargs") or config.get("model_kwargs") or {})
    # widths given explicitly (a student, a small twin) live in model.json's `widths`, not its
    # kwargs: without them a narrower model would be grouped with its full-width namesake
    widths = (config.get("model_kwargs") or {}).get("widths")
    if widths:
        kwargs["widths"] = "/".join(f"{k}:{v}" for k, v in sorted(widths.items()))
    opts = ",".join(f"{k}={v}" for k, v in sorted(kwargs.items()))
    row.model_label = row.model + (f"({opts})" if opts else "")
    epochs = f" e{train['epochs']}" if train.get("epochs") is not None else ""
    if row.kind == "unpruned":
        row.model_label += epochs
        row.method = row.model_label
        return
    if row.kind == "quantized":  # the unit is its fp32 parent's; the method, how it was quantized
        q = config.get("quantize") or {}
        parent_config = Path(str((metrics.get("parent") or {}).get("run", ""))) / "config.json"
        if parent_config.is_file():
            row.seed = (_read(parent_config).get("train") or {}).get("seed")
        else:
            row.seed = q.get("seed")
        per = "per-channel" if q.get("per_channel", True) else "per-tensor"
        calib = f", {q['calibration_batches']} calibration batches" \
            if q.get("method", "static") == "static" and q.get("calibration_batches") else ""
        row.method = f"{row.criterion} ({per}{calib})"
        return
    if row.kind == "distilled":
        d = metrics.get("distill") or {}
        row.plan_key = f"student {row.model_label}{epochs}"
        row.method = f"kd {d.get('loss', '?')} T={d.get('temperature')} a={d.get('alpha')} " \
                     f"-> {row.plan_key}"
        return
    pruning = metrics.get("pruning") or {}
    schedule = pruning.get("schedule") or {}
    rounds = schedule.get("rounds", 1)
    row.variant = _variant(pruning)
    row.plan_key = row.plan + (f" ft{train['epochs']}" if train.get("epochs") is not None else "") \
        + (f" x{rounds} rounds" if rounds and rounds > 1 and not schedule.get("progressive")
           else "") + (f" {row.variant}" if row.variant else "")
    options = dict(pruning.get("options") or {})
    for extra in ("scope", "group_reduction"):
        if pruning.get(extra) is not None:
            options[extra] = pruning[extra]
    if pruning.get("quaternion_mode", "aggregate") != "aggregate":
        options["quaternion_mode"] = pruning["quaternion_mode"]
    if pruning.get("aggregate", "mean") != "mean":
        options["aggregate"] = pruning["aggregate"]
    opts = ",".join(f"{k}={v}" for k, v in sorted(options.items()))
    row.method = f"{row.criterion}{f'({opts})' if opts else ''} @ {row.plan_key}"


def kd_label(distill: dict[str, Any] | None) -> str:
    """"+kd" for a fine-tune with KD, with the temperature and alpha where they differ from the
    loss recipe's published defaults ("+kd(alpha=0.5)"): two KD fine-tunes that differ only in
    their weights are two methods, not one with repeated units; "" without KD."""
    if not distill:
        return ""
    recipe = RECIPES.get(str(distill.get("loss")))
    if recipe is None:  # a loss this version does not know: no defaults to compare with
        return "+kd"
    parts = [f"{key}={float(distill[key]):g}" for key, default in
             (("temperature", recipe.temperature), ("alpha", recipe.alpha))
             if distill.get(key) is not None and float(distill[key]) != default]
    return "+kd" + (f"({', '.join(parts)})" if parts else "")


def _variant(pruning: dict[str, Any]) -> str:
    """What a prune did besides its criterion and plan: progressive steps, a cubic schedule,
    coarser features ("progressive(3, cubic) res(search)"); "" for a plain one."""
    parts = []
    schedule = pruning.get("schedule") or {}
    if schedule.get("progressive"):
        parts.append(f"progressive({schedule.get('rounds')}, {schedule.get('shape', 'geometric')})")
    elif schedule.get("shape") and schedule.get("shape") != "geometric":
        parts.append(f"schedule({schedule['shape']})")
    res = pruning.get("resolution")
    if isinstance(res, dict):
        parts.append("res(search)" if res.get("search") else f"res({res.get('time'):g}x"
                     f"{res.get('freq'):g})")
    return " ".join(parts)


def _row_from_block(child: Row, block: dict[str, Any]) -> Row:
    """The parent's row made from the block a child holds, when its directory is gone."""
    path = Path(block.get("run") or child.parent or "parent")
    return Row(key=str(child.parent), name=f"{path.name} (from {child.name})",
               model=str(block.get("arch") or child.model),
               dataset=block.get("dataset", child.dataset), split=block.get("split", child.split),
               metric=child.metric, value=block.get(child.metric), params=int(block["params"]),
               macs=int(block["macs"]), size_bytes=int(block.get("size_bytes", 0)),
               compute_s=None if block.get("train_seconds") is None else float(block["train_seconds"]))


def collect_rows(runs: list[Path]) -> list[Row]:
    """Rows for `runs` plus every parent they name, ordered parent first, then its children by
    criterion and pruned fraction."""
    rows: dict[str, Row] = {}
    for run in runs:
        row = read_row(run)
        rows[row.key] = row
    pending = list(rows.values())
    while pending:  # parents of parents too (a pruned model pruned again)
        row = pending.pop()
        if row.parent is None or row.parent in rows:
            continue
        parent_dir = Path(row.parent)
        if (parent_dir / METRICS).is_file():
            rows[row.parent] = read_row(parent_dir)
            pending.append(rows[row.parent])
        else:
            child = _read(Path(row.key) / METRICS)
            block = child.get("parent") or (child.get("distill") or {}).get("teacher") or {}
            if "params" in block and "macs" in block:
                rows[row.parent] = _row_from_block(row, block)
    _total_compute(rows)
    return _ordered(list(rows.values()))


def _total_compute(rows: dict[str, Row]) -> None:
    """Fill each row's total_compute_s: its own compute plus that of every distinct run upstream.
    Upstream runs that are not report rows (a KD fine-tune's separate teacher) are read from disk."""
    known: dict[str, Row | None] = dict(rows)

    def row_of(key: str) -> Row | None:
        if key not in known:
            known[key] = read_row(Path(key)) if (Path(key) / METRICS).is_file() else None
        return known[key]

    for row in rows.values():
        seen: set[str] = {row.key}
        todo, total = list(row.upstream), row.compute_s
        while todo and total is not None:
            key = todo.pop()
            if key in seen:
                continue
            seen.add(key)
            up = row_of(key)
            if up is None or up.compute_s is None:
                total = None
            else:
                total += up.compute_s
                todo += up.upstream
        row.total_compute_s = None if total is None else round(total, 2)  # as recorded


def _ordered(rows: list[Row]) -> list[Row]:
    by_key = {r.key: r for r in rows}
    children: dict[str | None, list[Row]] = {}
    for r in rows:
        anchor = r.parent if r.parent in by_key else None
        children.setdefault(anchor, []).append(r)

    def sort_key(r: Row) -> tuple:
        return ({"unpruned": 0, "pruned": 1, "distilled": 2}.get(r.kind, 3), r.criterion,
                r.level if r.level is not None else -1.0, -r.macs, r.name)

    out: list[Row] = []

    def visit(r: Row) -> None:
        out.append(r)
        for child in sorted(children.get(r.key, []), key=sort_key):
            visit(child)

    for top in sorted(children.get(None, []), key=lambda r: (r.dataset, r.split, r.model, r.name)):
        visit(top)
    return out
