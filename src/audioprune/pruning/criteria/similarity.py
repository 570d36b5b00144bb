"""Similarity-based passive pruning (Singh & Plumbley, Interspeech 2022; Nystrom variant ICASSP 2023).

Idea: if two filters are near-duplicates, one of them is redundant. With D the cosine-distance
matrix between the filters' rank-1 representatives (representatives.py):

1. every filter i gets its closest other filter nn(i) and that distance d_i;
2. the pairs (i, nn(i)) are walked in ascending d_i (ties: lower i first - the authors used
   np.argsort's default, unstable sort; we make the order deterministic);
3. for a pair whose first member i is not yet redundant, i is kept ("important") and its neighbour
   nn(i) is marked redundant unless it was already kept or marked (the authors' public code,
   `Importance_claculation.py`: `if index_imp not in red_list: imp_list.append(index_imp);
   red_list.append(index_red)`, and the pruned set is everything outside imp_list - which is
   exactly the set marked this way). So within a pair it is the NEIGHBOUR that goes, and for a
   mutual pair the higher index.

One pass marks at most n/2 filters. A criterion must return scores, so the greedy order becomes one:
the k-th filter marked gets score 1 + (R - k) (R = number marked, all > 1), every other filter gets
-d_i (<= 0, so closer-to-a-neighbour goes first). `select_prune(scores, n)` therefore returns the
first n filters the greedy walk marks, for every n <= R, and continues with the kept filters that
have the closest neighbours beyond that (`greedy_selection` is the walk itself, for checking).

Distance: the authors used scipy's `distance.cosine`, i.e. 1 - cos with the SIGNED cosine
(`paper_compat=True`). The default is 1 - |cos|, because a representative's sign only records the
sign of input channel 0's loading (see representatives.py), so a filter and its negative-loading
twin would otherwise look maximally far apart.

Nystrom (`similarity-nystrom`): pick m landmark filters L (seeded random, or the first m), compute
C = S[:, L] and W = S[L, L] only, approximate S ~ C W_k^+ C^T with a rank-k pseudo-inverse of W,
and select as above from the approximate distances. The signed S is approximated (it is a Gram
matrix of the representatives, so positive semi-definite with rank <= kh*kw, and the
approximation is exact once the landmarks span it); |.| is taken afterwards in the default mode.
With m = n it reproduces the exact selection.
"""

from __future__ import annotations

from typing import Literal, Optional

import numpy as np

from audioprune.pruning.criteria.base import WeightLike
from audioprune.pruning.criteria.representatives import (
    Rank1Method,
    RepresentativeKind,
    cosine_similarity,
    representatives,
)

LandmarkRule = Literal["random", "first"]


def cosine_distance(sim: np.ndarray, *, paper_compat: bool = False) -> np.ndarray:
    """1 - |cos| (default) or 1 - cos (the authors' scipy `distance.cosine`)."""
    sim = np.asarray(sim, dtype=np.float64)
    return 1.0 - (sim if paper_compat else np.abs(sim))


def nearest_neighbours(dist: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For every filter, its closest OTHER filter (ties: lower index) and the distance to it."""
    d = np.array(dist, dtype=np.float64)
    np.fill_diagonal(d, np.inf)
    nn = np.argmin(d, axis=1)
    return nn, d[np.arange(d.shape[0]), nn]


def _pair_order(nn_dist: np.ndarray) -> np.ndarray:
    """Filters by ascending distance to their nearest neighbour, ties to the lower index."""
    return np.lexsort((np.arange(nn_dist.size), nn_dist))


def greedy_marks(dist: np.ndarray) -> list[int]:
    """The filters one full greedy pass marks redundant, in the order it marks them."""
    nn, nn_dist = nearest_neighbours(dist)
    state = np.zeros(nn.size, dtype=np.int8)  # 0 untouched, 1 kept, 2 redundant
    marked: list[int] = []
    for i in _pair_order(nn_dist):
        if state[i] == 2:
            continue
        state[i] = 1
        j = int(nn[i])
        if state[j] == 0:
            state[j] = 2
            marked.append(j)
    return marked


def greedy_selection(dist: np.ndarray, n: int) -> np.ndarray:
    """The greedy walk itself, stopped once `n` filters are marked (sorted indices).

    If one pass marks fewer than n, the rest are the unmarked filters with the closest nearest
    neighbour (ties: lower index) - the same rule the scores encode.
    """
    marked = greedy_marks(dist)[:n]
    if len(marked) < n:
        _, nn_dist = nearest_neighbours(dist)
        taken = set(marked)
        rest = [int(i) for i in _pair_order(nn_dist) if int(i) not in taken]
        marked += rest[: n - len(marked)]
    return np.sort(np.asarray(marked, dtype=np.int64))


def scores_from_distance(dist: np.ndarray) -> np.ndarray:
    """Scores whose prune order is the greedy marking order (see the module doc)."""
    _, nn_dist = nearest_neighbours(dist)
    scores = -np.minimum(nn_dist, 2.0)  # a lone filter has no neighbour: the largest distance, 2
    marked = greedy_marks(dist)
    r = len(marked)
    scores[np.asarray(marked, dtype=np.int64)] = 1.0 + (r - np.arange(r))
    return scores


def nystrom_similarity(
    reps: np.ndarray,
    m: int,
    *,
    rank: Optional[int] = None,
    landmarks: LandmarkRule = "random",
    seed: int = 0,
    rcond: float = 1e-10,
) -> np.ndarray:
    """Nystrom approximation C W_k^+ C^T of the (signed) cosine-similarity matrix of `reps`.

    Only the n x m block C = S[:, L] is computed. W_k^+ keeps the `rank` largest eigenvalues of
    W = S[L, L] (default: all of them) and drops those below rcond * the largest, since W is
    usually rank-deficient (rank <= representative length).
    """
    reps = np.asarray(reps, dtype=np.float64)
    n = reps.shape[0]
    m = int(min(max(m, 1), n))
    if landmarks == "random":
        idx = np.sort(np.random.default_rng(seed).choice(n, size=m, replace=False))
    elif landmarks == "first":
        idx = np.arange(m)
    else:
        raise ValueError(f"unknown landmark rule {landmarks!r}; use 'random' or 'first'")
    c = np.clip(reps @ reps[idx].T, -1.0, 1.0)  # (n, m)
    w = c[idx]  # (m, m)
    evals, evecs = np.linalg.eigh((w + w.T) / 2.0)
    k = m if rank is None else int(min(max(rank, 1), m))
    top = np.argsort(evals)[::-1][:k]
    keep = top[evals[top] > rcond * max(evals.max(), 0.0)]
    if keep.size == 0:
        return np.zeros((n, n))
    proj = c @ evecs[:, keep]  # (n, k')
    approx = (proj / evals[keep]) @ proj.T
    return (approx + approx.T) / 2.0  # exactly symmetric, like the exact matrix


def similarity_scores(
    weights: WeightLike,
    *,
    representative: RepresentativeKind = "auto",
    rank1_method: Rank1Method = "gram",
    paper_compat: bool = False,
) -> np.ndarray:
    """Interspeech 2022 prune scores of one layer (exact similarity matrix)."""
    sim = cosine_similarity(representatives(weights, representative, method=rank1_method))
    return scores_from_distance(cosine_distance(sim, paper_compat=paper_compat))


def nystrom_scores(
    weights: WeightLike,
    *,
    m: int = 32,
    rank: Optional[int] = None,
    landmarks: LandmarkRule = "random",
    seed: int = 0,
    representative: RepresentativeKind = "auto",
    rank1_method: Rank1Method = "gram",
    paper_compat: bool = False,
) -> np.ndarray:
    """ICASSP 2023 prune scores: the same greedy selection on a Nystrom-approximated similarity."""
    reps = representatives(weights, representative, method=rank1_method)
    sim = nystrom_similarity(reps, m, rank=rank, landmarks=landmarks, seed=seed)
    return scores_from_distance(cosine_distance(sim, paper_compat=paper_compat))
