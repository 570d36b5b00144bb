"""Built-in dataset layouts, one module each; importing this package registers all of them."""

import importlib
import pkgutil

for _mod in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_mod.name}")
