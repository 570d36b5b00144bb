"""Passive filter-pruning criteria: pure functions from ONE layer's weights to one score per filter.

A criterion takes a weight tensor - numpy or torch, (out, in, kh, kw) for conv2d, (out, in, k) for
conv1d, (out, in) for linear - and returns a float64 array of shape (out,). It knows nothing about
Torch-Pruning, models or data (that is the engine adapter's job), so it can be tested on random
tensors and reused for quaternion layers by aggregating the four components' scores.

THE convention: a HIGHER score means PRUNE FIRST, for every criterion. Norm criteria therefore
return the negative norm (l1 = -sum|w|), centrality criteria return the centrality itself (the
most central filters are the most replaceable), and the similarity criteria encode their greedy
order (see similarity.py). `select_prune(scores, n)` returns the n indices to remove (sorted),
`prune_order(scores)` all indices from first-to-prune to last; ties go to the LOWER index in both,
so every selection is deterministic.

    from audioprune.pruning.criteria import get_criterion, select_prune
    crit = get_criterion("betweenness", approx="knn", knn_k=16)
    remove = select_prune(crit(conv.weight), n=conv.out_channels // 4)  # indices to drop

Names (options in brackets; defaults in the module docs):
  wdc, wdc-abs, eigenvector     [representative, rank1_method, paper_compat, knn]
  betweenness                   [... + approx, knn_k, engine, tie_break]
  closeness                     [... + approx, knn_k]
  pagerank                      [... + alpha]
  similarity                    [representative, rank1_method, paper_compat]   Interspeech 2022
  similarity-nystrom            [... + m, rank, landmarks, seed]               ICASSP 2023
  l1, l2, opnorm, opnorm-paper  []
  fpgm                          [mode ('he' | 'torch-pruning'), p]
  random                        [seed]
  hrank, activation             [batches]     active: recorded feature maps (active.py)
  taylor                        [batches]     active: weights x loss gradients (active.py)
  tp-magnitude, tp-lamp, tp-fpgm [p, normalizer], tp-taylor [batches]  Torch-Pruning's group
                                                  importances, run by
                                 Torch-Pruning on a dependency group (no per-layer form)

Active criteria (``describe_criterion(name).inputs`` is "activations" or "gradients") are not
callable on weights alone: the engine records what they need on calibration batches of the
training set (audioprune.pruning.calibration) and hands it to them.

Representatives and the SVD sign: representatives.py. Edge-weight conventions (principled
1 - |cos| versus `paper_compat=True`, networkx's handling of negative weights): centrality.py and
paths.py.
"""

from __future__ import annotations

import difflib

import functools
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import numpy as np

from audioprune.pruning.criteria import active, centrality, norms, similarity
from audioprune.pruning.criteria.base import (
    Criterion,
    WeightLike,
    as_filter_array,
    prune_order,
    select_prune,
)

__all__ = [
    "Criterion",
    "CriterionInfo",
    "WeightLike",
    "as_filter_array",
    "describe_criterion",
    "get_criterion",
    "list_criteria",
    "prune_order",
    "register_criterion",
    "select_prune",
]


@dataclass(frozen=True)
class CriterionInfo:
    """A registered criterion: the function, the arguments bound by the name, the options allowed."""

    name: str
    fn: Callable[..., np.ndarray] | None  # None: Torch-Pruning's group importances (below)
    options: tuple[str, ...]
    summary: str
    fixed: Mapping[str, Any] = field(default_factory=dict)
    inputs: str = "weights"  # "weights" | "activations" | "gradients" (active criteria)
    scope: str = "root"  # the default scope: the root layer's filters, or the whole group
    norm_layers: bool = False  # group scope: a batch norm's scale counts as a slice (norm-type)
    map_dims: int | None = None  # activation criteria: the feature maps' spatial dims (hrank: 2)
    # Torch-Pruning's own group importances: the class name in torch_pruning.importance (built
    # by pruning/importance.py, so this package never imports Torch-Pruning); they have no `fn`
    torch_pruning: str | None = None


_REGISTRY: dict[str, CriterionInfo] = {}


def register_criterion(
    name: str,
    fn: Callable[..., np.ndarray] | None,
    *,
    options: tuple[str, ...] = (),
    summary: str = "",
    inputs: str = "weights",
    scope: str = "root",
    norm_layers: bool = False,
    map_dims: int | None = None,
    torch_pruning: str | None = None,
    **fixed: Any,
) -> None:
    """Add a criterion `fn(weights, **fixed, **options) -> scores` under `name` (for active
    criteria `fn(activations)` or `fn(weight, grad)`, with `inputs` saying which).

    `scope` is its default scope ("root": the layer's own filters; "group": every layer of the
    dependency group, see pruning/importance.py), `norm_layers` whether a batch norm's scale is a
    slice it can score in group scope, `map_dims` the feature-map dimensions an activation
    criterion needs (2 for hrank: (H, W) maps; None: any)."""
    if name in _REGISTRY:
        raise ValueError(f"criterion {name!r} is already registered")
    if (fn is None) != (torch_pruning is not None):
        raise ValueError(f"criterion {name!r}: give a scoring function or a Torch-Pruning "
                         f"importance class, not both or neither")
    if inputs not in ("weights", "activations", "gradients"):
        raise ValueError(f"unknown criterion inputs {inputs!r}")
    if scope not in ("root", "group"):
        raise ValueError(f"unknown criterion scope {scope!r}")
    _REGISTRY[name] = CriterionInfo(name, fn, tuple(options), summary, dict(fixed), inputs,
                                    scope, norm_layers, map_dims, torch_pruning)


def list_criteria(inputs: str | None = None) -> list[str]:
    """The registered criterion names, sorted; only those reading `inputs` ("weights" for the
    passive ones) when given."""
    return sorted(n for n, info in _REGISTRY.items() if inputs is None or info.inputs == inputs)


def describe_criterion(name: str) -> CriterionInfo:
    """The registry entry for `name` (its options and a one-line summary)."""
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(str(name), list(_REGISTRY), n=1)
        raise ValueError(
            f"unknown criterion {name!r}{f' (did you mean {close[0]!r}?)' if close else ''}; "
            f"choose from {', '.join(list_criteria())}"
        ) from None


def get_criterion(name: str, **options: Any) -> Criterion:
    """The criterion `name` with `options` bound: a callable weights -> scores (higher = prune first)."""
    info = describe_criterion(name)
    if info.inputs != "weights":
        raise ValueError(f"criterion {name!r} is active: it needs recorded {info.inputs}, not "
                         f"weights alone; prune with data (audioprune prune / prune_model(batches=))")
    if info.torch_pruning:
        raise ValueError(f"criterion {name!r} is Torch-Pruning's {info.torch_pruning}: it scores "
                         f"a whole dependency group, not one layer's weights; use it through "
                         f"audioprune.prune / audioprune.importance / audioprune prune")
    unknown = sorted(set(options) - set(info.options))
    if unknown:
        allowed = ", ".join(info.options) or "none"
        raise ValueError(f"criterion {name!r} has no option {', '.join(unknown)} (allowed: {allowed})")
    return functools.partial(info.fn, **info.fixed, **options)


_GRAPH = ("representative", "rank1_method", "paper_compat", "knn")
_PATH = _GRAPH + ("approx", "knn_k")
_CENTRALITY_OPTIONS = {
    "wdc": (_GRAPH, "weighted degree: row sum of signed cosine similarities"),
    "wdc-abs": (_GRAPH, "weighted degree of |cosine similarity|"),
    "betweenness": (_PATH + ("engine", "tie_break"), "shortest-path betweenness on the filter "
                    "graph, ties by weighted degree"),
    "closeness": (_PATH, "closeness centrality on the filter graph"),
    "eigenvector": (_GRAPH, "eigenvector centrality of the similarity graph"),
    "pagerank": (_GRAPH + ("alpha",), "PageRank of the similarity graph"),
}
for _measure, (_opts, _summary) in _CENTRALITY_OPTIONS.items():
    register_criterion(
        _measure,
        centrality.centrality_scores,
        options=_opts,
        summary=f"{_summary} (highest centrality pruned first)",
        measure=_measure,
    )

_SIMILARITY = ("representative", "rank1_method", "paper_compat")
register_criterion(
    "similarity",
    similarity.similarity_scores,
    options=_SIMILARITY,
    summary="closest-pair greedy redundancy (Singh & Plumbley, Interspeech 2022)",
)
register_criterion(
    "similarity-nystrom",
    similarity.nystrom_scores,
    options=_SIMILARITY + ("m", "rank", "landmarks", "seed"),
    summary="the same greedy selection on a Nystrom-approximated similarity (ICASSP 2023)",
)

register_criterion("l1", norms.l1_scores, summary="smallest l1 norm pruned first",
                   norm_layers=True)
register_criterion("l2", norms.l2_scores, summary="smallest l2 norm pruned first",
                   norm_layers=True)
register_criterion("opnorm", norms.opnorm_scores, summary="smallest spectral norm pruned first",
                   norm_layers=True)
register_criterion(
    "opnorm-paper",
    norms.opnorm_paper_scores,
    summary="the operator-norm score of the authors' public code (TASLP 2025), smallest first",
    norm_layers=True,
)
register_criterion(
    "fpgm",
    norms.fpgm_scores,
    options=("mode", "p"),
    summary="closest to the geometric median pruned first (He et al. 2019)",
    norm_layers=True,
)
register_criterion("random", norms.random_scores, options=("seed",), summary="seeded random scores")



# Torch-Pruning's group importances as criteria of their own (issue 18): the method that led at
# heavy budgets in BENCHMARKS section 1 (recipes/fsdd/criteria.yaml), selectable without code. Scored by Torch-Pruning on
# the dependency group (root filters, coupled BN, next layers' input slices), `p` and
# `normalizer` as in Torch-Pruning; `group_reduction` is the importance's own argument.
_TP_CRITERIA = {
    "tp-magnitude": ("GroupMagnitudeImportance", "group l_p magnitude, summed over the filter, "
                     "its BN and the next layers' inputs (Torch-Pruning)"),
    "tp-lamp": ("LAMPImportance", "layer-adaptive magnitude (Lee et al. 2021), Torch-Pruning's; "
                "meant for global ranking"),
    "tp-fpgm": ("FPGMImportance", "geometric-median distance over the group (Torch-Pruning)"),
}
for _name, (_cls, _summary) in _TP_CRITERIA.items():
    register_criterion(_name, None, options=("p", "normalizer"),
                       summary=f"{_summary}, smallest pruned first", scope="group",
                       torch_pruning=_cls)
# Torch-Pruning's first-order Taylor importance |w * dL/dw| over the group: it reads gradients,
# accumulated on calibration batches before each pruning step (an active criterion)
register_criterion("tp-taylor", None, inputs="gradients",
                   options=("batches", "multivariable", "normalizer"), scope="group",
                   summary="first-order Taylor |w dL/dw| over the group (Torch-Pruning's "
                           "GroupTaylorImportance), smallest pruned first",
                   torch_pruning="GroupTaylorImportance")

register_criterion("hrank", active.hrank_scores, inputs="activations", options=("batches",),
                   map_dims=2,
                   summary="lowest average feature-map rank pruned first (HRank, CVPR 2020)")
register_criterion("activation", active.activation_scores, inputs="activations",
                   options=("batches",), summary="lowest mean |activation| pruned first")
register_criterion("taylor", active.taylor_scores, inputs="gradients", options=("batches",),
                   scope="group", summary="smallest first-order Taylor |w * dL/dw| pruned first (Molchanov 2019)")
