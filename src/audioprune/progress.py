"""Progress bars that draw only where someone watches them: on a terminal.

tqdm writes its bar to stderr with carriage returns; into a log file, a pipe or CI output that
is one line per update. :func:`progress_bar` is tqdm, off when the caller turns it off
(``--no-progress``, ``progress=False``) and off when stderr is not a terminal - unless the
environment forces it: ``AUDIOPRUNE_PROGRESS=1`` draws bars anyway (a terminal multiplexer that
does not look like one), ``AUDIOPRUNE_PROGRESS=0`` never draws them.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from tqdm import tqdm

__all__ = ["ENV", "bars_enabled", "progress_bar"]

ENV = "AUDIOPRUNE_PROGRESS"


def bars_enabled(wanted: bool = True) -> bool:
    """Whether a bar the caller `wanted` is drawn: the environment's choice where it makes one,
    else only on a terminal."""
    forced = os.environ.get(ENV, "").strip().lower()
    if forced in ("0", "false", "no", "off"):
        return False
    if not wanted:
        return False
    if forced in ("1", "true", "yes", "on"):
        return True
    stream = sys.stderr
    return bool(stream is not None and hasattr(stream, "isatty") and stream.isatty())


def progress_bar(iterable: Any = None, *, enabled: bool = True, **kwargs: Any) -> tqdm:
    """``tqdm(iterable, **kwargs)``, drawn only when :func:`bars_enabled` says so."""
    return tqdm(iterable, disable=not bars_enabled(enabled), **kwargs)
