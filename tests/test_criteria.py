"""Passive pruning criteria against straightforward references: networkx for the graph measures,
plain loops for the norms and representatives, the authors' greedy loop for similarity pruning,
and Torch-Pruning's FPGMImportance for FPGM."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
import torch

from audioprune.pruning.criteria import (
    as_filter_array,
    centrality,
    describe_criterion,
    get_criterion,
    list_criteria,
    paths,
    prune_order,
    select_prune,
    similarity,
)
from audioprune.pruning.criteria.representatives import (
    cosine_similarity,
    flat_representatives,
    rank1_representatives,
    representatives,
)

ALL_NAMES = {
    "wdc", "wdc-abs", "betweenness", "closeness", "eigenvector", "pagerank", "similarity",
    "similarity-nystrom", "l1", "l2", "opnorm", "opnorm-paper", "fpgm", "random",
}  # fmt: skip
TORCH_PRUNING_NAMES = {"tp-magnitude", "tp-lamp", "tp-fpgm"}  # group importances: no layer form


def conv_weights(out: int, c_in: int = 6, k: int = 3, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((out, c_in, k, k))


def nx_graph(values: np.ndarray, adj: np.ndarray) -> nx.Graph:
    """Built as the authors' code does: nodes first, then edges (i, j) for i < j in order."""
    n = values.shape[0]
    graph = nx.Graph()
    graph.add_nodes_from(range(n))
    for i in range(n):
        for j in range(i + 1, n):
            if adj[i, j]:
                graph.add_edge(i, j, weight=float(values[i, j]))
    return graph


def as_vector(d: dict[int, float]) -> np.ndarray:
    return np.array([d[i] for i in range(len(d))])


def assert_same_selection(ours: np.ndarray, ref: np.ndarray) -> None:
    n = ours.size
    for k in (1, n // 4, n // 2):
        assert set(select_prune(ours, k)) == set(select_prune(ref, k)), k


# ------------------------------------------------------------------ conventions and registry


def test_select_prune_takes_highest_scores_and_breaks_ties_by_lower_index() -> None:
    scores = np.array([0.5, 2.0, 2.0, -1.0, 2.0])
    assert list(prune_order(scores)) == [1, 2, 4, 0, 3]
    assert list(select_prune(scores, 2)) == [1, 2]
    assert list(select_prune(scores, 0)) == []
    with pytest.raises(ValueError):
        select_prune(scores, 6)
    with pytest.raises(ValueError):
        select_prune(np.array([1.0, np.nan]), 1)


def test_registry_lists_every_criterion_and_rejects_unknown_options() -> None:
    assert set(list_criteria("weights")) == ALL_NAMES | TORCH_PRUNING_NAMES
    assert set(list_criteria()) == ALL_NAMES | TORCH_PRUNING_NAMES | {"hrank", "activation",
                                                                       "taylor", "tp-taylor"}
    with pytest.raises(ValueError, match="active"):
        get_criterion("hrank")
    with pytest.raises(ValueError, match="unknown criterion"):
        get_criterion("l3")
    with pytest.raises(ValueError, match="no option"):
        get_criterion("l1", knn=3)
    assert "engine" in describe_criterion("betweenness").options


@pytest.mark.parametrize("shape", [(12, 5, 3, 3), (12, 5, 7), (12, 5)])
def test_every_criterion_scores_conv2d_conv1d_and_linear_from_numpy_or_torch(shape) -> None:
    w = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    for name in sorted(ALL_NAMES):
        crit = get_criterion(name)
        scores = crit(w)
        assert scores.shape == (shape[0],) and scores.dtype == np.float64, name
        assert np.isfinite(scores).all(), name
        np.testing.assert_allclose(crit(torch.from_numpy(w)), scores, err_msg=name)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
@pytest.mark.parametrize("out", [1, 2, 3])
def test_tiny_layers_get_finite_scores(out: int) -> None:
    w = conv_weights(out, c_in=3)
    for name in sorted(ALL_NAMES):
        assert np.isfinite(get_criterion(name)(w)).all(), name


def test_filter_array_shapes_dtypes_and_bad_input() -> None:
    assert as_filter_array(np.zeros((4, 3, 2, 5))).shape == (4, 3, 10)
    assert as_filter_array(np.zeros((4, 3))).shape == (4, 3, 1)
    half = torch.ones(4, 3, 2, dtype=torch.bfloat16, requires_grad=True)
    assert as_filter_array(half).dtype == np.float32
    with pytest.raises(ValueError):
        as_filter_array(np.zeros(5))
    with pytest.raises(ValueError, match="NaN"):
        as_filter_array(np.full((2, 2, 3), np.nan))


# ------------------------------------------------------------------ representatives


def loop_rank1(w: np.ndarray) -> np.ndarray:
    """The authors' rank1_apporx, one filter at a time, on (kh*kw x C_in) matrices."""
    out, c_in = w.shape[:2]
    reps = []
    for f in range(out):
        m = w[f].reshape(c_in, -1).T
        u, _, vt = np.linalg.svd(m)
        col = np.outer(u[:, 0], vt[0])[:, 0]
        reps.append(col / np.linalg.norm(col))
    return np.array(reps)


def test_rank1_representatives_match_the_per_filter_svd_loop() -> None:
    w = conv_weights(20, c_in=7, k=3, seed=2)
    ref = loop_rank1(w)
    np.testing.assert_allclose(rank1_representatives(w), ref, atol=1e-10)
    np.testing.assert_allclose(rank1_representatives(w, method="svd"), ref, atol=1e-10)
    # the representative follows the filter, not the SVD's arbitrary sign
    np.testing.assert_allclose(rank1_representatives(-3.0 * w), -ref, atol=1e-10)
    np.testing.assert_allclose(rank1_representatives(w.astype(np.float32)), ref, atol=1e-5)


def test_rank1_degenerate_filters_get_a_deterministic_or_zero_representative() -> None:
    w = conv_weights(4, c_in=3, seed=3)
    w[0, 0] = 0.0  # channel 0 empty: the first column of the rank-1 approximation is zero
    w[1] = 0.0  # dead filter
    reps = rank1_representatives(w)
    assert np.isfinite(reps).all()
    assert np.isclose(np.linalg.norm(reps[0]), 1.0)
    assert reps[0][np.argmax(np.abs(reps[0]))] > 0
    assert not reps[1].any()
    sim = cosine_similarity(reps)
    assert not sim[1].any() and not sim[:, 1].any()
    assert np.allclose(np.diag(sim)[[0, 2, 3]], 1.0)


def test_auto_representative_is_flat_for_1x1_and_linear() -> None:
    lin = np.random.default_rng(4).standard_normal((6, 10))
    np.testing.assert_allclose(representatives(lin), flat_representatives(lin))
    np.testing.assert_allclose(representatives(lin[:, :, None, None]), flat_representatives(lin))
    conv = conv_weights(6)
    np.testing.assert_allclose(representatives(conv), rank1_representatives(conv))


# ------------------------------------------------------------------ graph centrality vs networkx


def nx_reference(measure: str, sim: np.ndarray, adj: np.ndarray, paper_compat: bool) -> np.ndarray:
    if measure in ("wdc", "wdc-abs"):  # the authors' dict comprehension
        vals = np.abs(sim) if measure == "wdc-abs" else sim
        g = nx_graph(vals, adj)
        return np.array([sum(g.edges[v, u]["weight"] for u in g.neighbors(v)) for v in g.nodes])
    if measure in ("betweenness", "closeness"):
        g = nx_graph(centrality.edge_lengths(sim, paper_compat=paper_compat), adj)
        if measure == "betweenness":
            return as_vector(nx.betweenness_centrality(g, weight="weight"))
        return as_vector(nx.closeness_centrality(g, distance="weight"))
    g = nx_graph(centrality.edge_strengths(sim, paper_compat=paper_compat), adj)
    if measure == "eigenvector":
        return as_vector(nx.eigenvector_centrality_numpy(g, weight="weight"))
    return as_vector(nx.pagerank(g, weight="weight", tol=1e-13, max_iter=10_000))


@pytest.mark.filterwarnings("ignore:overflow:RuntimeWarning", "ignore:invalid:RuntimeWarning")
@pytest.mark.parametrize("paper_compat", [False, True])
@pytest.mark.parametrize("measure", centrality.MEASURES)
@pytest.mark.parametrize("n, knn", [(8, None), (23, None), (40, None), (30, 5)])
def test_centrality_matches_networkx(measure: str, n: int, knn, paper_compat: bool) -> None:
    w = conv_weights(n, seed=n)
    sim = cosine_similarity(representatives(w))
    adj = centrality.graph_adjacency(sim, knn)
    opts = dict(measure=measure, paper_compat=paper_compat, knn=knn)
    if measure == "betweenness":
        opts["tie_break"] = "index"  # networkx's values themselves (ties: test_betweenness_ties_*)
    try:
        ref = nx_reference(measure, sim, adj, paper_compat)
    except (ValueError, nx.PowerIterationFailedConvergence):
        # networkx refuses negative weights here (closeness) or diverges (pagerank): so do we
        assert paper_compat and measure in ("closeness", "pagerank")
        with pytest.raises(ValueError):
            centrality.centrality_scores(w, **opts)
        return
    ours = centrality.centrality_scores(w, **opts)
    np.testing.assert_allclose(ours, ref, atol=1e-6, rtol=0)
    assert_same_selection(ours, ref)
    options = {k: v for k, v in opts.items() if k != "measure"}
    np.testing.assert_allclose(get_criterion(measure, **options)(w), ours)


def test_paper_compat_betweenness_runs_on_negative_weights_like_networkx() -> None:
    sim = cosine_similarity(representatives(conv_weights(25, seed=7)))
    assert (sim < 0).any()
    lengths = centrality.edge_lengths(sim, paper_compat=True)
    adj = paths.complete_adjacency(25)
    ref = as_vector(nx.betweenness_centrality(nx_graph(lengths, adj), weight="weight"))
    np.testing.assert_allclose(centrality.betweenness(lengths, adj), ref, atol=1e-12)
    with pytest.raises(ValueError, match="positive"):
        centrality.betweenness(lengths, adj, engine="igraph")


@pytest.mark.parametrize("decimals", [1, 2])
def test_networkx_port_reproduces_ties_and_zero_lengths(decimals: int) -> None:
    """Rounded cosines give many equal-length paths and zero-length edges."""
    sim = np.round(cosine_similarity(representatives(conv_weights(18, seed=decimals))), decimals)
    adj = paths.complete_adjacency(18)
    for lengths in (sim, np.round(1.0 - np.abs(sim), decimals)):
        ref = as_vector(nx.betweenness_centrality(nx_graph(lengths, adj), weight="weight"))
        ours = centrality.betweenness(lengths, adj, engine="networkx-port")
        np.testing.assert_allclose(ours, ref, atol=1e-12)


def test_networkx_port_runs_as_plain_python_without_numba() -> None:
    sim = cosine_similarity(representatives(conv_weights(9, seed=3)))
    adj = paths.complete_adjacency(9)
    plain = paths._brandes_networkx_kernel(sim, adj)  # the undecorated kernel
    np.testing.assert_allclose(plain, paths.nx_betweenness_raw(sim, adj), atol=1e-12)


def test_sparsified_exact_betweenness_and_closeness_equal_the_complete_graph(monkeypatch) -> None:
    n = 60
    sim = cosine_similarity(representatives(conv_weights(n, seed=11)))
    lengths = centrality.edge_lengths(sim, paper_compat=False)
    adj = paths.complete_adjacency(n)
    kept = paths.shortest_path_edges(lengths, adj, k=4)
    assert kept.sum() < adj.sum()  # some edges provably on no shortest path are gone
    g = nx_graph(lengths, adj)
    ref_b = as_vector(nx.betweenness_centrality(g, weight="weight"))
    ref_c = as_vector(nx.closeness_centrality(g, distance="weight"))
    monkeypatch.setattr(paths, "SPARSIFY_ABOVE", 10)
    monkeypatch.setattr(paths, "SPARSIFY_K", 4)
    np.testing.assert_allclose(centrality.betweenness(lengths, adj), ref_b, atol=1e-12)
    np.testing.assert_allclose(centrality.closeness(lengths, adj), ref_c, atol=1e-12)


def test_knn_fast_path_is_the_measure_on_the_knn_graph() -> None:
    w = conv_weights(50, seed=5)
    fast = get_criterion("betweenness", approx="knn", knn_k=6)(w)
    np.testing.assert_allclose(fast, get_criterion("betweenness", knn=6)(w))
    exact = get_criterion("betweenness")(w)
    overlap = len(set(select_prune(fast, 25)) & set(select_prune(exact, 25)))
    assert overlap >= 15  # an approximation, but a close one
    with pytest.raises(ValueError, match="approx"):
        get_criterion("wdc", approx="knn")(w)


def test_highest_centrality_is_pruned_first() -> None:
    """Five near-copies of one filter and five unrelated ones: the copies are the central ones."""
    rng = np.random.default_rng(9)
    base = rng.standard_normal((1, 4, 3, 3))
    copies = base + 0.05 * rng.standard_normal((5, 4, 3, 3))
    w = np.concatenate([rng.standard_normal((5, 4, 3, 3)), copies])
    for name in ("wdc-abs", "eigenvector", "pagerank"):
        assert set(select_prune(get_criterion(name)(w), 5)) == set(range(5, 10)), name


def test_betweenness_ties_are_ordered_by_weighted_degree_not_by_index() -> None:
    """Near-orthogonal filters: no path through a third filter is shorter than the direct edge,
    so every betweenness is 0 (as on a trained dcase21net's C1). The prune set must then follow
    the weighted degree of |cos|, not "filters 0, 1, 2, ..."."""
    w = conv_weights(16, c_in=1, k=7, seed=3)
    plain = get_criterion("betweenness", tie_break="index")(w)
    assert np.all(plain == 0)
    assert list(select_prune(plain, 8)) == list(range(8))
    scores = get_criterion("betweenness")(w)
    degree = get_criterion("wdc-abs")(w)
    assert list(prune_order(scores)) == list(prune_order(degree))
    assert list(select_prune(scores, 8)) != list(range(8))
    # the authors' convention keeps their plain order
    compat = get_criterion("betweenness", paper_compat=True)(w)
    np.testing.assert_array_equal(compat, get_criterion("betweenness", paper_compat=True,
                                                        tie_break="index")(w))
    with pytest.raises(ValueError, match="tie_break"):
        get_criterion("betweenness", tie_break="lowest")(w)


@pytest.mark.parametrize("seed", range(5))
def test_break_ties_keeps_the_primary_order_and_orders_ties_by_the_secondary(seed: int) -> None:
    rng = np.random.default_rng(seed)
    primary = rng.choice([0.0, 0.0, 0.0, 1e-3, 0.0101, 0.25, 0.2501], size=40)
    secondary = rng.standard_normal(40)
    scores = centrality.break_ties(primary, secondary)
    expected = np.lexsort((np.arange(40), -secondary, -primary))  # primary, then secondary
    assert list(prune_order(scores)) == list(expected)
    np.testing.assert_array_equal(centrality.break_ties(primary, np.zeros(40)), primary)


def test_betweenness_ranking_with_distinct_values_is_unchanged_by_the_tie_break() -> None:
    w = conv_weights(40, seed=40)
    plain = get_criterion("betweenness", tie_break="index")(w)
    scores = get_criterion("betweenness")(w)
    assert 0 < np.count_nonzero(plain) < plain.size  # both kinds present
    higher = np.round(plain[:, None], 12) > np.round(plain[None, :], 12)
    assert np.all(scores[:, None] > scores[None, :], where=higher)  # every strict order kept
    assert np.all(np.abs(scores - plain) < 0.5 * np.diff(np.unique(plain)).min() + 1e-12)


# ------------------------------------------------------------------ similarity pruning


def authors_greedy(dist: np.ndarray) -> list[int]:
    """Importance_claculation.py, with a stable sort of the pairs: returns imp_list."""
    n = dist.shape[0]
    d = dist.copy()
    np.fill_diagonal(d, np.inf)
    q = [[i, int(np.argmin(d[i])), d[i, np.argmin(d[i])]] for i in range(n)]
    order = np.argsort([x[2] for x in q], kind="stable")
    imp_list: list[int] = []
    red_list: list[int] = []
    for i in order:
        index_imp, index_red = q[i][0], q[i][1]
        if index_imp not in red_list:
            imp_list.append(index_imp)
            red_list.append(index_red)
    return imp_list


@pytest.mark.parametrize("paper_compat", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_similarity_scores_reproduce_the_greedy_walk_for_every_n(seed: int, paper_compat) -> None:
    w = conv_weights(31, seed=seed)
    dist = similarity.cosine_distance(cosine_similarity(representatives(w)), paper_compat=paper_compat)
    scores = get_criterion("similarity", paper_compat=paper_compat)(w)
    for n in range(1, 31 // 2 + 1):
        np.testing.assert_array_equal(select_prune(scores, n), similarity.greedy_selection(dist, n))
    marked = similarity.greedy_marks(dist)
    assert set(marked) == set(range(31)) - set(authors_greedy(dist))


def test_similarity_prunes_the_neighbour_of_a_near_duplicate_pair() -> None:
    w = conv_weights(10, seed=4)
    w[7] = w[2] + 1e-4
    assert list(select_prune(get_criterion("similarity")(w), 1)) == [7]
    w[7] = -w[2]  # a negated twin is a duplicate under |cos| only
    assert list(select_prune(get_criterion("similarity")(w), 1)) == [7]
    assert 7 not in select_prune(get_criterion("similarity", paper_compat=True)(w), 1)


def test_paper_compat_distance_is_scipy_cosine() -> None:
    from scipy.spatial import distance

    reps = representatives(conv_weights(6, seed=8))
    d = similarity.cosine_distance(cosine_similarity(reps), paper_compat=True)
    ref = np.array([[distance.cosine(a, b) for b in reps] for a in reps])
    np.testing.assert_allclose(d, ref, atol=1e-12)


@pytest.mark.parametrize("landmarks", ["random", "first"])
def test_nystrom_with_all_landmarks_equals_the_exact_selection(landmarks: str) -> None:
    w = conv_weights(40, c_in=8, k=5, seed=6)
    exact = get_criterion("similarity")(w)
    approx = get_criterion("similarity-nystrom", m=40, landmarks=landmarks)(w)
    np.testing.assert_array_equal(prune_order(approx), prune_order(exact))
    np.testing.assert_allclose(approx, exact, atol=1e-9)


def test_nystrom_error_shrinks_as_landmarks_grow() -> None:
    """Low-rank-ish filters: 4 spatial patterns plus a little noise, 5x5 kernels (25-dim reps)."""
    rng = np.random.default_rng(0)
    patterns = rng.standard_normal((4, 25))
    layers = []
    for _ in range(5):
        reps = rng.standard_normal((120, 4)) @ patterns + 0.05 * rng.standard_normal((120, 25))
        layers.append(reps / np.linalg.norm(reps, axis=1, keepdims=True))

    def mean_error(m: int) -> float:
        errs = []
        for seed, reps in enumerate(layers):
            exact = reps @ reps.T
            approx = similarity.nystrom_similarity(reps, m, seed=seed)
            errs.append(np.linalg.norm(approx - exact) / np.linalg.norm(exact))
        return float(np.mean(errs))

    errors = [mean_error(m) for m in (2, 4, 8, 16, 32)]
    assert all(a > b for a, b in zip(errors, errors[1:])), errors
    assert errors[-1] < 1e-8 < errors[0]  # 32 landmarks span the 25-dim representatives
    reps = representatives(conv_weights(30, seed=1))
    rank2 = similarity.nystrom_similarity(reps, 30, rank=2)
    assert np.linalg.matrix_rank(rank2, tol=1e-8) == 2


# ------------------------------------------------------------------ norms, FPGM, random


def test_norm_criteria_match_loops() -> None:
    w = conv_weights(9, c_in=4, k=3, seed=12)
    l1 = [-np.abs(f).sum() for f in w]
    l2 = [-np.sqrt((f**2).sum()) for f in w]
    op = [-np.linalg.norm(f.reshape(4, -1), 2) for f in w]
    flat = w.reshape(9, -1)
    gm = [-sum(np.linalg.norm(a - b) for b in flat) for a in flat]
    np.testing.assert_allclose(get_criterion("l1")(w), l1)
    np.testing.assert_allclose(get_criterion("l2")(w), l2)
    np.testing.assert_allclose(get_criterion("opnorm")(w), op)
    np.testing.assert_allclose(get_criterion("fpgm")(w), gm)
    assert list(select_prune(get_criterion("l1")(w), 1)) == [int(np.argmin(-np.array(l1)))]


def authors_operator_norm_score(weight: np.ndarray) -> np.ndarray:
    """operator_norm_pruning (audio-pruning/sorted_index_compute), returning Mse_score."""
    c_out, c_in = weight.shape[:2]
    weight = weight.reshape(c_out, c_in, -1)
    directions, means = [], []
    for c in range(c_in):
        a = weight[:, c, :]
        mean = a.mean(0)
        u, _, v = np.linalg.svd(a - mean)
        first_row = np.outer(u[:, 0], v[0])[0]
        directions.append(first_row / np.linalg.norm(first_row))
        means.append(mean)
    score = [np.trace((weight[f] - np.array(means)) @ np.array(directions).T) for f in range(c_out)]
    return np.array(score) ** 2


def test_opnorm_paper_reproduces_the_authors_code() -> None:
    w = conv_weights(16, c_in=5, k=3, seed=13)
    ref = authors_operator_norm_score(w)
    ours = get_criterion("opnorm-paper")(w)
    np.testing.assert_allclose(-ours, ref, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(prune_order(ours)[:8], np.argsort(ref, kind="stable")[:8])


def test_fpgm_torch_pruning_mode_matches_fpgm_importance() -> None:
    import torch_pruning as tp

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 12, 3))
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=torch.randn(1, 3, 8, 8))
    group = graph.get_pruning_group(model[0], tp.prune_conv_out_channels, idxs=list(range(12)))
    importance = tp.importance.FPGMImportance(normalizer=None)(group).numpy()
    ours = get_criterion("fpgm", mode="torch-pruning")(model[0].weight)
    np.testing.assert_allclose(-ours, importance, rtol=1e-4)


def test_random_is_seeded() -> None:
    w = conv_weights(20)
    np.testing.assert_array_equal(get_criterion("random")(w), get_criterion("random")(w))
    assert not np.array_equal(get_criterion("random", seed=1)(w), get_criterion("random")(w))
