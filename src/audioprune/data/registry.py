"""A registry of dataset layouts: name -> loader that turns a data root into a DatasetIndex."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from collections.abc import Mapping
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
    # paths (glob patterns, relative to the root) any one of which marks a tree as this layout,
    # e.g. "meta/esc50.csv": how `folder` tells a user their tree is a known dataset
    signature: tuple[str, ...] = ()
    # front-end settings read from the data itself (`folder`: clip length and sample rate),
    # used where the user gave none; (settings, what was found) - see runs/data.py
    infer_frontend: Callable[[DatasetIndex], tuple[dict[str, Any], str]] | None = None


_REGISTRY: dict[str, DatasetInfo] = {}


def register_dataset(name: str, *, description: str, layout: str, frontend: FrontEndConfig,
                     needs_root: bool = True, signature: tuple[str, ...] = (),
                     infer_frontend: Callable[[DatasetIndex], tuple[dict[str, Any], str]]
                     | None = None) -> Callable[[Loader], Loader]:
    def wrap(fn: Loader) -> Loader:
        if name in _REGISTRY:
            raise ValueError(f"dataset {name!r} registered twice")
        _REGISTRY[name] = DatasetInfo(name, fn, description, layout, frontend, needs_root,
                                      tuple(signature), infer_frontend)
        return fn
    return wrap


def inferred_frontend(name: str, index: DatasetIndex, fe: FrontEndConfig,
                      given: Mapping[str, Any]) -> tuple[FrontEndConfig, str | None]:
    """`fe` with the settings layout `name` reads from its data (`folder`: clip length, sample
    rate) where `given` (the user's front-end overrides) sets none, and one line saying what
    was found and chosen (None when nothing was inferred)."""
    info = get_dataset_info(name)
    if info.infer_frontend is None:
        return fe, None
    settings, found = info.infer_frontend(index)
    chosen = {k: v for k, v in settings.items() if k not in given and getattr(fe, k) != v}
    rate = chosen.get("sample_rate")
    if rate is not None and "fmax" in given and fe.fmax is not None and fe.fmax > rate / 2:
        del chosen["sample_rate"]  # the fmax asked for needs the layout's own rate
    if not chosen:
        return fe, None
    new = fe.overridden({**chosen, **({"fmax": fe.fmax} if "fmax" in given else {})})
    shown = ", ".join(f"{k}={v}" for k, v in chosen.items())
    if new.fmax != fe.fmax:
        shown += f", fmax={new.fmax or 'Nyquist'} ({(new.fmax or new.sample_rate / 2):g} Hz)"
    return new, (f"front end from the data ({found}): {shown} instead of the layout's "
                 f"{', '.join(f'{k}={getattr(fe, k)}' for k in chosen)}; give frontend settings "
                 f"to override")


def detect_layouts(root: Path, exclude: str | None = None) -> list[tuple[str, str]]:
    """The registered layouts `root` looks like, each as (name, the path that marks it)."""
    _ensure_loaded()
    found = []
    for name in sorted(_REGISTRY):
        if name == exclude:
            continue
        for pattern in _REGISTRY[name].signature:
            hit = next(iter(sorted(root.glob(pattern))), None) if root.is_dir() else None
            if hit is not None:
                found.append((name, hit.relative_to(root).as_posix()))
                break
    return found


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
