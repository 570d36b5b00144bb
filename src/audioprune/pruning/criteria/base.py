"""What every criterion shares: turning a weight tensor into filters, and turning scores into a prune set.

Kept apart from the criteria so the one convention (higher score = pruned first, ties to the lower
index) lives in exactly one place, and so no criterion has to know whether it was handed a numpy
array or a torch tensor.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Union

import numpy as np

if TYPE_CHECKING:  # pragma: no cover - typing only
    import torch

    WeightLike = Union[np.ndarray, torch.Tensor]
else:
    WeightLike = Any

Criterion = Callable[[WeightLike], np.ndarray]
"""A criterion maps ONE layer's weight tensor to one float per output filter (higher = prune first)."""


def _to_numpy(weights: WeightLike) -> np.ndarray:
    """A float32/float64 numpy view of `weights`; torch tensors are detached and moved to the CPU."""
    if isinstance(weights, np.ndarray):
        arr = weights
    elif hasattr(weights, "detach") and hasattr(weights, "cpu"):  # a torch tensor
        import torch

        t = weights.detach().cpu()
        if t.dtype not in (torch.float32, torch.float64):
            t = t.float()  # float16 / bfloat16 / integers: numpy cannot (or should not) hold them as is
        arr = t.numpy()
    else:
        arr = np.asarray(weights)
    if arr.dtype not in (np.float32, np.float64):
        arr = arr.astype(np.float32)
    return arr


def as_filter_array(weights: WeightLike) -> np.ndarray:
    """The layer's filters as an array of shape (out, C_in, k): k = kernel positions (kh*kw, k, or 1).

    conv2d (out, in, kh, kw) -> (out, in, kh*kw); conv1d (out, in, k) stays; linear (out, in) ->
    (out, in, 1); conv3d and higher flatten all kernel axes the same way. The dtype (float32 or
    float64) is kept and the result is a view where numpy can make one.
    """
    arr = _to_numpy(weights)
    if arr.ndim < 2:
        raise ValueError(
            f"a criterion needs a weight tensor of shape (out, in, ...), got shape {tuple(arr.shape)}"
        )
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"weight tensor has an empty axis: shape {tuple(arr.shape)}")
    out, c_in = arr.shape[:2]
    filters = arr.reshape(out, c_in, -1)
    if not np.isfinite(filters).all():
        raise ValueError("weight tensor holds NaN or infinite values; a criterion cannot rank them")
    return filters


def check_scores(scores: np.ndarray) -> np.ndarray:
    """`scores` as a 1-D float64 array with no NaN (a NaN would make the prune set arbitrary)."""
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1:
        raise ValueError(f"scores must be one value per filter (1-D), got shape {s.shape}")
    if np.isnan(s).any():
        raise ValueError("scores contain NaN")
    return s


def prune_order(scores: np.ndarray) -> np.ndarray:
    """All filter indices, the first to prune first: by score descending, ties to the lower index."""
    s = check_scores(scores)
    # lexsort sorts by the LAST key first: primary -score (descending score), then index ascending.
    return np.lexsort((np.arange(s.size), -s))


def select_prune(scores: np.ndarray, n: int) -> np.ndarray:
    """The indices of the `n` filters to remove (highest scores; ties to the lower index), sorted ascending."""
    s = check_scores(scores)
    if not 0 <= int(n) <= s.size:
        raise ValueError(f"cannot prune {n} of {s.size} filters")
    return np.sort(prune_order(s)[: int(n)])
