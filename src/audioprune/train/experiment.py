"""Wiring for one training run: dataset -> cached audio -> model -> fit -> test metrics -> run dir.

The CLI, the demo and the recipes all go through `train_run`, so a run directory always looks the
same (model.safetensors, model.json, metrics.json, config.json, log.txt, checkpoint/).
"""

from __future__ import annotations

import logging
import platform
import re
from collections.abc import Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import torch

from audioprune import __version__
from audioprune.audio.frontend import FrontEndConfig, LogMel
from audioprune.data.cache import AudioCache, AudioSource
from audioprune.data.fingerprint import data_list_hash
from audioprune.data.loader import ClipDataset
from audioprune.data.registry import get_dataset_info, load_dataset
from audioprune.data.types import DatasetIndex
from audioprune.errors import UserError
from audioprune.fileio import read_json, read_tensors, remove_stale_temps, write_json
from audioprune.measure.counting import count_macs, count_params, size_bytes
from audioprune.models.base import AudioClassifier
from audioprune.models.registry import check_model_args, create_model
from audioprune.train.checkpoint import CKPT_DIR
from audioprune.train.distributed import DistContext, barrier
from audioprune.train.fit import TrainConfig, evaluate, fit
from audioprune.train.run_dir import (
    CONFIG_JSON,
    LOG_FILE,
    METRICS_JSON,
    MODEL_WEIGHTS,
    load_model,
    read_model_info,
    read_run_json,
    save_model,
    write_metrics,
)

log = logging.getLogger("audioprune")


@dataclass
class DataSpec:
    """Which data a run uses: the dataset, where it lives, how it is split, how it sounds."""

    dataset: str
    data_root: str | None = None
    options: dict[str, Any] = field(default_factory=dict)  # split, test_fold, val_fold, subset, ...
    frontend: dict[str, Any] = field(default_factory=dict)  # overrides of the dataset's defaults
    cache: bool = True
    cache_dir: str | None = None
    strict: bool = False
    skip_missing: bool = False  # listed files missing on disk: left out (and named), not fatal

    def frontend_config(self) -> FrontEndConfig:
        """The dataset's front end with the --frontend overrides; a UserError for an unknown
        setting or one that cannot work (checked by building the log-mel once, cheap)."""
        base = get_dataset_info(self.dataset).frontend
        try:
            fe = FrontEndConfig.from_dict({**base.to_dict(), **self.frontend})
            LogMel(fe)
        except (TypeError, ValueError) as exc:
            given = ", ".join(f"{k}={v}" for k, v in self.frontend.items()) or "none"
            raise UserError(f"`frontend` ({given}): {exc}") from None
        return fe


@dataclass
class DataBundle:
    index: DatasetIndex
    frontend: FrontEndConfig
    train: ClipDataset
    val: ClipDataset
    test: ClipDataset
    data_list_sha256: str = ""  # which files (and labels) the three splits hold; see fingerprint.py


def prepare_data(spec: DataSpec, seed: int = 0, progress: bool = True) -> DataBundle:
    """Resolve the dataset, decode every clip once into the cache, and wrap the three splits."""
    fe = spec.frontend_config()
    index = load_dataset(spec.dataset, spec.data_root, seed=seed, skip_missing=spec.skip_missing,
                         **spec.options)
    for key in index.missing:
        log.warning("left out (missing on disk): %s", key)
    for note in index.notes:
        log.warning("%s: %s", spec.dataset, note)
    for problem in index.problems:  # files the loader left out, and why
        log.warning("%s: %s (left out; `audioprune datasets check` lists every problem)",
                    spec.dataset, problem.text)
    clips = [c for part in index.splits.values() for c in part]
    channels = 2 if fe.channels == "stereo" else 1  # (mid, side, left, right) needs both channels
    if spec.cache:
        source: Any = AudioCache(index, fe.sample_rate,
                                 Path(spec.cache_dir) if spec.cache_dir else None,
                                 Path(spec.data_root) if spec.data_root else None, channels)
        source.build(clips, strict=spec.strict, progress=progress)
        skipped = source.skipped(clips)
    else:  # decode every file once up front, so a bad one never stops an epoch half-way
        source = AudioSource(index, fe.sample_rate, channels)
        skipped = source.check(clips, strict=spec.strict, progress=progress)
    if skipped:
        for reason in skipped.values():
            log.warning("skipping %s", reason)
        log.warning("%d of %d files could not be decoded and are skipped (--strict makes this an "
                    "error; `audioprune datasets check` lists them)", len(skipped), len(clips))
        index.splits = {k: [c for c in v if c.key not in skipped] for k, v in index.splits.items()}
    if not index.splits["train"]:
        raise UserError(f"{index.describe()}: the training split is empty")
    if not index.splits["test"]:
        raise UserError(f"{index.describe()}: the test split is empty")
    n = index.num_classes
    crop_mode = "full" if fe.clip_samples is None else "centre"

    def ds(split: str, mode: str) -> ClipDataset:
        return ClipDataset(index.splits[split], source, index.task, n, fe.clip_samples, mode, seed)  # type: ignore[arg-type]

    return DataBundle(index, fe, ds("train", "random" if fe.clip_samples else "full"),
                      ds("val", crop_mode), ds("test", crop_mode), data_list_hash(index))


@torch.no_grad()
def estimate_normalisation(dataset: ClipDataset, fe: FrontEndConfig, max_clips: int = 256,
                           seed: int = 0) -> tuple[float, float]:
    """Mean and std of the log-mel over up to `max_clips` training clips (centre crops)."""
    frontend = LogMel(fe.replace(mean=0.0, std=1.0))
    order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(seed))
    total, total_sq, n = 0.0, 0.0, 0
    for i in order[:max_clips].tolist():
        wave = dataset[i][0]
        feats = frontend(wave.reshape(-1, wave.shape[-1])).double()  # stereo: both channels
        total += float(feats.sum())
        total_sq += float(feats.square().sum())
        n += feats.numel()
    mean = total / n
    std = max((total_sq / n - mean ** 2) ** 0.5, 1e-6)
    return round(mean, 4), round(std, 4)


def cost_metrics(model: AudioClassifier) -> dict[str, Any]:
    """params, MACs per example (body; front end separately) and fp32 size: the cost half of
    every metrics.json."""
    macs = count_macs(model)
    return {"params": count_params(model), "macs": macs["model"], "macs_frontend": macs["frontend"],
            "size_bytes": size_bytes(model)}


def test_metrics(model: AudioClassifier, bundle: DataBundle, cfg: TrainConfig,
                 ctx: DistContext = DistContext()) -> dict[str, Any]:
    """metrics.json content: task, accuracy|mAP (+ the rest) on the test split, and the costs."""
    m = evaluate(model, bundle.test, cfg, ctx, "testing")
    return {"task": bundle.index.task, **m, **cost_metrics(model),
            "dataset": bundle.index.name, "split": bundle.index.split_name,
            **({"fold": bundle.index.fold[0], "folds": bundle.index.fold[1]}
               if bundle.index.fold else {}),
            "num_classes": bundle.index.num_classes, "class_names": bundle.index.class_names,
            "data_files": sum(len(v) for v in bundle.index.splits.values()),
            **({"missing_files": list(bundle.index.missing)} if bundle.index.missing else {}),
            "data_list_sha256": bundle.data_list_sha256}


def headline_block(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """The headline numbers of a metrics.json (metric, examples, costs), as other runs quote them."""
    keys = ("accuracy", "uar", "mAP", "macro_f1", "num_examples", "params", "macs", "size_bytes")
    return {k: metrics[k] for k in keys if k in metrics}


def source_run_block(run: Path, model: AudioClassifier, bundle: DataBundle, cfg: TrainConfig,
                     who: str) -> dict[str, Any]:
    """The headline numbers of the run a model was derived from (a pruned model's parent, a
    student's teacher) on the derived run's test split: taken from its metrics.json when that
    was measured on the same split, else evaluated here (`who` says by what). Its
    `train_seconds` travels along, so the total compute stays known if the run is deleted."""
    path = Path(run) / METRICS_JSON
    saved = read_json(path) if path.is_file() else {}
    same = (saved.get("dataset") == bundle.index.name
            and saved.get("split") == bundle.index.split_name
            and saved.get("num_examples") == len(bundle.test.clips))
    metrics = saved if same else test_metrics(model, bundle, cfg)
    block = headline_block(metrics)
    if same and saved.get("train_seconds") is not None:
        block["train_seconds"] = saved["train_seconds"]
    block["source"] = str(path) if same else f"evaluated by {who} on this test split"
    return {"run": str(Path(run).resolve()), "arch": model.arch_name, **block,
            "dataset": bundle.index.name, "split": bundle.index.split_name}


def setup_logging(is_main: bool = True) -> None:
    """Console logging for the CLI (rank 0 only under torchrun)."""
    root = logging.getLogger("audioprune")
    root.setLevel(logging.INFO)
    for h in [h for h in root.handlers if not isinstance(h, logging.FileHandler)]:
        root.removeHandler(h)
    if is_main:
        console = logging.StreamHandler()
        console.setFormatter(logging.Formatter("%(message)s"))
        root.addHandler(console)


@contextmanager
def run_log(run_dir: Path, is_main: bool = True) -> Iterator[None]:
    """Append everything logged under "audioprune" to run_dir/log.txt while the block runs."""
    root = logging.getLogger("audioprune")
    root.setLevel(logging.INFO)
    if not is_main:
        yield
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(run_dir / LOG_FILE)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root.addHandler(handler)
    try:
        yield
    finally:
        root.removeHandler(handler)
        handler.close()


def environment() -> dict[str, str]:
    return {"audioprune": __version__, "torch": torch.__version__, "python": platform.python_version()}


def train_run(model_name: str, model_kwargs: dict[str, Any], data: DataSpec, cfg: TrainConfig,
              out: Path, resume: bool = False, ctx: DistContext = DistContext()) -> dict[str, Any]:
    """Train `model_name` on `data` into run directory `out` and return its metrics.json."""
    out = Path(out)
    if cfg.validate().epochs < 1:
        raise UserError(f"`epochs` must be at least 1 to train, got {cfg.epochs}")
    if cfg.init:
        info = read_model_info(cfg.init)  # a clear error when it is not a run
        if model_name and model_name != info["arch"]:
            raise UserError(f"`init` {cfg.init} holds a {info['arch']}, not a {model_name}; "
                            f"drop `model` (it comes from the run)")
        model_name, model_kwargs = info["arch"], dict(info.get("kwargs") or {})
    check_model_args(model_name, model_kwargs)  # bad --model, --width, --frontend fail here,
    data.frontend_config()  # before anything is written
    config = {"command": "train", "model": model_name, "model_kwargs": model_kwargs,
              "data": data.__dict__, "train": cfg.to_dict(), "environment": environment()}
    if resume:
        if not (out / CONFIG_JSON).is_file():
            raise UserError(f"`resume` {out}: no {CONFIG_JSON} there; is it a training run?")
        if ctx.is_main:  # half-written temp files of the killed process
            for tmp in remove_stale_temps(out):
                log.info("removed %s, left by an interrupted write", tmp)
    elif (out / CONFIG_JSON).exists():
        if (out / MODEL_WEIGHTS).exists() or (out / CKPT_DIR).exists():
            raise UserError(f"{out} already holds a run; choose another `out`, or continue it "
                            f"with `resume` {out}")
        log.info("%s: a run that stopped before its first epoch; starting it again", out)
    if ctx.is_main:
        out.mkdir(parents=True, exist_ok=True)
        write_json(out / CONFIG_JSON, config)
    with run_log(out, ctx.is_main):
        return _train(model_name, model_kwargs, data, cfg, out, resume, ctx)


def _train(model_name: str, model_kwargs: dict[str, Any], data: DataSpec, cfg: TrainConfig,
           out: Path, resume: bool, ctx: DistContext) -> dict[str, Any]:
    init_info = read_model_info(cfg.init) if cfg.init else None
    if init_info is not None:  # the pretrained model keeps its front end (clip length aside)
        data = DataSpec(**{**data.__dict__, "frontend": init_frontend(init_info, data, cfg.init)})
    bundle = prepare_data(data, cfg.seed, progress=cfg.progress and ctx.is_main)
    log.info("%s", bundle.index.describe())
    log.info("data list sha256 %s", bundle.data_list_sha256)
    fe = bundle.frontend
    if "mean" not in data.frontend and "std" not in data.frontend:
        mean, std = estimate_normalisation(bundle.train, fe, seed=cfg.seed)
        fe = fe.replace(mean=mean, std=std)
        log.info("log-mel standardisation from the training split: mean %.2f dB, std %.2f dB", mean, std)
    torch.manual_seed(cfg.seed)
    init_block = None
    if init_info is not None:
        model, init_block = init_model(Path(cfg.init), init_info, bundle.index.num_classes, fe)
    else:
        try:
            model = create_model(model_name, bundle.index.num_classes, frontend=fe, **model_kwargs)
        except ValueError as exc:  # e.g. --model-arg dropout=2
            raise UserError(f"`model` {model_name} with {model_kwargs or 'no options'}: {exc}") from None
    if cfg.freeze:
        frozen = freeze_layers(model, cfg.freeze)
        log.info("frozen: %s", ", ".join(frozen))
        if init_block is not None:
            init_block["frozen"] = frozen
    summary = fit(model, bundle.train, bundle.val, cfg, out, resume=resume, ctx=ctx)
    extra = {"dataset": data.dataset}
    if ctx.is_main:  # the best epoch's weights become the run's model
        save_model(out, _best(model, out), bundle.index.class_names, bundle.index.task, extra)
    barrier(ctx)  # the other ranks read what rank 0 just wrote
    best, _ = load_model(out, cfg.device)
    metrics = test_metrics(best, bundle, cfg, ctx)
    metrics.update({"train_seconds": round(summary["train_seconds"], 2), "epochs_run": summary["epoch"],
                    "best_epoch": summary["best_epoch"] + 1, "val": summary["best_val"],
                    "history": summary["history"], "environment": environment(),
                    "data_options": data.options})
    if init_block is not None:
        metrics["init"] = {**init_block, "body_lr_scale": cfg.body_lr_scale}
    if ctx.is_main:
        write_metrics(out, metrics)
    return metrics


INIT_FRONTEND_CHANGES = ("clip_seconds",)  # what a fine-tune may change in a pretrained front end


def init_frontend(info: dict[str, Any], data: DataSpec, init: str) -> dict[str, Any]:
    """The pretrained model's front end (its sample rate, mels, standardisation: what its weights
    expect), with only the clip length taken from the new data's settings."""
    fe = dict(info["frontend"])
    bad = sorted(k for k, v in data.frontend.items()
                 if k not in INIT_FRONTEND_CHANGES and fe.get(k) != v)
    if bad:
        raise UserError(f"`init` {init}: a pretrained model keeps its front end (its weights "
                        f"expect it); only {', '.join(INIT_FRONTEND_CHANGES)} can change, not "
                        f"{', '.join(bad)}")
    fe.update({k: data.frontend[k] for k in INIT_FRONTEND_CHANGES if k in data.frontend})
    return fe


def init_model(run: Path, info: dict[str, Any], num_classes: int,
               fe: FrontEndConfig) -> tuple[AudioClassifier, dict[str, Any]]:
    """The model of run `run` (any: trained, pruned, imported) with its weights, for `num_classes`
    classes: when the count differs the classifier is replaced by a new one (seeded init)."""
    from audioprune.models.registry import model_from_config

    config = {"arch": info["arch"], "num_classes": num_classes, "kwargs": info.get("kwargs", {}),
              "widths": info.get("widths"), "frontend": fe.to_dict()}
    model = model_from_config(config)
    state = read_tensors(Path(run) / MODEL_WEIGHTS)
    head = model.classifier_name
    replaced = int(info["num_classes"]) != num_classes
    if replaced:
        state = {k: v for k, v in state.items() if not k.startswith(head + ".")}
    result = model.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys
               if not k.startswith("frontend.") and not (replaced and k.startswith(head + "."))]
    if missing or result.unexpected_keys:
        raise UserError(f"`init` {run}: its weights do not fit its own architecture "
                        f"(missing {missing[:3]}, unexpected {result.unexpected_keys[:3]})")
    block = {"run": str(Path(run).resolve()), "arch": info["arch"],
             "classes_before": int(info["num_classes"]), "classes": num_classes,
             "classifier_replaced": f"{head} ({info['num_classes']} -> {num_classes} classes)"
             if replaced else None}
    log.info("initialised from %s (%s)%s", run, info["arch"],
             f"; new classifier {head}: {info['num_classes']} -> {num_classes} classes"
             if replaced else "")
    return model, block


def freeze_layers(model: AudioClassifier, patterns: list[str]) -> list[str]:
    """Set requires_grad False on the parameters of the modules named by `patterns` (names or
    glob patterns such as 'block1.*'); returns the frozen module names. A pattern that names
    nothing is an error (it is probably a typo)."""
    import fnmatch

    names = [n for n, _ in model.named_modules() if n and not n.startswith("frontend")]
    chosen: list[str] = []
    for pat in patterns:
        hit = [n for n in names if n == pat or fnmatch.fnmatchcase(n, pat)]
        if not hit:
            top = sorted({n.split(".")[0] for n in names})
            raise UserError(f"`freeze` {pat!r} names no layer; layers: {', '.join(top)} (and "
                            f"their children, e.g. {names[1] if len(names) > 1 else names[0]})")
        chosen += [n for n in hit if n not in chosen]
    modules = dict(model.named_modules())
    for n in chosen:
        for p in modules[n].parameters():
            p.requires_grad_(False)
    if model.classifier_name in chosen:
        log.warning("the classifier %s is frozen too", model.classifier_name)
    return chosen


def _best(model: AudioClassifier, out: Path) -> AudioClassifier:
    """Load the best-epoch weights fit() wrote into `model` before model.json is written."""
    model.load_state_dict(read_tensors(out / MODEL_WEIGHTS), strict=False)
    return model


def resume_run(out: Path, ctx: DistContext = DistContext(), **overrides: Any) -> dict[str, Any]:
    """Continue a stopped `train_run` from its last epoch checkpoint with its saved settings."""
    cfg_path = Path(out) / CONFIG_JSON
    if not cfg_path.is_file():
        raise UserError(f"`resume` {out}: {cfg_path} not found; is it a training run directory?")
    saved = read_run_json(cfg_path)
    if saved.get("command", "train") != "train":
        raise UserError(f"`resume` {out}: it is a {saved.get('command')!r} run; continue it with "
                        f"`audioprune {saved.get('command')} `resume` {out}`")
    try:
        train_cfg = TrainConfig(**{**saved["train"], **overrides})
        data = DataSpec(**saved["data"])
        model, model_kwargs = saved["model"], dict(saved["model_kwargs"])
    except (KeyError, TypeError) as exc:
        raise UserError(f"`resume` {out}: {cfg_path} lacks or has unknown settings ({exc}); it was "
                        f"written by another audioprune version (this is {__version__})") from None
    return train_run(model, model_kwargs, data, train_cfg, Path(out), resume=True, ctx=ctx)


def evaluate_run(run_dir: Path, data: DataSpec | None = None, device: str = "cpu",
                 progress: bool = True) -> tuple[dict[str, Any], Path]:
    """Evaluate a run's model on its own test split (from config.json) or on `data`.

    The model's own front end (sample rate, clip length, standardisation) is always used. The
    result replaces metrics.json when it is the run's own data, else goes to
    eval-<dataset>-<split>.json beside it. Returns (metrics, path written).
    """
    run_dir = Path(run_dir)
    model, info = load_model(run_dir, device)
    own = data is None
    if data is None:
        cfg_path = run_dir / CONFIG_JSON
        if not cfg_path.is_file():
            raise UserError(f"{run_dir} has no {CONFIG_JSON}; pass `dataset` and `data_root`")
        try:
            data = DataSpec(**read_run_json(cfg_path)["data"])
        except (KeyError, TypeError) as exc:
            raise UserError(f"{cfg_path} names no usable data ({exc}); pass `dataset` and "
                            f"`data_root`") from None
    data = DataSpec(**{**data.__dict__, "frontend": model.frontend_cfg.to_dict()})
    bundle = prepare_data(data, progress=progress)
    if bundle.index.num_classes != model.num_classes:
        raise UserError(f"{run_dir} predicts {model.num_classes} classes but {data.dataset} has "
                        f"{bundle.index.num_classes}; evaluate on a dataset with the same classes")
    if bundle.index.class_names != info["class_names"]:
        log.warning("class names differ from the run's (%s...); scoring by class index",
                    ", ".join(info["class_names"][:3]))
    cfg = TrainConfig(device=device, progress=progress)
    metrics = test_metrics(model, bundle, cfg)
    metrics["environment"] = environment()
    metrics["data_options"] = data.options
    if own:
        old = read_run_json(run_dir / "metrics.json") if (run_dir / "metrics.json").is_file() else {}
        keep = {k: old[k] for k in ("train_seconds", "epochs_run", "best_epoch", "val", "history",
                                    "parent", "before_finetune", "pruning", "reduction",
                                    "distill") if k in old}
        metrics = {**metrics, **keep}
        path = run_dir / "metrics.json"
    else:
        # one plain file name inside the run directory, whatever the split is called
        name = re.sub(r"[^A-Za-z0-9._-]+", "-", f"{data.dataset}-{bundle.index.split_name}")
        path = run_dir / f"eval-{name.strip('.')}.json"
    write_json(path, metrics)
    return metrics, path
