"""Optional dependencies: import them where they are needed, with one clear line when missing.

The core install (`pip install audioprune`) trains, prunes, distils and counts. ONNX export,
ONNX Runtime latency and plots come with the `measure` extra (`pip install 'audioprune[measure]'`),
sweeps on a Ray cluster with the `ray` extra;
every command and API call that needs one of them says which extra to install, instead of a
ModuleNotFoundError traceback.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from audioprune.errors import UserError

__all__ = ["EXTRAS", "require"]

EXTRAS = {  # module -> (pip package, extra)
    "onnx": ("onnx", "measure"),
    "onnxruntime": ("onnxruntime", "measure"),
    "onnxscript": ("onnxscript", "measure"),
    "matplotlib": ("matplotlib", "measure"),
    "ray": ("ray", "ray"),
}


def require(module: str, purpose: str) -> ModuleType:
    """`import module`, or a UserError naming the extra that provides it and what needed it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        package, extra = EXTRAS.get(module.split(".")[0], (module, None))
        how = (f"pip install 'audioprune[{extra}]'" if extra else f"pip install {package}")
        raise UserError(f"{purpose} needs {package}, which is not installed: {how}") from None
