"""Shortest-path machinery for betweenness and closeness on a filter graph: fast, and exact.

Three engines, each for what it is good at:

* python-igraph (C) for strictly positive edge lengths. On a complete graph of n filters igraph's
  Dijkstra still relaxes all n^2 edges per source (93 s for n = 1024), so for n > `SPARSIFY_ABOVE`
  we first drop every edge that cannot lie on ANY shortest path and run igraph on what is left.
  This is exact: with d_k the shortest-path lengths of a k-nearest-neighbour subgraph (an upper
  bound on the true ones), an edge (u, v) of length L_uv can only be on a shortest path if
  L_uv <= dist(u, v) <= d_k(u, v); keeping every edge with L_uv <= d_k(u, v) * (1 + 1e-9) keeps all
  shortest paths, hence betweenness and closeness do not change (the 1e-9 slack covers igraph's
  own 1e-10 tolerance when it compares path lengths). For n = 1024 that is ~10x fewer edges.
* a line-by-line port of networkx's Brandes/Dijkstra (`nx_betweenness_raw`) for lengths that are
  zero or NEGATIVE, i.e. the paper-compatible mode where the raw signed cosine is the edge weight.
  networkx's `betweenness_centrality(G, weight=...)` does not reject negative weights: its Dijkstra
  settles nodes in heap order (distance, then push order) and never revisits a settled node, so on
  negative weights it returns a well-defined but order-dependent number (it only ever fails in
  `closeness_centrality`, which raises "Contradictory paths found: negative weights?"). The port
  reproduces that exactly, ties and networkx's quirks included (equal-length updates of settled
  nodes, sigma[s] = 2), assuming the graph was built with `add_nodes_from(range(n))` and edges
  added for i < j in order, so each node's neighbours are iterated in ascending order - which is
  how the authors' code builds it. It runs compiled with numba when numba is importable (it ships
  with librosa) and as plain Python otherwise (fine for tens of filters, slow beyond).
* scipy's C Dijkstra for the all-pairs distances behind closeness and the sparsification.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

SPARSIFY_ABOVE = 128  # complete graphs up to this size go to igraph as they are
SPARSIFY_K = 64  # neighbours per node in the graph whose path lengths bound the true ones
# (16 -> 64 took n = 2048 random filters from 40 s to 16 s: fewer candidate edges left for igraph)
_SLACK = 1e-9

try:  # numba comes with librosa; without it the kernel below runs as (slow) plain Python
    from numba import njit as _njit

    def _compile(fn):  # type: ignore[no-untyped-def]
        return _njit(cache=True, nogil=True)(fn)

except ImportError:  # pragma: no cover - exercised only where numba is missing

    def _compile(fn):  # type: ignore[no-untyped-def]
        return fn


def _brandes_networkx_kernel(lengths: np.ndarray, adj: np.ndarray) -> np.ndarray:  # pragma: no cover
    """Raw betweenness (sum over ordered (s, t) pairs), exactly as networkx computes it.

    Mirrors networkx 3.x `_single_source_dijkstra_path_basic` + `_accumulate_basic`: nodes are
    popped by (tentative distance, push order); a push happens when an unsettled node is first
    reached or strictly improved; an equal-length arrival at ANY seen node (settled ones too) adds
    to its path count and predecessor list. Push order is kept as stamp = pops_so_far * n + w,
    which orders pushes exactly like networkx's counter when neighbours are scanned in ascending
    order. When every edge is strictly positive a settled node can never be reached at an equal
    length, so that scan is skipped.
    """
    n = lengths.shape[0]
    positive = True
    for i in range(n):
        for j in range(n):
            if i != j and adj[i, j] and not lengths[i, j] > 0.0:
                positive = False
    bc = np.zeros(n)
    seen = np.zeros(n, np.bool_)
    dist = np.zeros(n)
    stamp = np.zeros(n, np.int64)
    pred = np.zeros(n, np.int64)
    sigma = np.zeros(n)
    delta = np.zeros(n)
    order = np.zeros(n, np.int64)
    pcount = np.zeros(n, np.int64)
    plist = np.zeros((n, n), np.int64)
    unsettled = np.zeros(n, np.int64)
    for s in range(n):
        m = 0
        for i in range(n):
            seen[i] = False
            sigma[i] = 0.0
            pcount[i] = 0
            if i != s:
                unsettled[m] = i
                m += 1
        seen[s] = True
        dist[s] = 0.0
        stamp[s] = -1
        pred[s] = s
        sigma[s] = 1.0
        n_settled = 0
        v = s
        while True:
            sigma[v] += sigma[pred[v]]  # networkx: sigma[v] += sigma[pred] (so sigma[s] becomes 2)
            order[n_settled] = v
            n_settled += 1
            dv = dist[v]
            if not positive:
                for i in range(n_settled - 1):
                    w = order[i]
                    if adj[v, w] and dv + lengths[v, w] == dist[w]:
                        sigma[w] += sigma[v]
                        plist[w, pcount[w]] = v
                        pcount[w] += 1
            best = -1
            best_i = -1
            base = n_settled * n
            for i in range(m):
                w = unsettled[i]
                if adj[v, w]:
                    vw = dv + lengths[v, w]
                    if (not seen[w]) or vw < dist[w]:
                        seen[w] = True
                        dist[w] = vw
                        stamp[w] = base + w
                        sigma[w] = 0.0
                        pred[w] = v
                        plist[w, 0] = v
                        pcount[w] = 1
                    elif vw == dist[w]:
                        sigma[w] += sigma[v]
                        plist[w, pcount[w]] = v
                        pcount[w] += 1
                if seen[w]:
                    if (
                        best < 0
                        or dist[w] < dist[best]
                        or (dist[w] == dist[best] and stamp[w] < stamp[best])
                    ):
                        best = w
                        best_i = i
            if best < 0:
                break
            m -= 1
            unsettled[best_i] = unsettled[m]
            v = best
        for i in range(n_settled):
            delta[order[i]] = 0.0
        for i in range(n_settled - 1, -1, -1):
            w = order[i]
            coeff = (1.0 + delta[w]) / sigma[w]
            for j in range(pcount[w]):
                u = plist[w, j]
                delta[u] += sigma[u] * coeff
            if w != s:
                bc[w] += delta[w]
    return bc


_brandes_networkx = _compile(_brandes_networkx_kernel)


def complete_adjacency(n: int) -> np.ndarray:
    """(n, n) boolean adjacency of the complete graph without self-loops."""
    adj = np.ones((n, n), dtype=np.bool_)
    np.fill_diagonal(adj, False)
    return adj


def nx_betweenness_raw(lengths: np.ndarray, adj: np.ndarray) -> np.ndarray:
    """networkx's un-normalised betweenness over ordered pairs, for any finite real lengths."""
    lengths = np.ascontiguousarray(lengths, dtype=np.float64)
    adj = np.ascontiguousarray(adj, dtype=np.bool_)
    return np.asarray(_brandes_networkx(lengths, adj))


def upper_edges(adj: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows, cols) of the undirected edges i < j of a symmetric adjacency matrix."""
    return np.nonzero(np.triu(adj, 1))


def _csr(lengths: np.ndarray, rows: np.ndarray, cols: np.ndarray, n: int) -> csr_matrix:
    """Symmetric sparse graph; explicit zeros stay edges (scipy's csgraph honours them)."""
    r = np.concatenate([rows, cols])
    c = np.concatenate([cols, rows])
    return csr_matrix((lengths[r, c], (r, c)), shape=(n, n))


def all_pairs_distances(lengths: np.ndarray, adj: np.ndarray) -> np.ndarray:
    """Shortest-path lengths between all pairs (inf if unreachable); lengths must be >= 0."""
    n = lengths.shape[0]
    rows, cols = upper_edges(adj)
    return dijkstra(_csr(lengths, rows, cols, n), directed=True)


def knn_adjacency(strength: np.ndarray, k: int) -> np.ndarray:
    """Symmetric k-nearest-neighbour adjacency: i ~ j if j is among i's k strongest or vice versa.

    "Strongest" = largest `strength` (|cos| for filter graphs); ties go to the lower index, so the
    graph is deterministic. The diagonal is never an edge.
    """
    n = strength.shape[0]
    k = int(min(max(k, 0), n - 1))
    adj = np.zeros((n, n), dtype=np.bool_)
    if k == 0:
        return adj
    key = -np.asarray(strength, dtype=np.float64).copy()
    np.fill_diagonal(key, np.inf)
    nearest = np.argsort(key, axis=1, kind="stable")[:, :k]
    adj[np.repeat(np.arange(n), k), nearest.ravel()] = True
    return adj | adj.T


def shortest_path_edges(
    lengths: np.ndarray, adj: np.ndarray, k: Optional[int] = None
) -> np.ndarray:
    """The edges of `adj` that can lie on a shortest path (see the module doc); lengths >= 0.

    Returns a symmetric boolean adjacency, a subset of `adj`, with the same shortest paths.
    `k` (default SPARSIFY_K) only trades the cost of the bound against the edges kept.
    """
    k = SPARSIFY_K if k is None else k
    keyed = np.where(adj, lengths, np.inf)
    near = knn_adjacency(-keyed, k) & adj  # k shortest edges per node
    bound = all_pairs_distances(lengths, near)
    return adj & (lengths <= bound * (1.0 + _SLACK))


def igraph_betweenness_raw(lengths: np.ndarray, adj: np.ndarray) -> np.ndarray:
    """Betweenness over UNORDERED pairs (igraph's convention) for strictly positive lengths."""
    import igraph as ig

    n = lengths.shape[0]
    rows, cols = upper_edges(adj)
    graph = ig.Graph(n=n, edges=np.column_stack([rows, cols]).tolist(), directed=False)
    return np.asarray(graph.betweenness(weights=lengths[rows, cols].tolist(), directed=False))
