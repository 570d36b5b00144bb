"""Decoded, resampled audio stored once on disk, so an epoch never re-decodes a file.

A cache directory is keyed by a hash of (dataset name, data root, sample rate, format version).
Inside it, each build writes one chunk: `chunk-NNN.i16` (all clips' samples concatenated as
int16, memory-mapped on read, as PANNs stores AudioSet) and `chunk-NNN.json` (key -> offset,
length, source file size and mtime). The JSON is renamed into place after the data is complete,
so a killed build leaves no half-valid chunk. A later build decodes only clips that are missing
or whose source file changed (size or mtime), and later chunks win.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
from tqdm import tqdm

from audioprune.audio.io import load_audio
from audioprune.data.types import Clip, DatasetIndex
from audioprune.errors import AudioDecodeError, UserError
from audioprune.fileio import write_json

log = logging.getLogger(__name__)
CACHE_FORMAT = 1


def default_cache_dir() -> Path:
    return Path(os.environ.get("AUDIOPRUNE_CACHE", Path.home() / ".cache" / "audioprune"))


def _signature(clip: Clip) -> tuple[int, int]:
    if clip.path is None:
        return (0, 0)
    st = clip.path.stat()
    return (st.st_size, st.st_mtime_ns)


class AudioSource:
    """Decodes a clip on every call: the no-cache path (and what the cache is built from)."""

    def __init__(self, index: DatasetIndex, sample_rate: int) -> None:
        self.index = index
        self.sample_rate = sample_rate

    def get(self, clip: Clip) -> np.ndarray:
        if self.index.render is not None:
            return self.index.render(clip, self.sample_rate)
        if clip.path is None:
            raise UserError(f"clip {clip.key} has no file and dataset {self.index.name} no renderer")
        return load_audio(clip.path, self.sample_rate)


@dataclass
class _Entry:
    chunk: int
    offset: int
    length: int


class AudioCache:
    """Memory-mapped waveforms for a dataset at one sample rate. `get(clip)` returns float32."""

    def __init__(self, index: DatasetIndex, sample_rate: int, cache_dir: Path | None = None,
                 root: Path | None = None) -> None:
        self.index = index
        self.sample_rate = sample_rate
        ident = json.dumps({"dataset": index.name, "root": str(root.resolve()) if root else None,
                            "sample_rate": sample_rate, "format": CACHE_FORMAT}, sort_keys=True)
        digest = hashlib.sha256(ident.encode()).hexdigest()[:16]
        self.dir = (cache_dir or default_cache_dir()) / f"{index.name}-{sample_rate}hz-{digest}"
        self.entries: dict[str, _Entry] = {}
        self.failed: dict[str, str] = {}
        self._maps: dict[int, np.memmap] = {}
        self._signatures: dict[str, tuple[int, int]] = {}
        self._load_chunks()

    def _chunk_ids(self) -> list[int]:
        if not self.dir.is_dir():
            return []
        ids = []
        for p in self.dir.glob("chunk-*.json"):
            try:
                ids.append(int(p.stem.split("-")[1]))
            except ValueError:
                continue
        return sorted(ids)

    def _load_chunks(self) -> None:
        for cid in self._chunk_ids():
            meta_path = self.dir / f"chunk-{cid:04d}.json"
            data_path = self.dir / f"chunk-{cid:04d}.i16"
            try:
                meta = json.loads(meta_path.read_text())
            except ValueError:
                log.warning("ignoring unreadable cache index %s", meta_path)
                continue
            if not data_path.is_file() or data_path.stat().st_size != 2 * meta["total"]:
                log.warning("ignoring cache chunk %s: data file missing or truncated", data_path)
                continue
            for key, (offset, length, size, mtime) in meta["clips"].items():
                self.entries[key] = _Entry(cid, offset, length)
                self._signatures[key] = (size, mtime)
            self.failed.update(meta.get("failed", {}))

    def missing(self, clips: Iterable[Clip]) -> list[Clip]:
        """Clips not cached, or whose source file changed since they were cached."""
        out = []
        for c in clips:
            if c.key in self.failed and c.key not in self.entries:
                continue
            if c.key not in self.entries or self._signatures.get(c.key) != _signature(c):
                out.append(c)
        return out

    def build(self, clips: Iterable[Clip], strict: bool = False, progress: bool = True) -> int:
        """Decode and store every missing clip; returns how many were decoded. Undecodable files
        are skipped with one warning each (an error with `strict`) and remembered as failed."""
        clips = list(clips)
        if not self.missing(clips):
            return 0
        self.dir.mkdir(parents=True, exist_ok=True)
        # one builder at a time (torchrun ranks, parallel jobs): the others wait, then find the
        # clips already cached by the first and decode nothing
        with open(self.dir / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                self._reload()
                return self._build_locked(self.missing(clips), strict, progress)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def _reload(self) -> None:
        self.entries, self.failed, self._maps, self._signatures = {}, {}, {}, {}
        self._load_chunks()

    def _build_locked(self, todo: list[Clip], strict: bool, progress: bool) -> int:
        if not todo:
            return 0
        cid = (self._chunk_ids() or [-1])[-1] + 1
        data_path = self.dir / f"chunk-{cid:04d}.i16"
        source = AudioSource(self.index, self.sample_rate)
        meta: dict[str, dict] = {"clips": {}, "failed": {}}
        offset = 0
        tmp = data_path.with_suffix(".i16.partial")
        with open(tmp, "wb") as fh:
            for clip in tqdm(todo, desc=f"caching {self.index.name} @ {self.sample_rate} Hz",
                             unit="clip", disable=not progress, leave=False):
                try:
                    wave = source.get(clip)
                except AudioDecodeError as exc:
                    if strict:
                        raise
                    log.warning("skipping %s", exc)
                    meta["failed"][clip.key] = str(exc)
                    continue
                pcm = np.clip(np.round(wave * 32767.0), -32768, 32767).astype("<i2")
                fh.write(pcm.tobytes())
                meta["clips"][clip.key] = [offset, int(pcm.size), *_signature(clip)]
                offset += int(pcm.size)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, data_path)
        meta["total"] = offset
        write_json(self.dir / f"chunk-{cid:04d}.json", meta)
        if meta["failed"]:
            log.warning("%d of %d files could not be decoded and are skipped",
                        len(meta["failed"]), len(todo))
        self._reload()
        return len(todo)

    def _map(self, chunk: int) -> np.memmap:
        if chunk not in self._maps:
            path = self.dir / f"chunk-{chunk:04d}.i16"
            self._maps[chunk] = np.memmap(path, dtype="<i2", mode="r")
        return self._maps[chunk]

    def has(self, clip: Clip) -> bool:
        return clip.key in self.entries

    def get(self, clip: Clip) -> np.ndarray:
        e = self.entries.get(clip.key)
        if e is None:
            raise KeyError(f"{clip.key} is not in the cache at {self.dir}; build it first")
        pcm = self._map(e.chunk)[e.offset:e.offset + e.length]
        return pcm.astype(np.float32) / 32767.0

    def __getstate__(self) -> dict:
        # memmaps are reopened lazily in DataLoader worker processes
        state = self.__dict__.copy()
        state["_maps"] = {}
        return state
