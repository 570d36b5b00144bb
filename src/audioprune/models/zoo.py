"""Imports every model family module in audioprune.models so that each registers itself."""

import importlib
import pkgutil

import audioprune.models as _pkg

_SKIP = {"base", "registry", "zoo"}
for _mod in pkgutil.iter_modules(_pkg.__path__):
    if _mod.name not in _SKIP:
        importlib.import_module(f"audioprune.models.{_mod.name}")
