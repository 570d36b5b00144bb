"""Errors that are the user's to fix: the CLI prints them without a traceback and exits non-zero."""

from __future__ import annotations

import re
from collections.abc import Mapping


_NAME = re.compile(r"`(\w+)`")


def render_names(template: str, names: Mapping[str, str] | None = None) -> str:
    """`template` with each backticked argument name replaced by names[name] (itself by default)."""
    names = names or {}
    return _NAME.sub(lambda m: names.get(m.group(1), m.group(1)), template)


class UserError(Exception):
    """A bad file, option or data tree; the message says which and what to do.

    Options are named in backticks as the Python API / recipe keys spell them (``data_root``);
    ``str(exc)`` shows them plainly and the command line renders its flags (``--data-root``).
    """

    def __init__(self, template: str = "", *args: object) -> None:
        self.template = str(template)
        super().__init__(render_names(self.template), *args)

    def render(self, names: Mapping[str, str] | None = None) -> str:
        return render_names(self.template, names)


class AudioDecodeError(UserError):
    """An audio file that cannot be decoded into finite samples."""


class TrainingDiverged(UserError, FloatingPointError):
    """The loss became NaN/Inf: a setting (usually the learning rate) to change, not a bug."""


class ArgumentError(ValueError):
    """A bad argument of a library call, raised by the library (never by the CLI).

    The message is a template in which argument names are written in backticks, e.g.
    ``ArgumentError("`ratio` must be in [0, 1), got 1.5")``. ``str(exc)`` shows them as the
    Python API spells them ("ratio must be ..."); the command line renders its own flag names
    instead (``exc.render({"ratio": "--ratio"})``), so library code never names a CLI flag.
    """

    def __init__(self, template: str) -> None:
        self.template = template
        super().__init__(render_names(template))

    @property
    def arguments(self) -> list[str]:
        """The argument names the message mentions, in order."""
        return _NAME.findall(self.template)

    def render(self, names: Mapping[str, str] | None = None) -> str:
        """The message with each `name` replaced by names[name] (itself when not given)."""
        return render_names(self.template, names)


class ArgumentTypeError(ArgumentError, TypeError):
    """An argument of the wrong type (a string where a module was expected, ...)."""
