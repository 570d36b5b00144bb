"""Smoke tests of the peer benchmarks (bench/): the masks-vs-structural --quick path, and the
result-file bookkeeping that keeps hours of measured results from being overwritten.

Not a timed test: it checks what the benchmark claims structurally (masks keep every stored
parameter and every MAC, structural pruning removes both; the unstructured masks reach the same
per-layer weight sparsity as the structural pruning), and that its JSON has the timings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from audioprune.fileio import read_json, write_json
from conftest import bench_module

_bench_module = bench_module


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


def _run_tiny_recipe(tmp_path: Path, name: str, **sections: Any) -> Path:
    """A 2-fold recipe on synthetic clips (dcase21net, 1 epoch) with `sections` (prune,
    quantize, ...), run into tmp_path/runs; the recipe file's path."""
    import yaml

    from audioprune.pipeline.recipe import load_recipe
    from audioprune.pipeline.runner import run_recipe

    recipe = {
        "name": name, "out": str(tmp_path / "runs"),
        "dataset": {"name": "synthetic", "split": "fold:1/3",
                    "frontend": {"n_mels": 40, "clip_seconds": 0.5}},
        "folds": [1, 2], "seed": 0, "profile": False, "report": False,
        "models": [{"name": "dcase21net", "train": {"epochs": 1, "batch_size": 8, "lr": 0.003}}],
        **sections}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(recipe))
    run_recipe(load_recipe(path), tmp_path / "runs", progress=False)
    return path


def test_the_benchmark_recorder_pairs_methods_at_their_budget(tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """bench/benchmark.py: a recipe's runs aggregated over folds - every method's per-unit values
    and intervals, its budget, the paired difference to the reference at the same budget (a
    variant and a from-scratch baseline too), the budget check."""
    benchmark = _bench_module("benchmark")
    path = _run_tiny_recipe(tmp_path, "tiny-bench", prune=[
        {"criteria": ["tp-magnitude", "l1"], "target_macs": [0.5], "finetune": {"epochs": 1},
         "scratch": ["labels"]},
        {"criteria": ["tp-magnitude"], "target_macs": [0.5], "resolution": [1.5, 1.0],
         "finetune": {"epochs": 1}}])
    out = benchmark.record(path, ["tp-magnitude"], out=tmp_path / "tiny.json")
    record = read_json(out)
    methods = {m["label"]: m for m in record["methods"]}
    assert record["train_seconds_total"] == pytest.approx(
        sum(m["train_seconds"] for m in methods.values()), abs=0.1)
    assert all(m["train_seconds"] > 0 for m in methods.values())
    runs = sum(len(m["runs"]) for m in methods.values())  # every run says which CPU trained it
    assert record["trained_on"] == {benchmark.benchlib.machine()["cpu"]: runs}
    rendered = _bench_module("write_benchmarks").recipe_benchmark(out, "cmd")
    assert f"Trained on {record['machine']['cpu']} ({runs} runs)." in rendered
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

    # README's headline reads these records: per budget the best plain method, our best
    # criterion and its paired difference to Torch-Pruning's best, all from the record
    write_benchmarks = _bench_module("write_benchmarks")
    monkeypatch.setattr(write_benchmarks, "HEADLINE", (("TINY", out, "2 folds"),))
    monkeypatch.setattr(write_benchmarks.benchlib, "ROOT", tmp_path)
    row = next(line for line in write_benchmarks.headline(out, "cmd").splitlines()
               if line.startswith("| TINY (2 folds) |")).split(" | ")
    best, second = sorted((l1, tpm), key=lambda m: -m["mean_ci_t"]["mean"])
    assert row[2] == "2 of 2"
    assert row[3].startswith(f"`{best['criterion']}` {100 * best['mean_ci_t']['mean']:.1f}")
    assert row[5].startswith(f"`{second['criterion']}`")
    assert row[6].startswith(f"`l1` {100 * l1['mean_ci_t']['mean']:.1f}")
    assert row[7].startswith(f"{100 * pair['mean']:+.1f}")
    assert "res(" not in row[3] + row[5]  # a variant is not a criterion of the headline
    # a method more than 2% under its budget on some fold is not at the budget: never the best
    missed = dict(record, methods=[dict(m, missed_budget=["fold1-s0"]) if m is best else m
                                   for m in record["methods"]])
    write_json(tmp_path / "missed.json", missed)
    monkeypatch.setattr(write_benchmarks, "HEADLINE", (("TINY", tmp_path / "missed.json", "2"),))
    row = next(line for line in write_benchmarks.headline(out, "cmd").splitlines()
               if line.startswith("| TINY (2) |")).split(" | ")
    assert row[3].startswith(f"`{second['criterion']}`") and row[5] == "-"


@pytest.mark.slow  # ~40 s: 2 folds x (train, prune, 4 quantizations)
def test_the_int8_benchmark_pairs_each_copy_with_the_fp32_run_it_came_from(
        tmp_path: Path) -> None:
    """BENCHMARKS section 8 is a recipe with two `quantize:` sections, recorded by benchmark.py:
    each int8 copy (static, dynamic; of the parent and of the pruned model) is a method paired
    unit by unit with the fp32 run it was quantized from, and the table shows both sizes."""
    pytest.importorskip("onnxruntime")
    benchmark = _bench_module("benchmark")
    path = _run_tiny_recipe(
        tmp_path, "tiny-int8",
        prune={"criteria": ["l1"], "per_layer": [{"C1": 0.5, "C2": 0.5}], "finetune": {"epochs": 1}},
        quantize=[{"calibration_batches": 1, "of": ["train", "prune"]},
                  {"method": "dynamic", "of": ["train", "prune"]}])
    record = read_json(benchmark.record(path, [], out=tmp_path / "int8.json"))
    assert record["finished"] == record["steps"] == 2 * (1 + 1 + 4)
    by_label = {m["label"]: m for m in record["methods"]}
    quantized = [m for m in record["methods"] if m["kind"] == "quantized"]
    assert sorted(m["criterion"] for m in quantized) == ["int8 dynamic", "int8 dynamic",
                                                          "int8 static", "int8 static"]
    for m in quantized:
        fp32 = by_label[m["parent_label"]]  # the parent or the pruned method
        assert fp32["kind"] in ("unpruned", "pruned") and sorted(m["values"]) == sorted(fp32["values"])
        diff = m["vs_parent_t"]
        assert diff["n"] == 2 and diff["mean"] == pytest.approx(
            sum(m["values"][u] - fp32["values"][u] for u in m["values"]) / 2)
        assert m["macs"] == fp32["macs"]  # quantizing keeps the model's arithmetic
    static = next(m for m in quantized if m["criterion"] == "int8 static"
                  and by_label[m["parent_label"]]["kind"] == "unpruned")
    assert static["size_bytes"] < 0.5 * by_label[static["parent_label"]]["size_bytes"]
    write_benchmarks = _bench_module("write_benchmarks")
    text = write_benchmarks.quantize(tmp_path / "int8.json", "cmd")
    rows = [line for line in text.splitlines() if line.startswith("| dcase21net")]
    assert len(rows) == 4 and "12 of 12 runs finished" in text
    row = next(r for r in rows if r.startswith(f"| {static['parent_label']} | int8 static |"))
    assert static["fp32_onnx_bytes"] > 3 * static["size_bytes"]  # int8 ONNX vs fp32 ONNX
    assert row.endswith(f"| {static['size_bytes'] / 1e3:,.0f} | "
                        f"{static['fp32_onnx_bytes'] / 1e3:,.0f} | "
                        f"{by_label[static['parent_label']]['size_bytes'] / 1e3:,.0f} |")


def test_the_quick_criteria_benchmark_is_a_variant_of_the_full_recipe() -> None:
    """`make bench` runs the criteria recipe's `quick` variant: the same recipe, a smaller
    matrix, in its own runs folder so it never mixes with the full benchmark's runs."""
    from audioprune.pipeline.recipe import load_recipe
    from audioprune.pipeline.runner import recipe_folds
    from audioprune.pipeline.steps import plan_steps

    root = Path(__file__).resolve().parents[1]
    full = load_recipe(root / "recipes/fsdd/criteria.yaml")
    quick = load_recipe(root / "recipes/fsdd/criteria.yaml", "quick")
    assert quick.out_dir != full.out_dir and quick.name == f"{full.name}-quick"
    steps = plan_steps(quick, recipe_folds(quick))
    prunes = [s for s in steps if s.kind == "prune"]
    assert {s.fold for s in steps} == {1} and len(prunes) == 4
    assert {s.criterion.tag for s in prunes} < {s.criterion.tag for s in
                                               plan_steps(full, recipe_folds(full))
                                               if s.kind == "prune"}
    run_quick = _bench_module("run_quick")
    argv = run_quick.BENCHES["criteria"][0]
    assert argv[:4] == ["benchmark.py", "recipes/fsdd/criteria.yaml", "--variant", "quick"]


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


def test_quaternion_modes_record_pairs_the_modes_and_checks_the_proved_equalities(
        tmp_path: Path) -> None:
    """bench/bench_quaternion_modes.py: each criterion's accuracy per fold in both modes, their
    paired difference, and the share of removed quaternions in common, read from the runs;
    wdc and l1 remove the same quaternions in both modes (the engine's proof), and the record
    finds that from the runs themselves."""
    import yaml

    from audioprune.pipeline.recipe import load_recipe
    from audioprune.pipeline.runner import run_recipe

    modes = _bench_module("bench_quaternion_modes")
    group = {"criteria": ["wdc", "l1", "betweenness"], "per_layer": [{"C1": 0.5, "C2": 0.5}],
             "finetune": {"epochs": 0}}
    recipe = {"name": "tiny-qmodes", "out": str(tmp_path / "runs"),
              "dataset": {"name": "synthetic", "split": "fold:1/3",
                          "frontend": {"n_mels": 40, "clip_seconds": 0.5}},
              "folds": [1, 2], "seed": 0, "profile": False, "report": False,
              "models": [{"name": "qdcase21net", "train": {"epochs": 1, "batch_size": 8}}],
              "prune": [{**group, "quaternion_mode": "aggregate", "tag": "qa"},
                        {**group, "quaternion_mode": "concat", "tag": "qc"}]}
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(recipe))
    run_recipe(load_recipe(path), tmp_path / "runs", progress=False)
    data = read_json(modes.record(path, out=tmp_path / "modes.json"))
    assert data["finished"] == data["steps"] == 14 and set(data["parents"]) == {"fold1", "fold2"}
    for crit in ("wdc", "l1"):
        c = data["criteria"][crit]
        assert c["same_by_proof_holds"] and c["shared_fraction_mean"] == 1.0
        assert c["aggregate"]["values"] == c["concat"]["values"]  # same filters, same model
        assert c["concat_minus_aggregate"]["mean"] == 0.0
    b = data["criteria"]["betweenness"]
    assert sorted(b["aggregate"]["values"]) == ["fold1", "fold2"]
    assert 0.0 <= b["shared_fraction_mean"] <= 1.0
    diff = sum(b["concat"]["values"][u] - b["aggregate"]["values"][u] for u in ("fold1", "fold2"))
    assert b["concat_minus_aggregate"]["mean"] == pytest.approx(diff / 2)



def _method(label: str, criterion: str, variant: str, budget: float | None, values: list[float],
            *, kind: str = "pruned", vs: dict[str, Any] | None = None,
            vs_parent: float | None = None, missed: bool = False) -> dict[str, Any]:
    """One method as benchmark.py records it, with only what the target table reads."""
    mean = sum(values) / len(values)
    return {"label": label, "kind": kind, "criterion": criterion, "variant": variant,
            "budget": budget, "scratch_of": None, "model": "net",
            "values": {f"fold{i + 1}-s0": v for i, v in enumerate(values)},
            "mean_ci_t": {"mean": mean, "low": mean - 0.05, "high": mean + 0.05, "n": len(values)},
            "vs": vs or {}, "missed_budget": ["fold1-s0"] if missed else [],
            "vs_parent_t": None if vs_parent is None else
            {"mean": vs_parent, "low": vs_parent - 0.02, "high": vs_parent + 0.02, "n": 3}}


def _diff(mean: float, low: float) -> dict[str, Any]:
    """A paired difference as benchmark.py records it (Student's t)."""
    return {"t": {"mean": mean, "low": low, "high": 2 * mean - low, "n": 3,
                  "significant": low > 0}}


def _heavy_methods(budget: float, lead: dict[str, Any], gap: float) -> list[dict[str, Any]]:
    """At one budget: the two references (tp-magnitude leads), ours (tp-magnitude with the
    resolution searched, `lead` ahead of tp-magnitude, `gap` from the parent), and a higher
    mean that missed its budget on a fold."""
    tpm = _method(f"tpm{budget}", "tp-magnitude", "", budget, [0.70, 0.72, 0.74])
    tpt = _method(f"tpt{budget}", "tp-taylor", "", budget, [0.60, 0.62, 0.64])
    res = _method(f"res{budget}", "tp-magnitude", "res(search)", budget, [0.75, 0.76, 0.77],
                  vs={tpm["label"]: lead, tpt["label"]: _diff(0.14, 0.1)}, vs_parent=gap)
    missed = _method(f"missed{budget}", "l1", "", budget, [0.9, 0.9, 0.9], missed=True,
                     vs={tpm["label"]: _diff(0.18, 0.15)}, vs_parent=0.1)
    return [tpm, tpt, res, missed]


def test_the_target_table_pairs_our_best_with_torch_prunings_best(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue 26's target, read off heavy-budget records: Torch-Pruning's best is a plain
    reference importance (tp-magnitude with a resolution search is ours), our best is compared
    with it by the record's own paired interval, a method that missed its budget is not at the
    budget, the parent gap counts at 15 %, and records on other parents are not paired."""
    write_benchmarks = _bench_module("write_benchmarks")
    parent = _method("parent", "", "", None, [0.8, 0.8, 0.8], kind="unpruned")

    def record(methods: list[dict[str, Any]], base: dict[str, Any] = parent) -> dict[str, Any]:
        return {"methods": [base, *methods], "references": ["tp-magnitude", "tp-taylor"],
                "finished": 9, "steps": 9}

    ahead = _diff(0.04, 0.01)
    write_json(tmp_path / "met.json", record(_heavy_methods(0.3, ahead, -0.05)
                                             + _heavy_methods(0.15, ahead, -0.02)))
    write_json(tmp_path / "short.json", record(_heavy_methods(0.3, _diff(0.04, -0.01), 0.0)
                                               + _heavy_methods(0.15, ahead, -0.05)))
    write_json(tmp_path / "elsewhere.json", record(
        _heavy_methods(0.3, ahead, 0.0), base=dict(parent, values={"fold1-s0": 0.7})))
    monkeypatch.setattr(write_benchmarks, "HEAVY_TARGET", (
        ("MET", 5, ("met.json",)), ("SHORT", 15, ("short.json",)),
        ("MIXED", 5, ("met.json", "elsewhere.json"))))
    text = write_benchmarks.heavy_target(tmp_path, "cmd")
    rows = [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines()
            if line.startswith("| ") and line.split("|")[1].strip() in ("MET", "SHORT", "MIXED")]
    by_key = {(r[0], r[2]): r for r in rows}
    met30 = by_key[("MET", "30%")]
    assert met30[3] == "`tp-magnitude` 72.0 [67.0, 77.0]"
    assert met30[4] == "`tp-magnitude res(search)` 76.0 [71.0, 81.0]"
    assert met30[5:] == ["+4.0 [+1.0, +7.0] *", "-5.0 [-7.0, -3.0]", "met"]
    assert by_key[("MET", "15%")][7] == "met"
    assert by_key[("SHORT", "30%")][7] == "not met: not ahead by 1 point with the interval above 0"
    assert by_key[("SHORT", "15%")][7] == "not met: more than 3 points under the parent"
    assert by_key[("MIXED", "30%")][7] == "records on different parents: not paired"
    assert "`met.json` (9 of 9 runs)" in text
