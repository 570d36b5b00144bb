"""Decoded, resampled audio stored once on disk, so an epoch never re-decodes a file.

A cache directory is keyed by a hash of (dataset name, data root, sample rate, format version).
Inside it, each build writes one chunk: `chunk-NNN.i16` (all clips' samples concatenated as
int16, memory-mapped on read, as PANNs stores AudioSet) and `chunk-NNN.json` (key -> offset,
length, source file size and mtime; undecodable files with the reason and their size and mtime).
The JSON is renamed into place after the data is complete, so a killed build leaves no
half-valid chunk. A later build decodes only clips that are missing or whose source file changed
(size or mtime) -- a fixed file that failed before is tried again -- and later chunks win.

Stereo (``channels=2``, for the quaternion (mid, side, left, right) input) is a separate cache
keyed by the channel count, its frames stored interleaved (L0 R0 L1 R1 ...) as WAV does; a mono
file there is duplicated to both channels and a file with more than two keeps its first two.
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

from audioprune.audio.io import load_audio
from audioprune.data.types import Clip, DatasetIndex
from audioprune.errors import AudioDecodeError, UserError
from audioprune.fileio import write_json
from audioprune.progress import progress_bar

log = logging.getLogger(__name__)
CACHE_FORMAT = 1


def default_cache_dir() -> Path:
    return Path(os.environ.get("AUDIOPRUNE_CACHE", Path.home() / ".cache" / "audioprune"))


def _signature(clip: Clip) -> tuple[int, int]:
    if clip.path is None:
        return (0, 0)
    try:
        st = clip.path.stat()
    except OSError:  # missing or a broken link: decoding will say so
        return (-1, -1)
    return (st.st_size, st.st_mtime_ns)


class AudioSource:
    """Decodes a clip on every call: the no-cache path (and what the cache is built from)."""

    def __init__(self, index: DatasetIndex, sample_rate: int, channels: int = 1) -> None:
        if channels not in (1, 2):
            raise ValueError(f"channels must be 1 (mono) or 2 (stereo), got {channels}")
        self.index = index
        self.sample_rate = sample_rate
        self.channels = channels

    def get(self, clip: Clip) -> np.ndarray:
        """float32 (samples,) for mono, (2, samples) for stereo."""
        if self.index.render is not None:
            wave = self.index.render(clip, self.sample_rate)
        elif clip.path is None:
            raise UserError(f"clip {clip.key} has no file and dataset {self.index.name} no renderer")
        else:
            wave = load_audio(clip.path, self.sample_rate, mono=self.channels == 1)
        if self.channels == 2:
            wave = np.atleast_2d(wave)
            wave = np.concatenate([wave, wave]) if wave.shape[0] == 1 else wave[:2]
        # clipped to [-1, 1] as the int16 cache stores it: a float file with huge (finite) samples
        # would otherwise overflow the log-mel power to inf
        return np.clip(wave, -1.0, 1.0)

    def check(self, clips: Iterable[Clip], strict: bool = False,
              progress: bool = True) -> dict[str, str]:
        """Decode every file once (native rate, no resampling) so that training without a cache
        never meets a bad file mid-epoch; returns {key: reason} of the undecodable ones."""
        failed: dict[str, str] = {}
        if self.index.render is not None:
            return failed
        for clip in progress_bar(list(clips), desc=f"checking {self.index.name}", unit="clip",
                                 enabled=progress, leave=False):
            try:
                if clip.path is None:
                    raise AudioDecodeError(f"clip {clip.key} has no file")
                load_audio(clip.path)
            except AudioDecodeError as exc:
                if strict:
                    raise
                failed[clip.key] = str(exc)
        return failed


@dataclass
class _Entry:
    chunk: int
    offset: int
    length: int


class AudioCache:
    """Memory-mapped waveforms for a dataset at one sample rate. `get(clip)` returns float32."""

    def __init__(self, index: DatasetIndex, sample_rate: int, cache_dir: Path | None = None,
                 root: Path | None = None, channels: int = 1) -> None:
        self.index = index
        self.sample_rate = sample_rate
        self.channels = channels
        key = {"dataset": index.name, "root": str(root.resolve()) if root else None,
               "sample_rate": sample_rate, "format": CACHE_FORMAT}
        if channels != 1:  # mono keeps the key it always had: existing caches stay valid
            key["channels"] = channels
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
        tag = "" if channels == 1 else f"-{channels}ch"
        self.dir = (cache_dir or default_cache_dir()) / f"{index.name}-{sample_rate}hz{tag}-{digest}"
        self.entries: dict[str, _Entry] = {}
        self.failed: dict[str, str] = {}  # key -> why it could not be decoded
        self._maps: dict[int, np.memmap] = {}
        self._signatures: dict[str, tuple[int, int]] = {}
        self._failed_signatures: dict[str, tuple[int, int]] = {}
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
                total = int(meta["total"])
                clips = {k: _Entry(cid, int(o), int(n)) for k, (o, n, _, _) in meta["clips"].items()}
                signatures = {k: (int(v[2]), int(v[3])) for k, v in meta["clips"].items()}
                failed = {str(k): str(v) for k, v in meta.get("failed", {}).items()}
                failed_sigs = {k: tuple(v) for k, v in meta.get("failed_signatures", {}).items()}
            except (ValueError, KeyError, TypeError, AttributeError):
                log.warning("ignoring unreadable cache index %s", meta_path)
                continue
            if not data_path.is_file() or data_path.stat().st_size != 2 * total:
                log.warning("ignoring cache chunk %s: data file missing or truncated", data_path)
                continue
            for key, entry in clips.items():
                self.entries[key] = entry
                self._signatures[key] = signatures[key]
                self.failed.pop(key, None)  # fixed since an earlier chunk
            for key, reason in failed.items():
                self.failed[key] = reason
                self.entries.pop(key, None)  # broken since an earlier chunk: never serve stale audio
                # chunks from before failed_signatures existed: (0, 0) makes the file be tried again
                self._failed_signatures[key] = failed_sigs.get(key, (0, 0))  # type: ignore[assignment]

    def missing(self, clips: Iterable[Clip]) -> list[Clip]:
        """Clips not cached, or whose source file changed since they were cached."""
        out = []
        for c in clips:
            if c.key in self.failed:
                if self._failed_signatures.get(c.key) != _signature(c):
                    out.append(c)  # the file changed since it failed: try it again
                continue
            if c.key not in self.entries or self._signatures.get(c.key) != _signature(c):
                out.append(c)
        return out

    def skipped(self, clips: Iterable[Clip]) -> dict[str, str]:
        """{key: reason} for the clips among `clips` that could not be decoded."""
        return {c.key: self.failed[c.key] for c in clips if c.key in self.failed}

    def build(self, clips: Iterable[Clip], strict: bool = False, progress: bool = True) -> int:
        """Decode and store every missing clip; returns how many were decoded. Undecodable files
        are skipped and remembered as failed (`skipped()` says which and why); with `strict` any
        undecodable file among `clips`, found now or by an earlier build, is an AudioDecodeError."""
        clips = list(clips)
        if not self.missing(clips):
            self._raise_if_strict(clips, strict)
            return 0
        self.dir.mkdir(parents=True, exist_ok=True)
        # one builder at a time (torchrun ranks, parallel jobs): the others wait, then find the
        # clips already cached by the first and decode nothing
        with open(self.dir / ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                self._reload()
                built = self._build_locked(self.missing(clips), strict, progress)
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
        self._raise_if_strict(clips, strict)
        return built

    def _raise_if_strict(self, clips: list[Clip], strict: bool) -> None:
        bad = self.skipped(clips)
        if strict and bad:
            shown = "\n  ".join(list(bad.values())[:5])
            raise AudioDecodeError(f"{len(bad)} undecodable file(s) and `strict`:\n  {shown}")

    def _reload(self) -> None:
        self.entries, self.failed, self._maps, self._signatures = {}, {}, {}, {}
        self._failed_signatures = {}
        self._load_chunks()

    def _build_locked(self, todo: list[Clip], strict: bool, progress: bool) -> int:
        if not todo:
            return 0
        cid = (self._chunk_ids() or [-1])[-1] + 1
        data_path = self.dir / f"chunk-{cid:04d}.i16"
        source = AudioSource(self.index, self.sample_rate, self.channels)
        meta: dict[str, dict] = {"clips": {}, "failed": {}, "failed_signatures": {}}
        offset = 0
        tmp = data_path.with_suffix(".i16.partial")
        with open(tmp, "wb") as fh:
            for clip in progress_bar(todo, desc=f"caching {self.index.name} @ "
                                     f"{self.sample_rate} Hz", unit="clip", enabled=progress,
                                     leave=False):
                try:
                    wave = source.get(clip)
                except AudioDecodeError as exc:
                    if strict:
                        raise
                    meta["failed"][clip.key] = str(exc)
                    meta["failed_signatures"][clip.key] = list(_signature(clip))
                    continue
                frames = wave.T if wave.ndim == 2 else wave  # stereo: interleaved L R L R ...
                pcm = np.clip(np.round(frames * 32767.0), -32768, 32767).astype("<i2")
                fh.write(pcm.tobytes())
                meta["clips"][clip.key] = [offset, int(pcm.size), *_signature(clip)]
                offset += int(pcm.size)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, data_path)
        meta["total"] = offset
        write_json(self.dir / f"chunk-{cid:04d}.json", meta)
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
        wave = pcm.astype(np.float32) / 32767.0
        return wave.reshape(-1, self.channels).T.copy() if self.channels > 1 else wave

    def __getstate__(self) -> dict:
        # memmaps are reopened lazily in DataLoader worker processes
        state = self.__dict__.copy()
        state["_maps"] = {}
        return state
