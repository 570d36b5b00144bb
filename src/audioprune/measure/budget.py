"""Complexity by a challenge's rules, and budgets to check or prune to.

The DCASE Task 1 low-complexity track (2022-2025) limits a system to 128 kB of parameter memory
at the precision it is deployed in (int8: one byte a parameter; zeros count, so pruned-to-zero
weights in a dense tensor still cost) and 30 million MACs for ONE SECOND of audio. Our MACs are per
example of the model's clip length, so MACs per second = MACs per example / clip seconds. 128 kB is
taken as 128,000 bytes.

    budget = parse_budget("dcase2024")                      # or "params_bytes=128k,macs=30M"
    c = complexity(params, macs, clip_seconds=1.0, precision="int8")
    ok, lines = check_budget(budget, c)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from audioprune.errors import ArgumentError

__all__ = ["BUDGETS", "BYTES_PER_PARAM", "Budget", "check_budget", "complexity", "parse_budget",
           "targets_for"]

BYTES_PER_PARAM = {"fp32": 4, "fp16": 2, "int8": 1}


@dataclass(frozen=True)
class Budget:
    """Parameter memory in bytes and MACs per second of audio (None: no limit on it)."""

    name: str
    params_bytes: int | None
    macs_per_second: int | None

    def describe(self) -> str:
        parts = []
        if self.params_bytes is not None:
            parts.append(f"{self.params_bytes / 1e3:g} kB of parameters")
        if self.macs_per_second is not None:
            parts.append(f"{self.macs_per_second / 1e6:g} MMACs per second of audio")
        return f"{self.name}: " + " and ".join(parts)


_DCASE = (128_000, 30_000_000)
BUDGETS = {f"dcase{year}": Budget(f"dcase{year}", *_DCASE) for year in (2022, 2023, 2024, 2025)}
_SUFFIX = {"": 1, "k": 10**3, "m": 10**6, "g": 10**9}


def _count(text: str, what: str) -> int:
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([kKmMgG]?)\s*", text)
    if not m:
        raise ArgumentError(f"`budget` {what}={text!r} is not a number like 128k or 30M")
    return round(float(m.group(1)) * _SUFFIX[m.group(2).lower()])


def parse_budget(text: str) -> Budget:
    """'dcase2024' (also 2022, 2023, 2025) or 'params_bytes=128k,macs=30M' (MACs per second)."""
    text = str(text).strip()
    if text in BUDGETS:
        return BUDGETS[text]
    fields: dict[str, int] = {}
    for item in [t for t in text.split(",") if t.strip()]:
        if "=" not in item:
            raise ArgumentError(f"`budget` {text!r}: give a name ({', '.join(BUDGETS)}) or "
                            f"params_bytes=...,macs=... (MACs per second of audio)")
        key, value = (x.strip() for x in item.split("=", 1))
        if key not in ("params_bytes", "macs"):
            raise ArgumentError(f"`budget` {text!r}: unknown limit {key!r}; use params_bytes and macs")
        fields[key] = _count(value, key)
    if not fields:
        raise ArgumentError(f"`budget` {text!r} sets no limit")
    return Budget("custom", fields.get("params_bytes"), fields.get("macs"))


def complexity(params: int, macs: int, clip_seconds: float | None, precision: str = "int8"
               ) -> dict[str, Any]:
    """Parameter memory at `precision` (zeros counted) and MACs per second of audio."""
    if precision not in BYTES_PER_PARAM:
        raise ArgumentError(f"unknown `precision` {precision!r}; choose from {', '.join(BYTES_PER_PARAM)}")
    seconds = clip_seconds or 1.0
    return {"precision": precision, "params": params,
            "params_bytes": params * BYTES_PER_PARAM[precision], "macs_per_example": macs,
            "clip_seconds": seconds, "macs_per_second": round(macs / seconds)}


def check_budget(budget: Budget, c: dict[str, Any]) -> tuple[bool, list[str]]:
    """(within every limit, one line per limit with the numbers)."""
    ok, lines = True, []
    for key, limit in (("params_bytes", budget.params_bytes), ("macs_per_second", budget.macs_per_second)):
        if limit is None:
            continue
        passed = c[key] <= limit
        ok &= passed
        what = (f"{c[key]:,} B of {c['precision']} parameters" if key == "params_bytes"
                else f"{c[key]:,} MACs per second of audio")
        lines.append(f"{'pass' if passed else 'FAIL'}: {what} " +
                     (f"<= {limit:,}" if passed else f"> {limit:,} ({c[key] / limit:.2f}x)"))
    return ok, lines


def targets_for(budget: Budget, clip_seconds: float | None, precision: str = "int8"
                ) -> dict[str, int]:
    """The budget as pruning targets for a model: parameters (at `precision`) and MACs per
    example (per second x clip seconds)."""
    out: dict[str, int] = {}
    if budget.params_bytes is not None:
        out["target_params"] = budget.params_bytes // BYTES_PER_PARAM[precision]
    if budget.macs_per_second is not None:
        out["target_macs"] = int(budget.macs_per_second * (clip_seconds or 1.0))
    return out
