"""Graph-centrality filter pruning (Singh, King & Plumbley 2023): prune the most central filters.

Each output filter is a node; edges join every pair (a complete graph, or a k-nearest-neighbour
graph with `knn=K`) and carry the cosine similarity S_ij of the filters' representatives
(`representatives.py`). A filter that is central - similar to many others, or on many shortest
paths between them - is "common" and can be replaced by the rest, so the HIGHEST centrality is
pruned first: the score returned IS the centrality.

Measures and their normalisation (each equals the networkx function named, on the same graph):
  wdc          weighted degree, sum_j S_ij over neighbours (signed; the authors' definition)
  wdc-abs      sum_j |S_ij|
  betweenness  nx.betweenness_centrality(G, weight="weight")     (normalized=True)
  closeness    nx.closeness_centrality(G, distance="weight")     (wf_improved=True)
  eigenvector  nx.eigenvector_centrality_numpy(G, weight="weight")
  pagerank     nx.pagerank(G, alpha, weight="weight")            (converged to `tol`)

Edge-weight conventions (they matter only for the last four):
  principled (default)  path measures use the length 1 - |S_ij| (floored at 1e-12 so that identical
                        filters still form an edge igraph accepts), eigenvector/pagerank use |S_ij|.
                        |cos| because a representative's sign is that of input channel 0's loading
                        (see representatives.py) - an accident of channel order, not of the filter.
  paper_compat=True     the raw signed cosine is THE networkx edge weight for every measure, as in
                        the authors' code; networkx then reads it as a distance for betweenness, so
                        near-orthogonal filters are "close" and anti-similar ones closer still.
                        Negative weights: betweenness reproduces networkx's order-dependent result
                        exactly (paths.py); closeness raises ValueError as networkx does
                        ("Contradictory paths found: negative weights?"); pagerank raises when its
                        power iteration does not converge (networkx raises
                        PowerIterationFailedConvergence there).

Ties in betweenness: on a complete graph with lengths 1 - |S_ij| a path through a third filter
is shorter than the direct edge only when 1 - |S_ik| + 1 - |S_kj| < 1 - |S_ij|, which near-orthogonal
filters rarely satisfy; then many filters - on a trained dcase21net's C1 (16 filters of 1x7x7), ALL
of them - have betweenness exactly 0, and "highest first, ties to the lower index" would prune
filters 0, 1, 2, ... whatever they are. So by default (`tie_break="degree"`) filters of equal
betweenness are ordered by their weighted degree of |S_ij| (`wdc-abs`: the filter most similar
to all the others goes first, the centrality idea itself), added as a term smaller than half the
smallest gap between distinct betweenness values, so it never reorders filters whose betweenness
differs. `tie_break="index"` keeps the plain order; `paper_compat=True` always does, as the
authors' code did. Measured (BENCHMARKS.md, section 1): the tie-break helps at 50% of the MACs
and hurts at 15%, like every "prune the most typical filter" criterion.

Speed: degree measures are one matrix sum. Betweenness and closeness are exact (igraph on the graph
with every edge that cannot be on a shortest path removed - see paths.py); `approx="knn"` computes
them on the `knn_k`-nearest-neighbour graph instead (a few seconds for 2048 filters; how well its
prune set agrees with the exact one is reported by bench/bench_centrality.py).
"""

from __future__ import annotations

from typing import Literal, Optional

import numpy as np

from audioprune.pruning.criteria import paths
from audioprune.pruning.criteria.base import WeightLike
from audioprune.pruning.criteria.representatives import (
    Rank1Method,
    RepresentativeKind,
    cosine_similarity,
    representatives,
)

Measure = Literal["wdc", "wdc-abs", "betweenness", "closeness", "eigenvector", "pagerank"]
MEASURES: tuple[str, ...] = ("wdc", "wdc-abs", "betweenness", "closeness", "eigenvector", "pagerank")
PATH_MEASURES = ("betweenness", "closeness")
Engine = Literal["auto", "igraph", "networkx-port"]

MIN_LENGTH = 1e-12  # principled edge length floor: 1 - |cos| of identical filters is 0
_DENSE_EIGH_UP_TO = 256  # above this, eigenvector centrality uses Lanczos (full eigh: 19 s at 2048)


# --------------------------------------------------------------------------- edge weights, graph


def edge_lengths(sim: np.ndarray, *, paper_compat: bool) -> np.ndarray:
    """What shortest-path measures read as an edge's length."""
    if paper_compat:
        return np.array(sim, dtype=np.float64)
    return np.maximum(1.0 - np.abs(sim), MIN_LENGTH)


def edge_strengths(sim: np.ndarray, *, paper_compat: bool) -> np.ndarray:
    """What eigenvector centrality and pagerank read as an edge's weight (zero diagonal)."""
    strength = np.array(sim, dtype=np.float64) if paper_compat else np.abs(sim)
    np.fill_diagonal(strength, 0.0)
    return strength


def graph_adjacency(sim: np.ndarray, knn: Optional[int]) -> np.ndarray:
    """Complete graph, or the symmetrised k-nearest-neighbour graph by |cos| (ties: lower index)."""
    n = sim.shape[0]
    if knn is None:
        return paths.complete_adjacency(n)
    if int(knn) < 1:
        raise ValueError(f"knn must be a positive number of neighbours, got {knn}")
    return paths.knn_adjacency(np.abs(sim), int(knn))


# --------------------------------------------------------------------------- the measures


def weighted_degree(sim: np.ndarray, adj: np.ndarray, *, absolute: bool) -> np.ndarray:
    """Sum of (|)S_ij(|) over each node's neighbours (self excluded)."""
    values = np.abs(sim) if absolute else sim
    return np.where(adj, values, 0.0).sum(axis=1)


def betweenness(lengths: np.ndarray, adj: np.ndarray, *, engine: Engine = "auto") -> np.ndarray:
    """networkx-normalised betweenness (ordered pairs / ((n-1)(n-2))) with the given edge lengths."""
    n = lengths.shape[0]
    if n <= 2:
        return np.zeros(n)
    positive = bool(np.all(lengths[adj] > 0))
    if engine == "auto":
        engine = "igraph" if positive else "networkx-port"
    scale = 1.0 / ((n - 1) * (n - 2))
    if engine == "networkx-port":
        return paths.nx_betweenness_raw(lengths, adj) * scale
    if engine != "igraph":
        raise ValueError(f"unknown engine {engine!r}; use 'auto', 'igraph' or 'networkx-port'")
    if not positive:
        raise ValueError("igraph needs strictly positive edge lengths; use engine='networkx-port'")
    used = _sparsified(lengths, adj)
    return paths.igraph_betweenness_raw(lengths, used) * (2.0 * scale)  # unordered -> ordered


def closeness(lengths: np.ndarray, adj: np.ndarray) -> np.ndarray:
    """networkx closeness (wf_improved): (r-1)/sum(d) * (r-1)/(n-1), r = nodes reachable incl. self."""
    n = lengths.shape[0]
    if np.any(lengths[adj] < 0):
        raise ValueError(
            "closeness is undefined with negative edge lengths (paper_compat=True with negative "
            "cosines); networkx raises 'Contradictory paths found: negative weights?' here too"
        )
    dist = paths.all_pairs_distances(lengths, _sparsified(lengths, adj))
    finite = np.isfinite(dist)
    reach = finite.sum(axis=1).astype(np.float64)
    total = np.where(finite, dist, 0.0).sum(axis=1)
    out = np.zeros(n)
    ok = (total > 0) & (n > 1)
    out[ok] = (reach[ok] - 1.0) / total[ok] * ((reach[ok] - 1.0) / (n - 1))
    return out


def eigenvector(strength: np.ndarray) -> np.ndarray:
    """Leading eigenvector of the (symmetric) weight matrix, normalised like networkx's _numpy version.

    networkx takes the eigenvector of the largest real eigenvalue and divides by sign(sum) * L2
    norm. If that eigenvalue is repeated (e.g. a disconnected knn graph) the vector is not unique.
    """
    n = strength.shape[0]
    if n <= _DENSE_EIGH_UP_TO:
        lead = np.linalg.eigh(strength)[1][:, -1]
    else:  # Lanczos for the top pair only; a fixed start vector keeps it deterministic
        from scipy.sparse.linalg import eigsh

        lead = eigsh(strength, k=1, which="LA", v0=np.full(n, n**-0.5), tol=0.0)[1][:, 0]
    sign = np.sign(lead.sum()) or 1.0
    return lead / (sign * np.linalg.norm(lead))


def pagerank(
    strength: np.ndarray, *, alpha: float = 0.85, tol: float = 1e-10, max_iter: int = 1000
) -> np.ndarray:
    """networkx's `_pagerank_scipy` power iteration (uniform teleport and dangling), dense."""
    n = strength.shape[0]
    row = strength.sum(axis=1)
    inv = np.zeros(n)
    nonzero = row != 0
    inv[nonzero] = 1.0 / row[nonzero]
    trans = strength * inv[:, None]
    dangling = ~nonzero
    p = np.full(n, 1.0 / n)
    x = p.copy()
    with np.errstate(over="ignore", invalid="ignore"):  # diverging (signed) weights end in the raise
        for _ in range(max_iter):
            last = x
            x = alpha * (x @ trans + x[dangling].sum() * p) + (1.0 - alpha) * p
            if np.abs(x - last).sum() < n * tol:
                return x
    raise ValueError(
        f"pagerank did not converge in {max_iter} iterations (with paper_compat=True negative "
        "cosines make it diverge; networkx raises PowerIterationFailedConvergence there)"
    )


def _sparsified(lengths: np.ndarray, adj: np.ndarray) -> np.ndarray:
    """A dense graph reduced to the edges that can be on shortest paths (exact; paths.py)."""
    n = lengths.shape[0]
    dense = adj.sum() > 4 * n * paths.SPARSIFY_K
    if n <= paths.SPARSIFY_ABOVE or not dense:
        return adj
    return paths.shortest_path_edges(lengths, adj)


# --------------------------------------------------------------------------- public entry points


TIE_DECIMALS = 12  # betweenness values equal to this many decimals are a tie (they lie in [0, 1])
TieBreak = Literal["degree", "index"]


def break_ties(primary: np.ndarray, secondary: np.ndarray) -> np.ndarray:
    """`primary` (rounded to TIE_DECIMALS) plus `secondary` rescaled below half the smallest gap
    between distinct primary values: the order by primary is kept, and equal primaries are ordered
    by secondary (higher first)."""
    primary = np.round(np.asarray(primary, dtype=np.float64), TIE_DECIMALS)
    spread = float(secondary.max() - secondary.min()) if secondary.size else 0.0
    if spread == 0.0:
        return primary
    gaps = np.diff(np.unique(primary))
    half_gap = 0.5 * float(gaps.min()) if gaps.size else 0.5
    return primary + half_gap * (secondary - secondary.min()) / spread


def centrality_from_similarity(
    sim: np.ndarray,
    measure: Measure,
    *,
    paper_compat: bool = False,
    knn: Optional[int] = None,
    approx: Optional[Literal["knn"]] = None,
    knn_k: int = 16,
    alpha: float = 0.85,
    engine: Engine = "auto",
    tie_break: TieBreak = "index",
) -> np.ndarray:
    """Centrality of every node of the filter graph built from the cosine-similarity matrix `sim`
    (with the default tie_break="index", exactly the networkx value)."""
    sim = np.asarray(sim, dtype=np.float64)
    if sim.ndim != 2 or sim.shape[0] != sim.shape[1]:
        raise ValueError(f"similarity matrix must be square, got shape {sim.shape}")
    if measure not in MEASURES:
        raise ValueError(f"unknown centrality {measure!r}; choose from {', '.join(MEASURES)}")
    if approx not in (None, "knn"):
        raise ValueError(f"unknown approx {approx!r}; use None or 'knn'")
    if tie_break not in ("degree", "index"):
        raise ValueError(f"unknown tie_break {tie_break!r}; use 'degree' or 'index'")
    if approx is not None and measure not in PATH_MEASURES:
        raise ValueError(f"approx={approx!r} applies to betweenness/closeness, not {measure}")
    if approx == "knn" and knn is None:
        knn = knn_k
    adj = graph_adjacency(sim, knn)
    if measure in ("wdc", "wdc-abs"):
        return weighted_degree(sim, adj, absolute=measure == "wdc-abs")
    if measure in PATH_MEASURES:
        lengths = edge_lengths(sim, paper_compat=paper_compat)
        if measure != "betweenness":
            return closeness(lengths, adj)
        scores = betweenness(lengths, adj, engine=engine)
        if tie_break == "degree" and not paper_compat:
            scores = break_ties(scores, weighted_degree(sim, adj, absolute=True))
        return scores
    strength = np.where(adj, edge_strengths(sim, paper_compat=paper_compat), 0.0)
    if measure == "eigenvector":
        return eigenvector(strength)
    return pagerank(strength, alpha=alpha)


def centrality_scores(
    weights: WeightLike,
    measure: Measure,
    *,
    representative: RepresentativeKind = "auto",
    rank1_method: Rank1Method = "gram",
    paper_compat: bool = False,
    knn: Optional[int] = None,
    approx: Optional[Literal["knn"]] = None,
    knn_k: int = 16,
    alpha: float = 0.85,
    engine: Engine = "auto",
    tie_break: TieBreak = "degree",
) -> np.ndarray:
    """Prune scores of one layer's filters: their centrality (highest = prune first); equal
    betweenness ordered by weighted degree (see the module notes on ties)."""
    reps = representatives(weights, representative, method=rank1_method)
    sim = cosine_similarity(reps)
    return centrality_from_similarity(
        sim,
        measure,
        paper_compat=paper_compat,
        knn=knn,
        approx=approx,
        knn_k=knn_k,
        alpha=alpha,
        engine=engine,
        tie_break=tie_break,
    )
