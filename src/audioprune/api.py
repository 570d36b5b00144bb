"""The public helpers that are not a module's main function of their own: criteria by name, and
our criteria as Torch-Pruning importances (``audioprune.importance``)."""

from __future__ import annotations

import warnings
from typing import Any

from audioprune.errors import ArgumentError

__all__ = ["importance", "list_criteria"]


def list_criteria(inputs: str | None = None) -> list[str]:
    """Every name ``ap.prune`` takes as its `criterion`, sorted: weight criteria (graph
    centralities, similarity, norms, random, Torch-Pruning's tp-*), active ones (hrank,
    activation: feature maps; taylor: gradients) and "auto" - a rule, not a criterion: it
    picks one of the others for the model and budget from our cross-validated measurements
    (audioprune.pruning.auto; ``PruneResult.plan["auto"]`` says which and why). `inputs`
    ("weights", "activations", "gradients") lists the criteria of one kind only, without
    "auto", which reads whatever its choice reads."""
    from audioprune.pruning.auto import AUTO
    from audioprune.pruning.criteria import list_criteria as registered

    if inputs not in (None, "weights", "activations", "gradients"):
        raise ArgumentError(f"`inputs` must be 'weights', 'activations' or 'gradients', "
                            f"got {inputs!r}")
    names = registered(inputs)
    return names if inputs is not None else sorted([*names, AUTO])


def importance(name: str, *, normalise: str | None = "minmax", scope: str | None = None,
               group_reduction: str = "mean", aggregate: str = "mean", quaternion: str = "auto",
               **options: Any) -> Any:
    """Criterion `name` as a ``torch_pruning.importance.Importance``, for Torch-Pruning's pruners::

        pruner = tp.pruner.BasePruner(model, x, importance=ap.importance("betweenness"),
                                      pruning_ratio=0.5, ignored_layers=[model.fc],
                                      customized_pruners=ap.customized_pruners())

    Called on a group it returns one value per output channel of the group's root, lower =
    pruned first. With ``normalise="minmax"`` (default) each group's values are mapped to [0, 1]
    - the layer's most prunable filter 0, its least prunable 1 - so that layers share one scale
    when Torch-Pruning ranks them together (``global_pruning=True``); within a layer the order
    is the criterion's. `scope`, `group_reduction`, `aggregate` and `quaternion` are as in
    :func:`audioprune.prune`; `options` are the criterion's own. Active criteria (hrank,
    activation, taylor) need calibration first: call ``imp.calibrate(graph, batches)`` with an
    ``PruningGraph`` (audioprune.pruning.engine), or use :func:`audioprune.prune`.
    """
    from audioprune.pruning.importance import make_importance

    if "normalize" in options:  # the American spelling, one version more
        warnings.warn("ap.importance(normalize=...) is deprecated: the argument is `normalise`, as "
                      "in ap.Plan", DeprecationWarning, stacklevel=2)
        normalise = options.pop("normalize")
    if quaternion not in ("auto", "aggregate", "concat"):
        raise ArgumentError(f"unknown `quaternion` {quaternion!r}; choose from auto, aggregate, "
                            f"concat")
    return make_importance(name, options, aggregate=aggregate,
                           quaternion_mode="aggregate" if quaternion == "auto" else quaternion,
                           scope=scope, group_reduction=group_reduction, normalize=normalise)
