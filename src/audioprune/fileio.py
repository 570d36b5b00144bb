"""Atomic writes: a crash or kill leaves either the old file or the new one, never half of one."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch
from safetensors.torch import load_file, save_file


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp makes 0600 files; the renamed file gets the mode a plain open() would have given it,
# so a run directory stays readable by whoever may read the folder
_FILE_MODE = 0o666 & ~_umask()


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> None:
    """Call `write(tmp)` on a temp file beside `path`, fsync it, then rename it over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        write(tmp_path)
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp_path, _FILE_MODE)
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def is_atomic_temp(path: Path) -> bool:
    """Whether `path` is the name pattern of an `atomic_write` temp file (".NAME.*.tmp")."""
    return path.name.startswith(".") and path.name.endswith(".tmp")


def remove_stale_temps(directory: str | Path) -> list[Path]:
    """Delete the temp files a killed `atomic_write` left under `directory` (".NAME.*.tmp");
    call it only when no other process writes there (e.g. on --resume). Returns what went."""
    gone = []
    for tmp in Path(directory).rglob(".*.tmp"):
        if tmp.is_file():
            tmp.unlink(missing_ok=True)
            gone.append(tmp)
    return gone


def file_sha256(path: str | Path) -> str:
    """The sha256 of a file's bytes, read in 1 MiB blocks (checkpoints can be GBs)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_json(path: str | Path, obj: Any) -> None:
    text = json.dumps(obj, indent=2, sort_keys=False, default=_jsonable) + "\n"
    atomic_write(path, lambda p: p.write_text(text))


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


def write_tensors(path: str | Path, tensors: dict[str, torch.Tensor],
                  metadata: dict[str, str] | None = None) -> None:
    """safetensors, atomically; tensors are made contiguous and detached (shared storage is fine)."""
    clean = {k: v.detach().contiguous().clone() if v.data_ptr() in _shared(tensors) else
             v.detach().contiguous() for k, v in tensors.items()}
    atomic_write(path, lambda p: save_file(clean, str(p), metadata=metadata))


def read_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    """Load safetensors: plain tensors only, nothing is unpickled."""
    return load_file(str(path))


def _shared(tensors: dict[str, torch.Tensor]) -> set[int]:
    seen: dict[int, int] = {}
    for t in tensors.values():
        seen[t.data_ptr()] = seen.get(t.data_ptr(), 0) + 1
    return {ptr for ptr, n in seen.items() if n > 1}


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist"):
        return obj.tolist()
    if hasattr(obj, "item"):
        return obj.item()
    raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")
