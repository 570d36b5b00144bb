"""Which data a run uses (DataSpec) and that data made ready: resolved, decoded once into the
audio cache, wrapped as the three splits' datasets (prepare_data), with the log-mel's
standardisation estimated on the training split."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from audioprune.audio.frontend import FrontEndConfig, LogMel
from audioprune.data.cache import AudioCache, AudioSource
from audioprune.data.fingerprint import data_list_hash
from audioprune.data.loader import ClipDataset
from audioprune.data.registry import get_dataset_info, inferred_frontend, load_dataset
from audioprune.data.types import DatasetIndex
from audioprune.errors import UserError

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
            fe = base.overridden(self.frontend)  # fmax follows a new sample_rate's Nyquist limit
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
    untrained: list[str] = field(default_factory=list)  # classes tested, never trained on


def untrained_classes(index: DatasetIndex) -> list[str]:
    """The classes that have test clips but no training clip (their test clips can only be
    misclassified), in class order."""
    trained = {t for c in index.splits["train"] for t in c.targets}
    tested = {t for c in index.splits["test"] for t in c.targets}
    return [index.class_names[i] for i in sorted(tested - trained)]


def _check_classes(index: DatasetIndex) -> list[str]:
    """Warn naming every class that is tested but never trained on (files left out by
    `skip_missing` or undecodable, a fold without it); refuse when that is every test clip's
    class, since the test score could only be 0."""
    absent = untrained_classes(index)
    if not absent:
        return []
    trained = {t for c in index.splits["train"] for t in c.targets}
    lost = [c for c in index.splits["test"] if not set(c.targets) & trained]
    why = (f" ({len(index.missing)} listed file(s) missing on disk were left out)"
           if index.missing else "")
    shown = ", ".join(absent[:10]) + (f" and {len(absent) - 10} more" if len(absent) > 10 else "")
    if len(lost) == len(index.splits["test"]):
        raise UserError(f"{index.describe()}: no test clip's class has a training clip "
                        f"({shown}){why}, so the test score could only be 0; restore the "
                        f"training files of these classes or choose another split")
    log.warning("%d class(es) have test clips but no training clip: %s%s; their %d test clip(s) "
                "can only be misclassified (metrics.json lists them as untrained_classes)",
                len(absent), shown, why, len(lost))
    return absent


def prepare_data(spec: DataSpec, seed: int = 0, progress: bool = True,
                 training: bool = True) -> DataBundle:
    """Resolve the dataset, decode every clip once into the cache, and wrap the three splits.

    For `training` (train, distil, prune's fine-tuning) classes that have test clips but no
    training clip are named in a warning (and in metrics.json as ``untrained_classes``); when
    no test clip's class is trained on, the test score could only be 0 and this refuses with a
    UserError instead. Evaluating a trained model (`training` False) checks neither."""
    fe = spec.frontend_config()
    index = load_dataset(spec.dataset, spec.data_root, seed=seed, skip_missing=spec.skip_missing,
                         **spec.options)
    fe, inferred = inferred_frontend(spec.dataset, index, fe, spec.frontend)
    if inferred:
        log.info("%s: %s", spec.dataset, inferred)
    for key in index.missing:
        log.warning("left out (missing on disk): %s", key)
    for note in index.notes:
        log.warning("%s: %s", spec.dataset, note)
    for problem in index.problems:  # files the loader left out and why, or the tree's layout
        log.warning("%s: %s%s", spec.dataset, problem.text,
                    " (left out; `audioprune datasets check` lists every problem)"
                    if problem.key else "")
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
    untrained = _check_classes(index) if training else []
    n = index.num_classes
    crop_mode = "full" if fe.clip_samples is None else "centre"

    def ds(split: str, mode: str) -> ClipDataset:
        return ClipDataset(index.splits[split], source, index.task, n, fe.clip_samples, mode, seed)  # type: ignore[arg-type]

    return DataBundle(index, fe, ds("train", "random" if fe.clip_samples else "full"),
                      ds("val", crop_mode), ds("test", crop_mode), data_list_hash(index),
                      untrained)


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


def standardised_frontend(data: DataSpec, bundle: DataBundle, seed: int) -> FrontEndConfig:
    """The bundle's front end with the log-mel standardisation estimated on the training split,
    unless `data.frontend` gives mean or std itself (logged either way)."""
    fe = bundle.frontend
    if "mean" in data.frontend or "std" in data.frontend:
        return fe
    mean, std = estimate_normalisation(bundle.train, fe, seed=seed)
    log.info("log-mel standardisation from the training split: mean %.2f dB, std %.2f dB", mean, std)
    return fe.replace(mean=mean, std=std)
