"""Broken audio files as real datasets hold them, written with soundfile, numpy or raw bytes.

BAD_FILES maps a case name to (writer, regex the AudioDecodeError message must match). Every
writer takes the destination path (a .wav or .flac name) and leaves a file (or link) there.
"""

from __future__ import annotations

import zlib
from pathlib import Path
from typing import Callable

import numpy as np
import soundfile as sf

SR = 8000


def noise(path: Path, seconds: float = 0.3, sr: int = SR, channels: int = 1) -> Path:
    """Quiet noise seeded by the file name (a valid file)."""
    rng = np.random.default_rng(zlib.crc32(path.name.encode()))
    shape = (int(sr * seconds), channels) if channels > 1 else int(sr * seconds)
    sf.write(str(path), (0.1 * rng.standard_normal(shape)).astype(np.float32), sr,
             subtype="PCM_16" if path.suffix == ".wav" else None)
    return path


def _empty_data_chunk(p: Path) -> None:
    sf.write(str(p), np.zeros(0, np.float32), SR, subtype="PCM_16")  # a 44-byte header, no data


def _zero_bytes(p: Path) -> None:
    p.write_bytes(b"")


def _truncated(p: Path) -> None:  # a download cut off half-way: the header promises 1 s
    noise(p, 1.0)
    p.write_bytes(p.read_bytes()[: 44 + SR])


def _truncated_flac(p: Path) -> None:
    tmp = p.with_name(p.stem + "-full.flac")
    noise(tmp, 1.0)
    p.write_bytes(tmp.read_bytes()[: tmp.stat().st_size // 2])
    tmp.unlink()


def _corrupt_header(p: Path) -> None:
    p.write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunk")


def _random_bytes(p: Path) -> None:
    p.write_bytes(np.random.default_rng(1).integers(0, 256, 4000, dtype=np.uint8).tobytes())


def _unsupported_format(p: Path) -> None:  # an MP4/AAC container, which libsndfile does not read
    p.write_bytes(b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + bytes(2000))


def _text(p: Path) -> None:
    p.write_text("this is not audio\n" * 50)


def _float_with(value: float) -> Callable[[Path], None]:
    def write(p: Path) -> None:
        x = (0.1 * np.random.default_rng(2).standard_normal(SR)).astype(np.float32)
        x[123] = value
        sf.write(str(p), x, SR, subtype="FLOAT")
    return write


def _silent(p: Path) -> None:
    sf.write(str(p), np.zeros(SR, np.float32), SR, subtype="PCM_16")


def _broken_link(p: Path) -> None:
    p.symlink_to(p.parent / "no-such-file.wav")


def _directory(p: Path) -> None:
    p.mkdir()


BAD_FILES: dict[str, tuple[Callable[[Path], None], str]] = {
    "empty data chunk": (_empty_data_chunk, "holds no samples"),
    "zero bytes": (_zero_bytes, "cannot decode audio"),
    "truncated wav": (_truncated, r"truncated: the header declares 16,000 bytes"),
    "truncated flac": (_truncated_flac, "cannot decode audio"),
    "corrupt header": (_corrupt_header, "cannot decode audio"),
    "random bytes": (_random_bytes, "cannot decode audio"),
    "unsupported format": (_unsupported_format, "cannot decode audio"),
    "text file": (_text, "cannot decode audio"),
    "NaN sample": (_float_with(float("nan")), "NaN or Inf"),
    "Inf sample": (_float_with(float("inf")), "NaN or Inf"),
    "all silent": (_silent, "digital silence"),
    "broken link": (_broken_link, "broken link"),
    "directory": (_directory, r"is a directory, not an audio file; pass the audio files it holds"),
}


def write_bad(path: Path, case: str) -> Path:
    BAD_FILES[case][0](path)
    return path
