"""Smoke tests of the peer benchmarks (bench/): the masks-vs-structural --quick path, and the
result-file bookkeeping that keeps hours of measured results from being overwritten.

Not a timed test: it checks what the benchmark claims structurally (masks keep every stored
parameter and every MAC, structural pruning removes both; the unstructured masks reach the same
per-layer weight sparsity as the structural pruning), and that its JSON has the timings.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from audioprune.fileio import read_json
from conftest import bench_module

_bench_module = bench_module


def test_two_criteria_calls_sharing_one_results_file_keep_each_others_runs(tmp_path: Path) -> None:
    bench_criteria = _bench_module("bench_criteria")
    out = tmp_path / "criteria.json"
    a = {"runs": {"p|wdc|0.5|s1|ft5": {"seed": 1}}, "parents": {"p": {}}, "seed_parents": {"1": "p"}}
    b = {"runs": {}, "parents": {}, "seed_parents": {}}
    bench_criteria.save_shared(out, a)  # call A (seed 1) saves first ...
    b["runs"]["q|l1|0.5|s2|ft5"] = {"seed": 2}
    b["seed_parents"]["2"] = "q"
    bench_criteria.save_shared(out, b)  # ... call B (seed 2), which read the file before A wrote
    a["runs"]["p|l1|0.5|s1|ft5"] = {"seed": 1}
    a["calls"] = [{"seeds": [1]}]
    bench_criteria.save_shared(out, a)
    saved = read_json(out)
    assert set(saved["runs"]) == {"p|wdc|0.5|s1|ft5", "p|l1|0.5|s1|ft5", "q|l1|0.5|s2|ft5"}
    assert saved["seed_parents"] == {"1": "p", "2": "q"}
    assert saved["calls"] == [{"seeds": [1]}]


def test_study_summary_never_replaces_saved_results_with_fewer_runs(capsys) -> None:
    fsdd_study = _bench_module("fsdd_study")
    five = fsdd_study.mean_sd([0.7, 0.8, 0.75, 0.72, 0.69])
    one = fsdd_study.mean_sd([0.7])
    saved = {"study A": {"finetune_epochs": 10, "parent": {"accuracy": five},
                         "wdc": {"after_finetune": five}, "betweenness": {"after_finetune": five}},
             "study B": {"parent": {"accuracy": five}}}
    # a checkout whose runs/ holds one parent and a new betweenness run for 5 seeds
    fresh = {"study A": {"finetune_epochs": 10, "parent": {"accuracy": one},
                         "betweenness": {"after_finetune": fsdd_study.mean_sd([0.6] * 5)}}}
    merged = fsdd_study.keep_saved(saved, fresh, depth=2)
    assert merged["study B"] == saved["study B"]  # not run here: kept
    assert merged["study A"]["parent"] == saved["study A"]["parent"]  # 1 run < 5: kept
    assert merged["study A"]["wdc"] == saved["study A"]["wdc"]
    assert merged["study A"]["betweenness"]["after_finetune"]["mean"] == 0.6  # 5 runs: replaced
    assert "kept the saved study A / parent" in capsys.readouterr().err


@pytest.mark.slow  # ~7 s of CPU, most of it first-time imports (meta-device model rebuilds)
def test_bench_masks_quick(tmp_path: Path) -> None:
    bench_masks = _bench_module("bench_masks")
    out = tmp_path / "masks.json"
    assert bench_masks.main(["--quick", "--rounds", "1", "--budget", "0.001", "--batches", "1",
                             "--out", str(out)]) == 0
    res = read_json(out)["results"][0]
    v = res["variants"]
    dense, ours = v["dense"], v["ours (structural)"]
    for name in ("l1_unstructured (mask)", "ln_structured (mask)", "ln_structured (mask baked)"):
        assert v[name]["macs"] == dense["macs"] == res["macs"]  # masks change no MAC
        assert v[name]["params_stored"] == dense["params_stored"]
        assert v[name]["nonzero_weights"] < dense["nonzero_weights"]
    assert ours["macs"] < 0.5 * dense["macs"] and ours["params_stored"] < 0.5 * dense["params_stored"]
    assert ours["widths"]["conv1"] == dense["widths"]["conv1"] // 2  # ratio 0.5 of 16 filters
    assert v["ln_structured (mask)"]["nonzero_weights"] == v["ln_structured (mask baked)"]["nonzero_weights"]
    # the unstructured masks zero as many conv/linear weights as structural pruning removed
    # (BN and bias entries differ: structural pruning removes those too)
    gap = v["l1_unstructured (mask)"]["nonzero_weights"] - ours["nonzero_weights"]
    assert 0 < gap < 0.05 * dense["params_stored"]
    # the timings are one round (--rounds 1) per variant, each ratio that round's time over the
    # dense model's (how the ratio is taken over several rounds: the test below)
    for name, row in v.items():
        t = row["latency_b1"]
        assert t["rounds"] == 1 and t["p10_ms"] == pytest.approx(t["ms"], abs=1e-4) == t["p90_ms"]
        assert t["ratio"] == pytest.approx(t["ms"] / dense["latency_b1"]["ms"], rel=2e-3), name


def test_round_robin_takes_per_round_medians_and_ratios(monkeypatch: pytest.MonkeyPatch) -> None:
    """benchlib.round_robin on a fake clock: the dense variant takes 2 ms a call (1 ms of CPU),
    the half one 1 ms (0.5 ms); in round 2 a load spike triples the dense calls only, in round 3
    both. A variant's time is the median of its per-round medians; a ratio is the median of the
    per-round ratios, so the spike that hit one side only does not move it (the ratio of the
    medians would be 1/6)."""
    benchlib = _bench_module("benchlib")

    class Clock:  # stands for the time module inside benchlib
        wall = cpu = 0.0

        def perf_counter(self) -> float:
            return self.wall

        def process_time(self) -> float:
            return self.cpu

    clock, calls = Clock(), []
    monkeypatch.setattr(benchlib, "time", clock)
    warmup, per_round = 1, 5  # 10 ms budget / 2 ms for the slower variant's probe call
    first_timed = 2 * (warmup + 1)  # the warm-up calls and one probe call per variant come first
    load = {"dense": [1, 3, 3], "half": [1, 1, 3]}

    def variant(name: str, ms: float):
        def fn() -> None:
            index = len(calls)
            calls.append(name)
            r = (index - first_timed) // (2 * per_round)
            factor = load[name][r] if index >= first_timed else 1
            clock.wall += ms * factor / 1e3
            clock.cpu += ms * factor / 2e3
        return fn

    times = benchlib.round_robin({"dense": variant("dense", 2.0), "half": variant("half", 1.0)},
                                 rounds=3, budget_s=0.01, warmup=warmup)
    assert len(calls) == first_timed + 3 * 2 * per_round
    starts = [calls[first_timed + 2 * per_round * r] for r in range(3)]
    assert starts == ["dense", "half", "dense"]  # the order rotates from round to round
    assert times.wall == {"dense": pytest.approx([2.0, 6.0, 6.0]), "half": pytest.approx([1.0, 1.0, 3.0])}
    assert times.ms("dense") == 6.0 and times.ms("half") == 1.0 and times.ms("half", cpu=True) == 0.5
    assert times.ratio("half", "dense") == 0.5
    row = times.row("half", "dense")
    assert row["rounds"] == 3 and (row["p10_ms"], row["p90_ms"]) == (1.0, 2.6)


def test_the_studies_are_recipes_whose_runs_the_summaries_read(tmp_path: Path) -> None:
    """bench/fsdd_study.py and bench/kd_study.py build recipes; the paths their summaries read
    are the recipe runner's run names (a rename on one side would silently empty a table)."""
    from audioprune.pipeline.steps import plan_steps

    fsdd_study, kd_study = _bench_module("fsdd_study"), _bench_module("kd_study")
    names = {}
    for recipe in fsdd_study.study_recipes():
        names.update({tmp_path / recipe.name / s.run_name: s for s in plan_steps(recipe)})
    for model, split, epochs, ft, criteria in fsdd_study.STUDIES:
        for seed in fsdd_study.SEEDS:
            assert fsdd_study.parent_run(tmp_path, model, split, epochs, seed) in names
            for c in criteria:
                step = names[fsdd_study.prune_run(tmp_path, model, split, epochs, ft, c, seed)]
                assert step.seed == seed and step.group.finetune.epochs == ft
                assert step.criterion.tag == c and step.plan["ratios"] == {"C1": 0.5, "C2": 0.5}
    for m in ("dcase21net", "qdcase21net"):
        assert fsdd_study.parent_run(tmp_path, m, "official", 40, 0) in names
    recipe = kd_study.study_recipe(20, 10)
    kd_names = {tmp_path / recipe.name / s.run_name: s for s in plan_steps(recipe)}
    for seed in kd_study.SEEDS:
        kd = kd_names[kd_study.run_dir(tmp_path, 20, 10, "student-kd", seed)]
        assert kd.kind == "distill" and kd.parent == f"teacher-s{seed}"
        assert kd_study.run_dir(tmp_path, 20, 10, "student-labels", seed) in kd_names


def test_claims_table_verdicts_follow_the_intervals_and_flag_partial_runs() -> None:
    claims_table = _bench_module("claims_table")
    assert claims_table._side({"mean": 0.0, "low": -0.015, "high": 0.01, "n": 6}, -0.02) == "holds"
    assert claims_table._side({"mean": -0.05, "low": -0.08, "high": -0.03, "n": 6},
                              -0.02) == "does not hold"
    assert claims_table._side({"mean": -0.02, "low": -0.05, "high": 0.01, "n": 6},
                              -0.02) == "inconclusive"
    assert claims_table._side({"mean": 0.0, "low": 0.0, "high": 0.0, "n": 1}, -0.02) == "inconclusive"
    method = {"kind": "pruned", "criterion": "wdc", "label": "wdc", "values": {"fold1": 0.7},
              "macs_ratio": 0.28, "params_ratio": 0.51,
              "vs_parent_bootstrap": {"mean": -0.01, "low": -0.015, "high": -0.005, "n": 2}}
    row = claims_table.claim1({"methods": [method], "finished": 3, "steps": 7})
    assert "partial: 3 of 7 runs" in row[2] and "MACs -72.0%" in row[2]
    assert row[3] == "< 2 points (provisional, per criterion): holds"
    assert claims_table.claim3(None)[2] == "not measured yet"


def _claim_method(label: str, kind: str, model: str, macs: float, params: float,
                  vs: dict[str, tuple[float, float, float]], seconds: float = 100.0,
                  plan: str | None = None) -> dict:
    return {"label": label, "kind": kind, "model": model, "plan": plan, "macs": macs,
            "params": params, "values": {"fold1": 0.7, "fold2": 0.8}, "train_seconds": seconds,
            "total_seconds": seconds + 500, "mean_ci_bootstrap": {"mean": 0.75, "low": 0.7,
                                                                "high": 0.8, "n": 2},
            "vs_methods": {k: {"bootstrap": {"mean": m, "low": lo, "high": hi, "n": 2}}
                           for k, (m, lo, hi) in vs.items()}}


def test_claims_3_and_4_verdicts_pair_across_kinds_and_check_the_costs() -> None:
    claims_table = _bench_module("claims_table")
    cnn = _claim_method("cnn6 e20", "unpruned", "cnn6 e20", 100.0, 1000.0, {})
    light = _claim_method("q/25%", "pruned", "qcnn6 e20", 80.0, 200.0, {"cnn6 e20": (0.0, -0.01, 0.01)},
                          plan="C3-C4=25%")
    half = _claim_method("q/50%", "pruned", "qcnn6 e20", 50.0, 150.0, {"cnn6 e20": (0.0, -0.01, 0.01)},
                         plan="C3-C4=50%")
    worse = _claim_method("q/75%", "pruned", "qcnn6 e20", 30.0, 100.0, {"cnn6 e20": (-0.1, -0.15, -0.05)},
                          plan="C3-C4=75%")
    row = claims_table.claim3({"methods": [cnn, light, half, worse], "finished": 4, "steps": 4})
    assert "C3-C4=50%: MACs -50%, params -85%, accuracy vs CNN +0.0 [-1.0, +1.0]" in row[2]
    # 25%: too many MACs left whatever the accuracy; 50%: holds; 75%: cheap but 10 points worse
    assert row[3].startswith("holds (it needs one level")
    assert row[3].endswith("C3-C4=25%: cost not met, accuracy holds; C3-C4=50%: cost met, "
                           "accuracy holds; C3-C4=75%: cost met, accuracy does not hold")
    half["vs_methods"]["cnn6 e20"]["bootstrap"]["low"] = -0.05  # now inconclusive
    assert claims_table.claim3({"methods": [cnn, light, half, worse], "finished": 4,
                                "steps": 4})[3].startswith("inconclusive")
    # every level that meets the cost loses accuracy: the claim does not hold
    assert claims_table.claim3({"methods": [cnn, light, worse], "finished": 3,
                                "steps": 3})[3].startswith("does not hold")
    labels = _claim_method("qcnn6(widths=..) e20", "unpruned", "qcnn6(widths=..) e20", 50.0,
                           50.0, {})
    teacher = _claim_method("qcnn6 e20", "unpruned", "qcnn6 e20", 100.0, 100.0, {})
    kd = _claim_method("kd", "distilled", "qcnn6 small", 50.0, 50.0, {}, seconds=300.0)
    pruned = _claim_method("qcnn6 e20 / l1", "pruned", "qcnn6 e20", 50.0, 50.0,
                           {"kd": (0.01, -0.005, 0.03)}, seconds=100.0)
    row = claims_table.claim4({"methods": [labels, teacher, pruned, kd], "finished": 4, "steps": 4})
    assert row[2].startswith("teacher (100 params) 75.0% [70.0, 80.0] (100 s, 600 s with the "
                             "teacher); pruned (50 params)")
    assert "labels-only student (50 params)" in row[2]
    assert "pruned - KD student +1.0 [-0.5, +3.0] points" in row[2]
    assert row[3].startswith("matches (within 2 points) or beats: holds; lower training cost: "
                             "holds (100 vs 300 s")
    kd["train_seconds"] = 50.0
    assert "lower training cost: does not hold" in claims_table.claim4(
        {"methods": [labels, teacher, pruned, kd], "finished": 4, "steps": 4})[3]


def test_the_benchmark_recorder_pairs_methods_at_their_budget(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """bench/benchmark.py: a recipe's runs aggregated over folds - every method's per-unit values
    and intervals, its budget, the paired difference to the reference at the same budget (a
    variant and a from-scratch baseline too), the budget check."""
    import yaml

    from audioprune.pipeline.recipe import load_recipe
    from audioprune.pipeline.runner import run_recipe

    benchmark = _bench_module("benchmark")
    recipe = {
        "name": "tiny-bench", "out": str(tmp_path / "runs"),
        "dataset": {"name": "synthetic", "split": "fold:1/3",
                    "frontend": {"n_mels": 40, "clip_seconds": 0.5}},
        "folds": [1, 2], "seed": 0, "profile": False, "report": False,
        "models": [{"name": "dcase21net", "train": {"epochs": 1, "batch_size": 8, "lr": 0.003}}],
        "prune": [{"criteria": ["tp-magnitude", "l1"], "target_macs": [0.5],
                   "finetune": {"epochs": 1}, "scratch": ["labels"]},
                  {"criteria": ["tp-magnitude"], "target_macs": [0.5], "resolution": [1.5, 1.0],
                   "finetune": {"epochs": 1}}]}
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(recipe))
    run_recipe(load_recipe(path), tmp_path / "runs", progress=False)
    out = benchmark.record(path, ["tp-magnitude"], out=tmp_path / "tiny.json")
    methods = {m["label"]: m for m in read_json(out)["methods"]}
    by_kind = {}
    for m in methods.values():
        by_kind.setdefault((m["criterion"], m["variant"], m["scratch_of"] is not None), m)
    l1 = by_kind[("l1", "", False)]
    tpm = by_kind[("tp-magnitude", "", False)]
    res = by_kind[("tp-magnitude", "res(1.5x1)", False)]
    assert l1["budget"] == tpm["budget"] == res["budget"] == 0.5
    assert sorted(l1["values"]) == ["fold1-s0", "fold2-s0"] and l1["mean_ci_t"]["n"] == 2
    pair = l1["vs"][tpm["label"]]["t"]
    assert pair["n"] == 2 and pair["mean"] == pytest.approx(
        sum(l1["values"][u] - tpm["values"][u] for u in l1["values"]) / 2)
    assert tpm["label"] in res["vs"] and tpm["label"] not in tpm["vs"]
    assert all(0.4 < m["macs_ratio"] <= 0.5 for m in (l1, tpm, res))
    assert l1["missed_budget"] == [] or all(u in l1["values"] for u in l1["missed_budget"])
    scratch = next(m for m in methods.values() if m["scratch_of"])
    assert scratch["scratch_of"] in methods and scratch["budget"] == 0.5
    assert scratch["scratch_of"] in scratch["vs"] and scratch["macs"] == pytest.approx(
        methods[scratch["scratch_of"]]["macs"])
    source = methods[scratch["scratch_of"]]  # compared at its source's plan and costs
    assert scratch["base_plan"] == source["base_plan"]
    assert scratch["macs_ratio"] == pytest.approx(source["macs_ratio"])


def test_claims_rows_name_their_data_and_their_own_recipe(tmp_path: Path) -> None:
    """Each claim has an FSDD and a RAVDESS row (claim 2 is arithmetic), each naming the recipe
    that measures it; a results file missing for one dataset leaves the other's row alone."""
    claims_table = _bench_module("claims_table")
    (tmp_path / f"{claims_table.CLAIM3}.json").write_text(
        '{"methods": [], "finished": 0, "steps": 4}')
    rows = claims_table.rows(tmp_path)
    assert [(r[0], r[1]) for r in rows] == [("1", "FSDD"), ("1", "RAVDESS"), ("2", "-"),
                                            ("3", "FSDD"), ("3", "RAVDESS"), ("4", "FSDD"),
                                            ("4", "RAVDESS")]
    fsdd3, ravdess3 = rows[3], rows[4]
    assert fsdd3[3].startswith("no CNN run yet") and "qcnn_pruned_vs_cnn_loso.yaml" in fsdd3[5]
    assert ravdess3[3] == "not measured yet"
    assert ravdess3[5] == "`python bench/claims.py recipes/claims/ravdess_qcnn_pruned_vs_cnn.yaml`"


def test_every_generated_table_matches_its_results_file(capsys: pytest.CaptureFixture) -> None:
    """BENCHMARKS.md, README.md and the docs hold exactly what bench/write_benchmarks.py renders
    from bench/results/ today: a results file re-measured without regenerating the documents,
    or a table edited by hand, fails here."""
    write_benchmarks = _bench_module("write_benchmarks")
    assert write_benchmarks.main(["--check"]) == 0, capsys.readouterr().out
