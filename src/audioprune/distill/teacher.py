"""Where a student's teacher logits come from: a cache on disk, or the teacher run online.

Cached: the teacher's logits for every training clip are computed once (eval mode, the clip as
the student sees it) and stored as one safetensors file, so each student epoch costs only the
student's forward and backward. The file name and its embedded key hash everything the logits
depend on: the teacher's weights (sha256 of model.safetensors) and architecture, the teacher's
front end, the dataset + split + data root + split options, the waveform settings (sample rate,
clip length, crop) and the ordered list of training clips with their files' size and mtime
(a clip's index in it is `idx` in fit's loss).
A cache file whose key, shape, checksum or finiteness does not match is rebuilt, never used;
it is written atomically (audioprune.fileio), so a killed build leaves no partial file.

Online: when the student's input changes from epoch to epoch -- mixup, random crops of clips
longer than the clip length, random placement of shorter clips in it -- logits computed once
would describe a different input than the one the student is trained on; the teacher then runs
on every training batch, on exactly the student's (mixed, cropped) waveform. SpecAugment lives
inside the student (after its front end) and does not change the waveform.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

import torch
from safetensors import safe_open
from torch import nn

from audioprune.data.loader import ClipDataset
from audioprune.errors import UserError
from audioprune.fileio import write_tensors
from audioprune.train.distributed import DistContext
from audioprune.train.fit import predict

log = logging.getLogger("audioprune")

CACHE_FORMAT = 1
MODES = ("auto", "cached", "online")


# ------------------------------------------------------------------------------ the mode


def clip_lengths(ds: ClipDataset) -> list[int]:
    """Samples per training clip, from the audio cache's index when there is one (no decoding)."""
    entries = getattr(ds.source, "entries", None)
    if entries is not None and all(c.key in entries for c in ds.clips):
        return [entries[c.key].length for c in ds.clips]
    return [int(ds.source.get(c).shape[-1]) for c in ds.clips]


def input_changes(ds: ClipDataset, mixup: float,
                  lengths: Iterable[int] | None = None) -> list[str]:
    """Why the training input differs between epochs ([] = it is the same every epoch)."""
    if mixup > 0:  # reason enough; the clip lengths need not be read
        return [f"mixup (alpha {mixup:g}) mixes a new pair of clips every batch"]
    reasons = []
    if ds.mode == "random" and ds.clip_samples is not None:
        n = ds.clip_samples
        lengths = list(clip_lengths(ds) if lengths is None else lengths)
        longer = sum(1 for k in lengths if k > n)
        shorter = sum(1 for k in lengths if k < n)
        secs = n / getattr(ds.source, "sample_rate", 1)
        if longer:
            reasons.append(f"{longer} of {len(lengths)} training clips are longer than the "
                           f"{secs:g} s clip length and randomly cropped each epoch")
        if shorter:
            reasons.append(f"{shorter} of {len(lengths)} training clips are shorter than the "
                           f"{secs:g} s clip length and placed at a random offset each epoch")
    return reasons


def choose_mode(requested: str, ds: ClipDataset, mixup: float) -> tuple[str, str]:
    """(mode, reason). "auto" caches only when every epoch shows the student the same input."""
    if requested not in MODES:
        raise UserError(f"`teacher_mode` must be one of {', '.join(MODES)}, got {requested!r}")
    if requested == "online":
        return "online", "asked for (--teacher-mode online)"
    reasons = input_changes(ds, mixup)
    if requested == "cached":
        if mixup > 0:
            raise UserError("`teacher_mode` cached cannot follow mixup (each batch mixes new "
                            "pairs); drop `mixup` or use `teacher_mode` auto|online")
        if reasons:
            why = "; ".join(reasons)
            log.warning("teacher logits cached as asked, although %s: the teacher saw the "
                        "centred clip, the student a shifted or cropped one", why)
            return "cached", f"asked for (--teacher-mode cached) although {why}"
        return "cached", "asked for (--teacher-mode cached)"
    if reasons:
        return "online", "; ".join(reasons)
    return "cached", "the training input is the same every epoch (no mixup, no random crop or " \
                     "placement)"


# ------------------------------------------------------------------------------ the cache


def cache_key(teacher: dict[str, Any], ds: ClipDataset, dataset: str, split: str,
              data_root: str | None, options: dict[str, Any]) -> dict[str, Any]:
    """Everything the cached logits depend on (see the module docstring)."""
    rows = "\n".join(f"{c.key}\t{_file_signature(c.path)}" for c in ds.clips)
    clips = hashlib.sha256(rows.encode()).hexdigest()
    return {"format": CACHE_FORMAT, "teacher": teacher,
            "data": {"dataset": dataset, "split": split,
                     "data_root": str(Path(data_root).resolve()) if data_root else None,
                     "options": {k: options[k] for k in sorted(options)}},
            "input": {"sample_rate": getattr(ds.source, "sample_rate", None),
                      "clip_samples": ds.clip_samples, "view": _view(ds)},
            "clips": {"count": len(ds.clips), "sha256": clips}}


def _file_signature(path: Path | None) -> str:
    """size:mtime of a clip's file (a replaced recording changes it); "-" for rendered clips."""
    if path is None:
        return "-"
    try:
        st = path.stat()
    except OSError:
        return "missing"
    return f"{st.st_size}:{st.st_mtime_ns}"


def _view(ds: ClipDataset) -> str:
    return "full" if ds.clip_samples is None else "centre"


def _digest(logits: torch.Tensor) -> str:
    return hashlib.sha256(logits.contiguous().numpy().tobytes()).hexdigest()


class TeacherCache:
    """One file of teacher logits for one (teacher, training set, input) key."""

    def __init__(self, root: Path, key: dict[str, Any]) -> None:
        self.key_json = json.dumps(key, sort_keys=True, default=str)
        digest = hashlib.sha256(self.key_json.encode()).hexdigest()[:20]
        self.path = Path(root) / "teacher-logits" / f"{key['teacher']['arch']}-{digest}.safetensors"
        self.rows = int(key["clips"]["count"])
        self.cols = int(key["teacher"]["num_classes"])

    def load(self) -> torch.Tensor | None:
        """The cached logits, or None when the file is missing, partial, stale or corrupt."""
        if not self.path.is_file():
            return None
        try:
            with safe_open(str(self.path), framework="pt") as fh:
                meta = fh.metadata() or {}
                logits = fh.get_tensor("logits")
        except Exception as exc:  # truncated or not safetensors at all
            log.warning("teacher cache %s is unreadable (%s); recomputing it", self.path, exc)
            return None
        problem = None
        if meta.get("key") != self.key_json:
            problem = "it was made for another teacher, data or front end"
        elif tuple(logits.shape) != (self.rows, self.cols):
            problem = f"shape {tuple(logits.shape)} is not ({self.rows}, {self.cols})"
        elif meta.get("sha256") != _digest(logits):
            problem = "its checksum does not match"
        elif not torch.isfinite(logits).all():
            problem = "it holds non-finite values"
        if problem:
            log.warning("teacher cache %s not used: %s; recomputing it", self.path, problem)
            return None
        return logits

    def save(self, logits: torch.Tensor) -> None:
        logits = logits.float().contiguous()
        write_tensors(self.path, {"logits": logits},
                      metadata={"key": self.key_json, "sha256": _digest(logits)})


# ------------------------------------------------------------------------------ the sources


class CachedTeacher:
    """Teacher logits looked up by training-set index."""

    mode = "cached"

    def __init__(self, logits: torch.Tensor, seconds: float, hit: bool, path: Path) -> None:
        self.logits, self.seconds, self.hit, self.path = logits, seconds, hit, path

    def __call__(self, idx: torch.Tensor) -> torch.Tensor:
        return self.logits[idx.cpu()]

    @contextmanager
    def attach(self, student: nn.Module) -> Iterator[None]:
        yield

    def describe(self) -> dict[str, Any]:
        return {"cache": {"path": str(self.path), "hit": self.hit}}


def cached_teacher(teacher: nn.Module, cache: TeacherCache, ds: ClipDataset, batch_size: int,
                   device: str, ctx: DistContext = DistContext(),
                   progress: bool = False) -> CachedTeacher:
    """Load the logits from `cache`, or compute them on `ds`'s clips (centred) and store them."""
    t0 = time.perf_counter()
    logits = cache.load()
    if logits is not None:
        log.info("teacher logits: cache hit %s (%d clips)", cache.path, len(logits))
        return CachedTeacher(logits, time.perf_counter() - t0, True, cache.path)
    view = ClipDataset(ds.clips, ds.source, ds.task, ds.num_classes, ds.clip_samples, _view(ds),
                       ds.seed)
    logits = torch.from_numpy(predict(teacher, view, batch_size, device, ctx, progress,
                                      "teacher logits"))
    seconds = time.perf_counter() - t0
    if ctx.is_main:
        cache.save(logits)
    log.info("teacher logits: computed for %d clips in %.1fs, cached in %s", len(logits), seconds,
             cache.path)
    return CachedTeacher(logits, seconds, False, cache.path)


class OnlineTeacher:
    """The teacher run on each training batch, on exactly the waveform the student received.

    fit's loss sees (logits, targets, idx) but not the input, so `attach(student)` hooks the
    student's forward: in training mode, before the student runs, the teacher (eval mode, no
    gradient, no RNG use) computes its logits on the same batch; the loss then takes them.
    """

    mode = "online"

    def __init__(self, teacher: nn.Module) -> None:
        self.teacher = teacher.eval()
        self.seconds = 0.0
        self.batches = 0
        self._pending: torch.Tensor | None = None

    def _hook(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        if not module.training:
            return
        t0 = time.perf_counter()
        with torch.no_grad():
            self._pending = self.teacher(args[0]).float()
        self.seconds += time.perf_counter() - t0
        self.batches += 1

    @contextmanager
    def attach(self, student: nn.Module) -> Iterator[None]:
        handle = student.register_forward_pre_hook(self._hook)
        try:
            yield
        finally:
            handle.remove()
            self._pending = None

    def __call__(self, idx: torch.Tensor) -> torch.Tensor:
        out, self._pending = self._pending, None
        if out is None or len(out) != len(idx):
            raise RuntimeError("online teacher: no teacher logits for this batch (is the "
                               "teacher attached to the student being trained?)")
        return out

    def describe(self) -> dict[str, Any]:
        return {"online_batches": self.batches}
