"""Graph-centrality criteria: our implementation against the authors' networkx approach.

A side-by-side, not a timed test. For random (seeded) CNN14-like layers of n filters, shape
(n, n/2, 3, 3) - n = 2048 is CNN14's last block, 2048 x 1024 x 3 x 3 - it times, from the weight
tensor to the scores:

  wdc            ours (batched rank-1 + one matrix sum) vs the authors' code (one SVD per filter,
                 sklearn cosine, a networkx complete graph, a dict comprehension over its edges);
  betweenness    ours exact (igraph on the shortest-path-preserving subgraph), ours fast path
                 (approx="knn", knn_k=16), and networkx on the complete graph, with the principled
                 lengths 1 - |cos| (same graph for all three, so the scores must agree);
  betweenness, paper_compat   the raw signed cosine as networkx weight: ours (the networkx-faithful
                 compiled port) vs networkx itself, as the authors ran it.

Every timing, ours and networkx's alike, is the best of --repeat runs (default 3). networkx runs
only where it finishes in reasonable time (n <= 256 for betweenness, n <= 1024 for
wdc); larger sizes print "skipped (too slow)" - nothing is extrapolated. For the fast path it
reports the overlap of its prune set with the exact one at 25 % and 50 % pruning.

    .venv/bin/python bench/bench_centrality.py            # writes bench/results/centrality.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any, Callable

import networkx as nx
import numpy as np

from audioprune.fileio import write_json
from audioprune.pruning.criteria import get_criterion, select_prune
from audioprune.pruning.criteria.centrality import edge_lengths
from audioprune.pruning.criteria.representatives import cosine_similarity, representatives

RESULTS = Path(__file__).resolve().parent / "results" / "centrality.json"
SKIPPED = "skipped (too slow)"
FAST_KS = (16, 64)  # knn_k of the fast path: 16 is the default, 64 trades time for agreement


def layer(n: int, seed: int = 0) -> np.ndarray:
    """A random CNN14-like conv layer: n filters over n/2 input channels, 3x3."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, max(n // 2, 1), 3, 3), dtype=np.float32)


def timed_best(fn: Callable[[], Any], repeat: int = 1) -> tuple[float, Any]:
    """Best wall time of `repeat` runs, and the last result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


# ---------------------------------------------------------------- the authors' approach (networkx)


def authors_representatives(weights: np.ndarray) -> np.ndarray:
    """rank1_apporx per filter, as in their code: one np.linalg.svd per filter."""
    out, c_in = weights.shape[:2]
    reps = np.zeros((out, weights[0, 0].size))
    for f in range(out):
        u, _, v = np.linalg.svd(weights[f].reshape(c_in, -1).T.astype(np.float64))
        m = np.outer(u[:, 0], v[0])
        reps[f] = m[:, 0] / np.linalg.norm(m[:, 0])
    return reps


def authors_graph(values: np.ndarray) -> nx.Graph:
    n = values.shape[0]
    graph = nx.Graph()
    graph.add_nodes_from(range(n))
    for i in range(n):
        for j in range(i + 1, n):
            graph.add_edge(i, j, weight=values[i, j])
    return graph


def networkx_wdc(weights: np.ndarray) -> np.ndarray:
    from sklearn.metrics.pairwise import cosine_similarity as sk_cosine

    graph = authors_graph(sk_cosine(authors_representatives(weights)))
    wdc = {v: sum(graph.edges[v, u]["weight"] for u in graph.neighbors(v)) for v in graph.nodes()}
    return np.array([wdc[i] for i in range(len(wdc))])


def networkx_betweenness(weights: np.ndarray, paper_compat: bool) -> np.ndarray:
    sim = cosine_similarity(authors_representatives(weights))
    graph = authors_graph(edge_lengths(sim, paper_compat=paper_compat))
    bc = nx.betweenness_centrality(graph, weight="weight")
    return np.array([bc[i] for i in range(len(bc))])


# ---------------------------------------------------------------- helpers


def overlap(a: np.ndarray, b: np.ndarray, fraction: float) -> float:
    k = int(round(fraction * a.size))
    return len(set(select_prune(a, k)) & set(select_prune(b, k))) / max(k, 1)


def same_selection(a: np.ndarray, b: np.ndarray) -> bool:
    return all(overlap(a, b, f) == 1.0 for f in (0.25, 0.5))


def fmt(x: Any, spec: str = ".3f") -> str:
    if isinstance(x, str):
        return x
    return "-" if x is None else format(x, spec)


def bench_size(n: int, args: argparse.Namespace) -> dict[str, Any]:
    """Every timing here, ours and networkx alike, is the best of `args.repeat` runs."""
    w = layer(n)
    row: dict[str, Any] = {"n": n, "shape": list(w.shape), "repeat": args.repeat}

    def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
        return timed_best(fn, args.repeat)

    t_rep, _ = timed(lambda: cosine_similarity(representatives(w)))
    row["rank1_plus_cosine_s"] = t_rep
    t_wdc, wdc = timed(lambda: get_criterion("wdc")(w))
    row["wdc_s"] = t_wdc
    if n <= args.nx_wdc_max:
        t, ref = timed(lambda: networkx_wdc(w))
        row.update(networkx_wdc_s=t, wdc_same_selection=same_selection(wdc, ref))
    else:
        row["networkx_wdc_s"] = SKIPPED

    t_exact, exact = timed(lambda: get_criterion("betweenness")(w))
    row["betweenness_exact_s"] = t_exact
    for k in FAST_KS:
        t_fast, fast = timed(lambda: get_criterion("betweenness", approx="knn", knn_k=k)(w))
        row[f"betweenness_knn{k}_s"] = t_fast
        row[f"knn{k}_overlap_25"] = overlap(fast, exact, 0.25)
        row[f"knn{k}_overlap_50"] = overlap(fast, exact, 0.5)
    if n <= args.nx_betweenness_max:
        t, ref = timed(lambda: networkx_betweenness(w, paper_compat=False))
        row.update(
            networkx_betweenness_s=t,
            betweenness_max_abs_diff=float(np.abs(exact - ref).max()),
            betweenness_same_selection=same_selection(exact, ref),
        )
    else:
        row["networkx_betweenness_s"] = SKIPPED

    if n <= args.compat_max:
        t, compat = timed(lambda: get_criterion("betweenness", paper_compat=True)(w))
        row["compat_betweenness_s"] = t
        if n <= args.nx_betweenness_max:
            t, ref = timed(lambda: networkx_betweenness(w, paper_compat=True))
            row.update(
                networkx_compat_betweenness_s=t,
                compat_max_abs_diff=float(np.abs(compat - ref).max()),
                compat_same_selection=same_selection(compat, ref),
            )
        else:
            row["networkx_compat_betweenness_s"] = SKIPPED
    else:
        row["compat_betweenness_s"] = "skipped (O(n^3) networkx-faithful Dijkstra, minutes)"
        row["networkx_compat_betweenness_s"] = SKIPPED
    return row


def short(text: str) -> str:
    """Table cells say only "skipped"; the reasons are printed under the table."""
    return "skipped" if text.startswith("skipped") else text


def ratio(slow: Any, fast: Any) -> str:
    if isinstance(slow, (int, float)) and isinstance(fast, (int, float)) and fast > 0:
        r = slow / fast
        return f"{r:.0f}x" if r >= 10 else f"{r:.1f}x"
    return "-"


def print_tables(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    print("\nWeighted degree (wdc), weights -> scores")
    print(f"{'n':>5} {'rank1+cos s':>11} {'ours s':>8} {'networkx s':>19} {'nx/ours':>8} {'same set':>8}")
    for r in rows:
        print(
            f"{r['n']:>5} {r['rank1_plus_cosine_s']:>11.3f} {r['wdc_s']:>8.3f} "
            f"{short(fmt(r['networkx_wdc_s'])):>19} {ratio(r['networkx_wdc_s'], r['wdc_s']):>8} "
            f"{fmt(r.get('wdc_same_selection'), ''):>8}"
        )
    print("\nBetweenness, principled lengths 1 - |cos|")
    print(
        f"{'n':>5} {'exact s':>8} {'networkx s':>19} {'nx/exact':>8} {'exact=nx':>8}"
        + "".join(f" {'knn' + str(k) + ' s':>8} {'nx/knn' + str(k):>9} {'overlap 25/50%':>14}" for k in FAST_KS)
    )
    for r in rows:
        nx_s = r["networkx_betweenness_s"]
        line = (
            f"{r['n']:>5} {r['betweenness_exact_s']:>8.2f} {short(fmt(nx_s, '.2f')):>19} "
            f"{ratio(nx_s, r['betweenness_exact_s']):>8} "
            f"{fmt(r.get('betweenness_same_selection'), ''):>8}"
        )
        for k in FAST_KS:
            t = r[f"betweenness_knn{k}_s"]
            line += (
                f" {t:>8.2f} {ratio(nx_s, t):>9} "
                f"{r[f'knn{k}_overlap_25']:>6.2f}/{r[f'knn{k}_overlap_50']:<7.2f}"
            )
        print(line)
    print("\nBetweenness, paper_compat (raw signed cosine as the networkx weight)")
    print(f"{'n':>5} {'ours s':>10} {'networkx s':>19} {'nx/ours':>8} {'same set':>8} {'max |diff|':>11}")
    for r in rows:
        print(
            f"{r['n']:>5} {short(fmt(r['compat_betweenness_s'], '.2f')):>10} "
            f"{short(fmt(r['networkx_compat_betweenness_s'], '.2f')):>19} "
            f"{ratio(r['networkx_compat_betweenness_s'], r['compat_betweenness_s']):>8} "
            f"{fmt(r.get('compat_same_selection'), ''):>8} {fmt(r.get('compat_max_abs_diff'), '.1e'):>11}"
        )
    print(
        f"\nskipped (too slow): networkx wdc for n > {args.nx_wdc_max}, networkx betweenness for "
        f"n > {args.nx_betweenness_max}, ours paper_compat for n > {args.compat_max} "
        "(O(n^3) networkx-faithful Dijkstra: minutes)"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 256, 1024, 2048])
    parser.add_argument("--nx-betweenness-max", type=int, default=256)
    parser.add_argument("--nx-wdc-max", type=int, default=1024)
    parser.add_argument("--compat-max", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=3, help="best of N runs for EVERY timing "
                        "(ours and networkx the same way)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)

    load_at_start = os.getloadavg()[0]
    warm = layer(8)  # first calls pay for imports (igraph, sklearn) and the numba compile
    get_criterion("betweenness", paper_compat=True)(warm)
    get_criterion("betweenness")(warm)
    networkx_wdc(warm)
    rows = []
    for n in args.sizes:
        start = time.perf_counter()
        rows.append(bench_size(n, args))
        print(f"n={n}: done in {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)
    print_tables(rows, args)
    meta = {
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "load_average_1min_at_end": os.getloadavg()[0],
        "networkx": nx.__version__,
        "repeat": args.repeat,
        "load_average_1min_at_start": load_at_start,
    }
    write_json(args.out, {"meta": meta, "rows": rows})
    print(f"\nsaved {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
