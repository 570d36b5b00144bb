"""Which layers a plan prunes: names, glob patterns (``block4.*``) or the papers' aliases.

``C<k>`` is the k-th prunable CONVOLUTION in model order (1-based), as the papers number them:
dcase21net's C1, C2, C3 are conv1, conv2, conv3; CNN14's C7-C12 are block4.conv1 .. block6.conv2
(the QCNN paper's "last three blocks"). ``C7-C12`` is a range.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping, Sequence
from typing import Any

from audioprune.errors import ArgumentError

__all__ = ["is_alias", "is_pattern", "layer_aliases", "match_layers", "resolve_layers"]

_ALIAS = re.compile(r"[cC]\d+(\s*-\s*[cC]\d+)?")


def is_alias(text: str) -> bool:
    """A C<k> or C<i>-C<j> alias of the prunable convolutions."""
    return _ALIAS.fullmatch(text) is not None


def is_pattern(text: str) -> bool:
    """A glob pattern (``block4.*``, ``conv?``, ``fc[12]``)."""
    return any(ch in text for ch in "*?[")


def layer_aliases(layers: Mapping[str, Any]) -> dict[str, str]:
    """{'C1': first prunable conv, 'C2': second, ...} in model order."""
    convs = [name for name, layer in layers.items() if getattr(layer, "kind", "conv") == "conv"]
    return {f"C{i}": name for i, name in enumerate(convs, start=1)}


def match_layers(pattern: str, names: Sequence[str], aliases: Mapping[str, str]) -> list[str]:
    """The names of `names` that `pattern` selects - an exact name, a glob pattern, or a C<k> /
    C<i>-C<j> alias of `aliases` - in the order of `names` (an alias's: model order)."""
    rng = re.fullmatch(r"[cC](\d+)\s*-\s*[cC](\d+)", pattern)
    if rng:
        lo, hi = int(rng.group(1)), int(rng.group(2))
        picked = [aliases.get(f"C{k}") for k in range(min(lo, hi), max(lo, hi) + 1)]
        return [] if None in picked else list(dict.fromkeys(p for p in picked if p))
    if re.fullmatch(r"[cC]\d+", pattern) and pattern not in names:
        alias = aliases.get(pattern.upper())
        return [alias] if alias else []
    if is_pattern(pattern):
        return [n for n in names if fnmatch.fnmatchcase(n, pattern)]
    return [pattern] if pattern in names else []


def resolve_layers(patterns: Sequence[str] | None, layers: Mapping[str, Any],
                   skipped: Mapping[str, str] | None = None,
                   module_names: Sequence[str] = ()) -> list[str]:
    """Prunable layer names selected by `patterns` (all of them when None), in model order.

    Unknown names or patterns that select nothing raise ArgumentError listing the prunable layers.
    """
    names = list(layers)
    if patterns is None:
        return names
    aliases = layer_aliases(layers)
    chosen: set[str] = set()
    for pat in patterns:
        hit = match_layers(pat, names, aliases)
        if not hit:
            if skipped and pat in skipped:
                raise ArgumentError(f"`layers`: {pat} is left alone because {skipped[pat]}; "
                                    f"prunable layers: {', '.join(names)}")
            why = "is not a prunable layer" if pat in module_names else "matches no prunable layer"
            alias_note = (f" (aliases C1-C{len(aliases)}: " +
                          ", ".join(f"{a}={n}" for a, n in list(aliases.items())[:6]) +
                          (", ..." if len(aliases) > 6 else "") + ")") if aliases else ""
            raise ArgumentError(f"`layers`: {pat!r} {why}; prunable layers: "
                                f"{', '.join(names)}{alias_note}")
        chosen.update(hit)
    return [n for n in names if n in chosen]
