"""A registry of dataset layouts: name -> loader that turns a data root into a DatasetIndex."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

from audioprune.audio.frontend import FrontEndConfig
from audioprune.data.types import DatasetIndex
from audioprune.errors import UserError


class Loader(Protocol):
    def __call__(self, root: Path | None, **options: Any) -> DatasetIndex: ...


@dataclass(frozen=True)
class DatasetInfo:
    """A dataset layout: how to load it, what it looks like on disk, and sensible defaults."""

    name: str
    loader: Loader
    description: str  # one line
    layout: str  # the expected tree, shown by `audioprune datasets`
    frontend: FrontEndConfig  # default front end (sample rate, clip length, mels)
    needs_root: bool = True


_REGISTRY: dict[str, DatasetInfo] = {}


def register_dataset(name: str, *, description: str, layout: str, frontend: FrontEndConfig,
                     needs_root: bool = True) -> Callable[[Loader], Loader]:
    def wrap(fn: Loader) -> Loader:
        if name in _REGISTRY:
            raise ValueError(f"dataset {name!r} registered twice")
        _REGISTRY[name] = DatasetInfo(name, fn, description, layout, frontend, needs_root)
        return fn
    return wrap


def _ensure_loaded() -> None:
    # Importing the package registers every built-in layout.
    import audioprune.data.datasets  # noqa: F401


def list_datasets() -> list[DatasetInfo]:
    _ensure_loaded()
    return [_REGISTRY[k] for k in sorted(_REGISTRY)]


def get_dataset_info(name: str) -> DatasetInfo:
    _ensure_loaded()
    if name not in _REGISTRY:
        raise UserError(f"unknown dataset {name!r}; choose one of {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[name]


# The loader options that choose a split; every loader takes them (and refuses those it does not use).
SPLIT_OPTIONS = ("split", "test_fold", "val_fold", "subset", "split_file", "val_fraction")


def load_dataset(name: str, root: str | Path | None = None, *, skip_missing: bool = False,
                 **options: Any) -> DatasetIndex:
    """Resolve dataset `name` under `root` with loader `options` (split, test_fold, subset, ...).

    A file its metadata lists but the disk lacks is an error naming it; with `skip_missing` it is
    left out and recorded in `index.missing` (and a note) instead."""
    if skip_missing:
        from audioprune.data.tables import skipping_missing

        with skipping_missing() as missing:
            index = load_dataset(name, root, **options)
        if missing:
            index.missing = [key for _, _, key in missing]
            index.notes.append(f"{len(missing)} listed file(s) missing on disk were left out "
                               f"(skip_missing): {', '.join(index.missing[:5])}"
                               f"{' ...' if len(missing) > 5 else ''}")
        return index
    info = get_dataset_info(name)
    if info.needs_root:
        if root is None:
            raise UserError(f"dataset {name!r} needs `data_root` pointing at:\n{info.layout}")
        root = Path(root)
        if not root.is_dir():
            raise UserError(f"`data_root` {root} is not a directory; dataset {name!r} expects:\n"
                            f"{info.layout}")
    try:
        return info.loader(None if root is None else Path(root), **options)
    except TypeError as exc:
        if "unexpected keyword argument" not in str(exc):
            raise
        bad = str(exc).split("argument")[-1].strip(" '")
        raise UserError(f"dataset {name!r} has no option {bad!r}") from exc
