"""Magnitude and geometric-median criteria: the usual baselines for passive filter pruning.

All return prune scores (higher = prune first), so "smaller norm pruned first" becomes score = -norm.

  l1            -sum |w|                                   (Li et al. 2017)
  l2            -||w||_2
  opnorm        -sigma_max(W_f), W_f reshaped to (C_in, kh*kw): the operator (spectral) norm; the
                weakest operator goes first, as for the other norms. Computed exactly from the
                largest eigenvalue of the kh*kw x kh*kw Gram matrix (one batched eigvalsh).
  opnorm-paper  the score of the authors' public code for the operator-norm paper (TASLP 2025,
                `operator_norm_pruning` in Arshdeep-Singh-Boparai/audio-pruning), which is not
                sigma_max: per input channel c the filters' kernels are centred by their mean over
                filters, the rank-1 direction v_c of that (out x kh*kw) matrix is taken (sign: filter
                0's loading positive, as the first row of u1 v1^T), and a filter's score is
                (sum_c (w_fc - mean_c) . v_c)^2. Their runner sorts it ascending and keeps the
                tail, so the SMALLEST value is pruned first: score = -value.
  fpgm          FPGM (He et al. 2019): filters near the geometric median are replaceable by the
                others; importance = sum of Euclidean distances to all other filters, the SMALLEST
                sum pruned first (score = -sum). `mode="torch-pruning"` reproduces Torch-Pruning's
                FPGMImportance, which measures the distances between |w|^p (p = 2) instead of w.
  random        seeded uniform scores, the sanity baseline.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from audioprune.pruning.criteria.base import WeightLike, as_filter_array
from audioprune.pruning.criteria.representatives import sign_fixed, spatial_grams

FpgmMode = Literal["he", "torch-pruning"]

_CHUNK = 256


def _flat64(weights: WeightLike) -> np.ndarray:
    """(out, C_in*k) float64 copy of the filters."""
    filters = as_filter_array(weights)
    return filters.reshape(filters.shape[0], -1).astype(np.float64)


def l1_scores(weights: WeightLike) -> np.ndarray:
    """-sum |w| per filter."""
    filters = as_filter_array(weights)
    return -np.abs(filters).sum(axis=(1, 2), dtype=np.float64)


def l2_scores(weights: WeightLike) -> np.ndarray:
    """-||w||_2 per filter."""
    filters = as_filter_array(weights)
    return -np.sqrt(np.square(filters, dtype=np.float64).sum(axis=(1, 2)))


def opnorm_scores(weights: WeightLike) -> np.ndarray:
    """-spectral norm of each filter as a (C_in x kh*kw) matrix."""
    largest = np.linalg.eigvalsh(spatial_grams(as_filter_array(weights)))[:, -1]
    return -np.sqrt(np.clip(largest, 0.0, None))


def _channel_directions(centred: np.ndarray) -> np.ndarray:
    """(C_in, k): per input channel, the rank-1 direction v1 of the centred (out x k) kernels.

    Signed like the first row of u1 v1^T in the authors' code: u1[0] > 0, i.e. filter 0's centred
    kernel has a non-negative projection; if that projection is 0 the largest entry is made positive.
    """
    out, c_in, k = centred.shape
    grams = np.empty((c_in, k, k))
    for start in range(0, c_in, _CHUNK):
        x = centred[:, start : start + _CHUNK, :].transpose(1, 0, 2)  # (b, out, k)
        grams[start : start + _CHUNK] = np.matmul(x.transpose(0, 2, 1), x)
    evals, evecs = np.linalg.eigh(grams)
    v1 = evecs[:, :, -1]  # (C_in, k)
    first = np.einsum("ck,ck->c", centred[0], v1)
    directions = v1 * np.sign(first)[:, None]
    degenerate = np.abs(first) <= 1e-12 * np.sqrt(np.clip(evals[:, -1], 0.0, None))
    if degenerate.any():
        directions[degenerate] = sign_fixed(v1[degenerate])
    return directions


def opnorm_paper_scores(weights: WeightLike) -> np.ndarray:
    """-(sum_c (w_fc - mean_c) . v_c)^2, the authors' operator-norm code (see the module doc)."""
    filters = as_filter_array(weights).astype(np.float64)
    centred = filters - filters.mean(axis=0, keepdims=True)
    value = np.einsum("fck,ck->f", centred, _channel_directions(centred))
    return -np.square(value)


def pairwise_distance_sums(x: np.ndarray) -> np.ndarray:
    """sum_j ||x_i - x_j||_2 for every row i (float64, via the Gram matrix)."""
    sq = np.einsum("ij,ij->i", x, x)
    d2 = sq[:, None] + sq[None, :] - 2.0 * (x @ x.T)
    np.fill_diagonal(d2, 0.0)
    return np.sqrt(np.clip(d2, 0.0, None)).sum(axis=1)


def fpgm_scores(weights: WeightLike, *, mode: FpgmMode = "he", p: float = 2.0) -> np.ndarray:
    """-(sum of distances to the other filters): the filter nearest the geometric median goes first."""
    x = _flat64(weights)
    if mode == "torch-pruning":
        x = np.abs(x) ** p
    elif mode != "he":
        raise ValueError(f"unknown fpgm mode {mode!r}; use 'he' or 'torch-pruning'")
    return -pairwise_distance_sums(x)


def random_scores(weights: WeightLike, *, seed: int = 0) -> np.ndarray:
    """Uniform random scores, reproducible from `seed`."""
    out = as_filter_array(weights).shape[0]
    return np.random.default_rng(seed).random(out)
