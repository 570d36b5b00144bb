"""What a user writes for a plan, read the same way at every edge (API, CLI, recipes).

A budget (`target_macs`, `target_params`) is either
  a fraction of the model's own   strictly between 0 and 1: 0.5, "0.5", "50%", 1e-3
  a count                          a whole number >= 1: 46246, "46246", "30M", "128k", "1.5G",
                                   30e6 (a float with no fractional part)
and nothing else: 1.0 (or "100%") keeps the whole model, so it is refused as "nothing to prune";
1.5 is neither a fraction nor a whole count. Every refusal says the same thing, naming the
argument, so `--target-macs 1.5`, `target_macs: 1.5` and ``target_macs=1.5`` read alike.
A pruning ratio is the fraction of filters removed, in [0, 1).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any

from audioprune.errors import ArgumentError

__all__ = ["check_ratio", "parse_count", "parse_layers", "parse_ratios", "parse_target"]

_SUFFIX = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9}
_NUMBER = r"[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?"
_COUNT = re.compile(rf"\s*({_NUMBER})\s*([kKmMgG]?)\s*")
_PERCENT = re.compile(rf"\s*({_NUMBER})\s*%\s*")


def _budget_error(what: str, value: Any, why: str = "") -> ArgumentError:
    return ArgumentError(f"`{what}` {value!r}{': ' + why if why else ''}; give a fraction of the "
                         f"model's own in (0, 1), such as 0.5 or 50%, or a count >= 1, such as "
                         f"30M, 128k or 46246")


def _count(value: float, what: str, given: Any) -> int:
    if value < 1 or value != math.floor(value):
        raise _budget_error(what, given, "a count must be a whole number >= 1")
    return int(value)


def parse_target(value: Any, what: str) -> int | float:
    """A budget as a fraction (float in (0, 1)) or a count (int >= 1); see the module doc."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise _budget_error(what, value)
    if isinstance(value, int):
        return _count(value, what, value)
    if isinstance(value, float):
        number, suffix, percent = value, "", False
    else:
        text = value.strip()
        if text.startswith("-"):
            raise _budget_error(what, value, "it must be positive")
        if m := _PERCENT.fullmatch(text):
            number, suffix, percent = float(m.group(1)), "", True
        elif m := _COUNT.fullmatch(text):
            number, suffix, percent = float(m.group(1)), m.group(2).lower(), False
            if not suffix and re.fullmatch(r"[0-9]+", m.group(1)):
                return _count(number, what, value)  # "46246": an integer, a count
        else:
            raise _budget_error(what, value, "not a number")
    if math.isnan(number) or math.isinf(number) or number <= 0:
        raise _budget_error(what, value, "it must be positive")
    if suffix:
        return _count(number * _SUFFIX[suffix], what, value)
    fraction = number / 100 if percent else number
    if fraction < 1:
        return fraction
    if fraction == 1:
        raise _budget_error(what, value, "that keeps the whole model: nothing to prune")
    if percent:
        raise _budget_error(what, value, "a percentage of the model's own must be below 100%")
    return _count(number, what, value)  # 30e6: a count written as a float


def parse_count(text: str | float, what: str = "count") -> int:
    """A count (no fractions): '30M' -> 30_000_000, '128k' -> 128_000, '1.5G', '46246'."""
    if isinstance(text, (int, float)) and not isinstance(text, bool):
        return _count(float(text), what, text)
    m = _COUNT.fullmatch(str(text))
    if not m:
        raise ArgumentError(f"`{what}` {text!r} is not a number like 30M, 128k or 46246")
    return _count(float(m.group(1)) * _SUFFIX[m.group(2).lower()], what, text)


def check_ratio(r: Any, what: str, layer: str = "") -> float:
    """A fraction of filters removed, in [0, 1) (every layer keeps at least one filter)."""
    name = f"`{what}` {layer}" if layer else f"`{what}`"
    if isinstance(r, bool):
        raise ArgumentError(f"{name} must be a number in [0, 1), got {r!r}")
    try:
        r = float(r)
    except (TypeError, ValueError):
        raise ArgumentError(f"{name} must be a number in [0, 1), got {r!r}") from None
    if not (0.0 <= r < 1.0) or math.isnan(r):
        raise ArgumentError(f"{name} must be in [0, 1) (the fraction of filters removed; a layer "
                            f"always keeps at least one), got {r}")
    return r


def parse_ratios(text: str) -> dict[str, float]:
    """'conv1=0.5,conv2=0.25' (keys may be patterns or aliases) -> {'conv1': 0.5, 'conv2': 0.25}."""
    out: dict[str, float] = {}
    for item in [t.strip() for t in str(text).split(",") if t.strip()]:
        if "=" not in item:
            raise ArgumentError(f"`ratios` entry {item!r} must look like LAYER=RATIO, e.g. conv1=0.5")
        key, raw = item.split("=", 1)
        try:
            value = float(raw)
        except ValueError:
            raise ArgumentError(f"`ratios` {key.strip()}: {raw!r} is not a number") from None
        out[key.strip()] = check_ratio(value, "ratios", key.strip())
    if not out:
        raise ArgumentError("`ratios` is empty; give LAYER=RATIO pairs, e.g. conv1=0.5,conv2=0.5")
    return out


def parse_layers(text: str | Sequence[str] | None) -> list[str] | None:
    """'conv1, block4.*' or a list -> the names and patterns (None: every prunable layer)."""
    if text is None:
        return None
    items = text.split(",") if isinstance(text, str) else list(text)
    items = [t.strip() for t in items if t.strip()]
    return items or None
