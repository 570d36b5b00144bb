"""YAML recipes and `audioprune run`: validation names the key, the shipped recipes load (on every
dataset), a tiny recipe runs end to end (train -> prune -> fine-tune -> distil -> report), a
second run skips every finished step, a changed recipe is refused, killed steps restart, and the
profile step runs once per run."""

from __future__ import annotations

import copy
import json
import shutil
import sys
import types
from pathlib import Path
from typing import Any

import audioprune.runs.train as experiment
import pytest
import yaml

import audioprune.train.fit as fit_module
from audioprune.cli import main
from audioprune.errors import UserError
from audioprune.fileio import write_json
from audioprune.pipeline.recipe import (
    builtin_recipes,
    load_recipe,
    parse_recipe,
    resolve_recipe,
)
from audioprune.pipeline.runner import run_recipe, with_overrides
from audioprune.pipeline.steps import plan_steps

REPO = Path(__file__).resolve().parents[1]
PAPER_RECIPES = ("dcase21net_centrality", "cnn14_centrality", "qcnn_prune_vs_kd")
DATASETS = ("esc50", "urbansound8k", "gtzan", "ravdess", "audioset", "tau2020")

TINY_DATA = {"name": "synthetic", "split": "sizes:40,20,20",
             "frontend": {"n_mels": 40, "clip_seconds": 0.5}}
TINY_TRAIN = {"epochs": 1, "batch_size": 8, "lr": 0.003}
TINY: dict[str, Any] = {
    "name": "tiny",
    "dataset": TINY_DATA,
    "models": [{"name": "dcase21net", "train": TINY_TRAIN}],
    "prune": {"criteria": ["wdc", "l1"], "layers": "C1-C2", "ratios": [0.5],
              "finetune": {"epochs": 1}},
    "distill": {"teacher": "dcase21net", "students": [
        {"name": "student", "arch": "dcase21net", "kwargs": {"width": 0.5}, "train": TINY_TRAIN}]},
    "profile": False,
}


def write_recipe(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


# ------------------------------------------------------------------------------ validation

BASE: dict[str, Any] = {"name": "t", "dataset": "synthetic", "models": [{"name": "dcase21net"}],
                        "prune": {"criteria": ["wdc"], "ratios": [0.5]}}


def _set(d: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    d = copy.deepcopy(d)
    *parents, last = path.split(".")
    node: Any = d
    for key in parents:
        node = node[int(key)] if key.isdigit() else node[key]
    if value is KeyError:
        del node[last]
    else:
        node[last] = value
    return d


@pytest.mark.parametrize("path,value,expected", [
    ("dataset", KeyError, "missing key 'dataset'"),
    ("modles", [], "unknown key 'modles'; did you mean 'models'?"),
    ("models.0.train", {"epoch": 3}, "unknown key 'models[0].train.epoch'; did you mean 'epochs'?"),
    ("models.0.train", {"epochs": "ten"}, "models[0].train.epochs: Input should be a valid integer"),
    ("models.0.name", "cnn99", "models[0].name: unknown model 'cnn99'"),
    ("dataset", "nosuch", "dataset.name: unknown dataset 'nosuch'"),
    ("dataset", {"name": "synthetic", "splt": "small"}, "unknown key 'dataset.splt'; did you mean "
     "'split'?"),
    ("prune.ratios", [0.5, 1.5], "prune[0].ratios: each ratio is the fraction of filters removed"),
    ("prune.ratios", 0.5, "prune[0].ratios: Input should be a valid list"),
    ("prune.ratios", [], "prune[0]: give at least one plan"),
    ("prune.criteria", ["wdcc"], "prune[0].criteria[0]: unknown criterion 'wdcc' (did you mean "
     "'wdc'?)"),
    ("prune.criteria", [{"name": "wdc", "options": {"paper_compt": True}}],
     "prune[0].criteria[0].options: criterion 'wdc' has no option paper_compt"),
    ("prune.models", ["cnn14"], "prune[0].models: 'cnn14' is not a model of this recipe"),
    ("prune.target_macs", ["lots"], "prune[0].target_macs: target_macs 'lots': not a number; give "
     "a fraction of the model's own in (0, 1), such as 0.5 or 50%, or a count >= 1"),
    ("prune.target_macs", [1.0], "prune[0].target_macs: target_macs 1.0: that keeps the whole "
     "model: nothing to prune"),
    ("prune", [{"criteria": ["wdc"], "ratios": [0.5]}, {"criteria": ["wdc"], "ratios": [0.5]}],
     "prune[1].criteria[0]: its run 'dcase21net-wdc-r50' clashes with prune[0].criteria[0]"),
    ("distill", {"teacher": "cnn6", "students": [{"name": "s", "arch": "dcase21net"}]},
     "distill[0].teacher: 'cnn6' is not a model of this recipe"),
    ("distill", {"teacher": "dcase21net", "alpha": 2, "students": [{"name": "s"}]},
     "distill[0].alpha: Input should be less than or equal to 1"),
    ("profile", {"batch_sizes": ["one"]}, "profile.batch_sizes[0]: Input should be a valid integer"),
    ("prune.budgets", ["dcase1999"], "prune[0].budgets: budget 'dcase1999': give a name"),
    ("prune.distill", {"alpha": 3}, "prune[0].distill.alpha: Input should be less than or equal to 1"),
    ("quantize", {"method": "fp8"}, "quantize[0].method: Input should be 'static' or 'dynamic'"),
    ("seeds", [1, 1], "seeds: give distinct non-negative seeds"),
    ("name", "my recipe", "name: use letters, digits"),
])
def test_validation_errors_name_the_key(path: str, value: Any, expected: str) -> None:
    with pytest.raises(UserError) as err:
        parse_recipe(_set(BASE, path, value), "r.yaml")
    assert f"r.yaml: {expected}" in str(err.value), str(err.value)


def test_every_problem_is_listed_and_the_cli_exits_2(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture) -> None:
    bad = _set(_set(BASE, "models.0.train", {"epochs": "ten", "lrr": 1}), "prune.ratios", [2])
    path = write_recipe(tmp_path / "bad.yaml", bad)
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err
    assert "3 problems" in err and "models[0].train.epochs" in err and "unknown key 'models[0].train.lrr'; did you mean 'lr'?" in err
    assert "prune[0].ratios" in err and "Traceback" not in err
    (tmp_path / "broken.yaml").write_text("name: [unclosed\n")
    assert main(["run", str(tmp_path / "broken.yaml")]) == 2
    assert "is not valid YAML" in capsys.readouterr().err
    assert main(["run", str(tmp_path / "missing.yaml")]) == 2
    assert "not found" in capsys.readouterr().err


def test_a_dataset_without_its_root_fails_before_training(tmp_path: Path) -> None:
    recipe = parse_recipe(_set(BASE, "dataset", "esc50"))
    with pytest.raises(UserError, match="needs its data: add `root: DIR`.*data_root"):
        run_recipe(recipe, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_run_names_for_every_kind_of_plan() -> None:
    recipe = parse_recipe(_set(BASE, "prune", [
        {"criteria": ["wdc", {"name": "wdc", "options": {"paper_compat": True}, "label": "wdcp"}],
         "ratios": [0.25, 0.125], "layers": ["C1", "C2"]},
        {"criteria": ["l1"], "per_layer": [{"C1": 0.5, "conv2": 0.25}], "target_macs": ["30M"],
         "target_params": [20000], "global": True, "tag": "g"}]))
    assert [s.run_name for s in plan_steps(recipe)] == [
        "dcase21net", "dcase21net-wdc-r25", "dcase21net-wdc-r12p5", "dcase21net-wdcp-r25",
        "dcase21net-wdcp-r12p5", "dcase21net-g-l1-C1-50_conv2-25", "dcase21net-g-l1-macs30M-global",
        "dcase21net-g-l1-params20000-global"]
    budget = parse_recipe({**BASE, "prune": {"criteria": ["l1"], "budgets": ["dcase2024"],
                                              "precision": "fp32"},
                           "quantize": {"of": ["prune"], "qat_epochs": 2}})
    steps = plan_steps(budget)
    assert [(s.kind, s.run_name, s.parent) for s in steps] == [
        ("train", "dcase21net", None), ("prune", "dcase21net-l1-dcase2024-fp32", "dcase21net"),
        ("quantize", "dcase21net-l1-dcase2024-fp32-int8-qat2", "dcase21net-l1-dcase2024-fp32")]
    assert steps[1].plan["budget"] == "dcase2024" and steps[1].plan["precision"] == "fp32"
    both = plan_steps(parse_recipe({**BASE, "quantize": [{"of": ["train"]},
                                                         {"of": ["train"], "method": "dynamic"},
                                                         {"of": ["train"], "reduce_range": False}]}))
    assert [(s.run_name, s.where) for s in both if s.kind == "quantize"] == [
        ("dcase21net-int8", "quantize[0]"), ("dcase21net-int8-dynamic", "quantize[1]"),
        ("dcase21net-int8-8bit", "quantize[2]")]
    matrix = parse_recipe({**BASE, "seeds": [3, 5]})
    steps = plan_steps(matrix, [2])
    assert [(s.run_name, s.parent, s.fold, s.seed) for s in steps] == [
        ("dcase21net-fold2-s3", None, 2, 3), ("dcase21net-fold2-s5", None, 2, 5),
        ("dcase21net-wdc-r50-fold2-s3", "dcase21net-fold2-s3", 2, 3),
        ("dcase21net-wdc-r50-fold2-s5", "dcase21net-fold2-s5", 2, 5)]
    from audioprune.pipeline.runner import fingerprint

    assert fingerprint(steps[0], matrix)["train"]["seed"] == 3  # the unit's seed, not `seed`
    assert fingerprint(steps[3], matrix)["data"]["seed"] == 5
    # KD weights set by hand name the run (two groups that differ only there must not clash);
    # on the defaults the names stay as they were
    kd_recipe = parse_recipe(_set(BASE, "prune", [
        {"criteria": ["l1"], "ratios": [0.5], "distill": {}, "iterative": 2, "progressive": True},
        {"criteria": ["l1"], "ratios": [0.5], "distill": {"alpha": 0.5}, "iterative": 2,
         "progressive": True},
        {"criteria": ["l1"], "ratios": [0.5], "distill": {"temperature": 2, "alpha": 0.25}}]))
    kd = plan_steps(kd_recipe)
    assert [s.run_name for s in kd[1:]] == [
        "dcase21net-l1-r50-prog2", "dcase21net-l1-r50-prog2-kda05", "dcase21net-l1-r50-kdT2a025"]
    assert fingerprint(kd[2], kd_recipe)["distill"]["alpha"] == 0.5


# ------------------------------------------------------------------------------ shipped recipes


def test_shipped_recipes_load_and_run_on_every_dataset() -> None:
    shipped = sorted(p.stem for p in (REPO / "recipes").glob("*.yaml"))
    assert set(PAPER_RECIPES) | {"fsdd_quick"} <= set(shipped)
    for name in shipped:
        load_recipe(REPO / "recipes" / f"{name}.yaml")
    for name in PAPER_RECIPES:
        recipe = load_recipe(REPO / "recipes" / f"{name}.yaml")
        assert recipe.dataset.name in DATASETS  # one line to change
        for dataset in DATASETS:
            changed = with_overrides(recipe, dataset=dataset, data_root="/data")
            assert changed.dataset.name == dataset and changed.dataset.root == "/data"
    steps = plan_steps(load_recipe(REPO / "recipes" / "dcase21net_centrality.yaml"))
    assert len(steps) == 1 + 6 * 3 and all(s.plan.get("layers") == ["C1", "C2"] for s in steps[1:])
    qcnn = load_recipe(REPO / "recipes" / "qcnn_prune_vs_kd.yaml")
    kinds = [s.kind for s in plan_steps(qcnn)]
    assert kinds.count("train") == 2 and kinds.count("prune") == 9 and kinds.count("distill") == 3
    assert all(s.parent == "qcnn14" for s in plan_steps(qcnn) if s.kind != "train")
    for path in sorted((REPO / "recipes" / "claims").glob("*.yaml")):  # each with a full variant
        base, full = load_recipe(path), load_recipe(path, "full")
        assert base.folds == "all" and full.name == f"{base.name}-full"
        if base.dataset.name == "fsdd":  # the paper's own data
            assert full.dataset.name != "fsdd"
        else:  # RAVDESS: the paper's training length and size, three seeds
            assert base.dataset.name == "ravdess" and base.out_dir == "runs/ravdess"
            assert full.out_dir == "runs/ravdess-full" and full.seeds == [0, 1, 2]
            assert min(m.train.epochs for m in full.models) > max(m.train.epochs
                                                                 for m in base.models)
    fsdd = load_recipe(REPO / "recipes" / "fsdd_quick.yaml")
    # both sides resolved: ../shared may be a link (it is on CI)
    assert (REPO / fsdd.dataset.root).resolve() == \
        (REPO.parent / "shared" / "datasets" / "fsdd").resolve()


@pytest.mark.parametrize("path, variant, shares_with", [
    ("recipes/ravdess/heavy.yaml", "ft15-leaders", ("recipes/ravdess/heavy.yaml", None)),
    ("recipes/fsdd/heavy.yaml", "ft15", ("recipes/fsdd/heavy.yaml", None)),
    ("recipes/ravdess/heavy.yaml", "ft15", ("recipes/ravdess/heavy.yaml", None)),
    ("recipes/ravdess/heavy.yaml", "ft5", ("recipes/ravdess/heavy.yaml", None)),
    ("recipes/fsdd/heavy.yaml", "ft5", ("recipes/fsdd/heavy.yaml", None)),
    ("recipes/ravdess/heavy.yaml", "ft15-kd05", ("recipes/ravdess/heavy.yaml", "ft15")),
    ("recipes/fsdd/heavy.yaml", "ft15-kd05", ("recipes/fsdd/heavy.yaml", "ft15")),
    ("recipes/ravdess/heavy.yaml", "ft15-kd05", ("recipes/ravdess/heavy.yaml", None)),
    ("recipes/fsdd/heavy.yaml", "ft15-kd05", ("recipes/fsdd/heavy.yaml", None)),
    ("recipes/fsdd/heavy.yaml", "ft15-scratch", ("recipes/fsdd/heavy.yaml", "ft15")),
    ("recipes/fsdd/heavy.yaml", "ft15-scratch", ("recipes/fsdd/heavy.yaml", None)),
    ("recipes/fsdd/heavy.yaml", "ft15-half", ("recipes/fsdd/heavy.yaml", "ft15")),
    ("recipes/fsdd/heavy.yaml", "ft15-half", ("recipes/fsdd/heavy.yaml", None)),
    ("recipes/ravdess/quantize.yaml", None, ("recipes/claims/ravdess_qcnn_prune_vs_kd.yaml", None)),
])
def test_a_benchmark_that_shares_runs_plans_the_same_runs(
        path: str, variant: str | None, shares_with: tuple[str, str | None]) -> None:
    """A recipe (or variant) that names another's `out:` reuses that recipe's finished runs only
    if each run it shares is the same step: same name, same fingerprint (else the runner would
    stop on the mismatch, or a record would mix settings)."""
    from audioprune.pipeline.runner import fingerprint, recipe_folds

    mine, theirs = load_recipe(REPO / path, variant), load_recipe(REPO / shares_with[0],
                                                                  shares_with[1])
    assert mine.out_dir == theirs.out_dir
    their_steps = {s.run_name: s for s in plan_steps(theirs, recipe_folds(theirs))}
    shared = [s for s in plan_steps(mine, recipe_folds(mine)) if s.run_name in their_steps]
    kinds = {s.kind for s in shared}
    assert {"train", "prune"} <= kinds and len(shared) >= 12
    for step in shared:
        assert fingerprint(step, mine) == fingerprint(their_steps[step.run_name], theirs), \
            step.run_name
    # a variant is a part of its base recipe; ft15-scratch and ft15-half, parts of ft15 too
    whole_part = variant and shares_with[0] == path and (
        shares_with[1] is None or variant in ("ft15-scratch", "ft15-half"))
    if whole_part:
        assert len(shared) == len(plan_steps(mine, recipe_folds(mine)))


def test_fsdd_prune_vs_kd_compares_at_matched_parameters() -> None:
    """The recipe's pruned teachers, KD student and labels-only student have the same size: the
    plan is applied to the teacher architecture (random weights) as prune would."""
    import torch

    from audioprune.data.registry import get_dataset_info
    from audioprune.measure.counting import count_params
    from audioprune.models.registry import create_model
    from audioprune.pruning.body import prune_body

    recipe = load_recipe(REPO / "recipes" / "fsdd_prune_vs_kd.yaml")
    assert recipe.dataset.name == "fsdd" and recipe.dataset.split == "speaker:nicolas"
    steps = {s.run_name: s for s in plan_steps(recipe)}
    teacher = steps["teacher-cnn6-w0.25"].model
    labels = steps["student-cnn6-w0.125-labels"].model
    kd = steps["student-cnn6-w0.125-kd"]
    assert kd.kind == "distill" and kd.parent == "teacher-cnn6-w0.25"
    assert (kd.model.architecture, kd.model.kwargs) == (labels.architecture, labels.kwargs)
    assert kd.model.train == labels.train  # the only difference is the teacher
    pruned = [s for s in steps.values() if s.kind == "prune"]
    assert {s.criterion.name for s in pruned} == {"l1", "wdc"}
    assert all(s.parent == "teacher-cnn6-w0.25" for s in pruned)

    fe = get_dataset_info("fsdd").frontend
    student = count_params(create_model(labels.architecture, 10, frontend=fe, **labels.kwargs))
    for step in pruned:
        torch.manual_seed(0)
        model = create_model(teacher.architecture, 10, frontend=fe, **teacher.kwargs)
        full = count_params(model)
        prune_body(model, step.group.spec(step.criterion, step.plan))
        assert count_params(model) < full / 3
        assert abs(count_params(model) / student - 1) <= 0.10, step.run_name


def test_builtin_demo_recipe() -> None:
    assert "demo" in builtin_recipes()
    demo = resolve_recipe("demo")
    steps = plan_steps(demo)
    assert [s.run_name for s in steps if s.kind == "train"] == ["dcase21net", "qdcase21net"]
    crits = {s.criterion.name for s in steps if s.criterion is not None}
    assert crits == {"wdc", "l1"} and len(steps) == 2 + 2 * 2 * 2
    on_fsdd = with_overrides(demo, dataset="fsdd", data_root="/x")
    assert on_fsdd.dataset.frontend == {} and on_fsdd.dataset.root == "/x"  # synthetic's settings go


# ------------------------------------------------------------------------------ running


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The tiny recipe run once: (recipe file, output directory)."""
    root = tmp_path_factory.mktemp("recipe")
    path = write_recipe(root / "tiny.yaml", TINY)
    result = run_recipe(load_recipe(path), root / "out", progress=False)
    assert result.ran == ["train dcase21net", "prune dcase21net-wdc-r50", "prune dcase21net-l1-r50",
                          "distill student"]
    return path, root / "out"


def test_tiny_recipe_end_to_end(finished: tuple[Path, Path]) -> None:
    _, out = finished
    parent = json.loads((out / "dcase21net" / "metrics.json").read_text())
    for name in ("dcase21net-wdc-r50", "dcase21net-l1-r50"):
        m = json.loads((out / name / "metrics.json").read_text())
        assert m["parent"]["run"] == str((out / "dcase21net").resolve())
        assert m["pruning"]["plan"]["resolved"]["counts"] == {"conv1": 8, "conv2": 8}
        assert m["params"] == 23_726 and len(m["history"]) == 1  # fine-tuned one epoch
        assert m["parent"]["accuracy"] == parent["accuracy"]
    assert json.loads((out / "dcase21net-wdc-r50" / "metrics.json").read_text())[
        "pruning"]["criterion"] == "wdc"
    student = json.loads((out / "student" / "metrics.json").read_text())
    assert student["distill"]["teacher"]["run"] == str((out / "dcase21net").resolve())
    assert student["params"] < parent["params"]

    by_name = {r["run"]: r for r in _csv_rows(out / "report" / "report.csv")}
    assert set(by_name) == {"dcase21net", "dcase21net-wdc-r50", "dcase21net-l1-r50", "student"}
    assert by_name["student"]["kind"] == "distilled" and by_name["student"]["criterion"].startswith("kd")
    assert float(by_name["dcase21net-l1-r50"]["value"]) == json.loads(
        (out / "dcase21net-l1-r50" / "metrics.json").read_text())["accuracy"]
    # compute: the runs' own timings; the pruned model and the student also pay for the parent
    l1 = json.loads((out / "dcase21net-l1-r50" / "metrics.json").read_text())
    assert float(by_name["dcase21net"]["compute_seconds"]) == parent["train_seconds"]
    assert float(by_name["dcase21net-l1-r50"]["compute_seconds"]) == l1["train_seconds"]
    assert float(by_name["student"]["compute_seconds"]) == student["distill"]["total_seconds"]
    assert float(by_name["student"]["total_compute_seconds"]) == pytest.approx(
        student["distill"]["total_seconds"] + parent["train_seconds"])
    assert (out / "report" / "accuracy_vs_macs.png").stat().st_size > 10_000


def test_budget_with_kd_fine_tuning_then_int8(tmp_path: Path) -> None:
    """The DCASE-style pipeline: prune to a budget at int8, fine-tune distilling from the parent,
    quantize the pruned model; folds give every step once per fold."""
    spec = {
        "name": "deploy", "dataset": {**TINY_DATA, "split": "fold:1/2"}, "folds": [1, 2],
        "models": [{"name": "dcase21net", "train": TINY_TRAIN}],
        "prune": {"criteria": ["l1"], "budgets": ["params_bytes=30k,macs=4M"],
                  "finetune": {"epochs": 1}, "distill": {"temperature": 2.0, "alpha": 0.5}},
        "quantize": {"of": ["prune"], "calibration_batches": 1}, "profile": False}
    recipe = parse_recipe(spec)
    result = run_recipe(recipe, tmp_path / "out", progress=False)
    pruned = [f"dcase21net-l1-paramsbytes30kmacs4M-kdT2a05-fold{k}" for k in (1, 2)]
    int8 = [f"dcase21net-l1-paramsbytes30kmacs4M-kdT2a05-int8-fold{k}" for k in (1, 2)]
    assert result.ran == ["train dcase21net-fold1", "train dcase21net-fold2"] + \
        [f"prune {p}" for p in pruned] + [f"quantize {q}" for q in int8]
    out = tmp_path / "out"
    m = json.loads((out / pruned[0] / "metrics.json").read_text())
    clip = 0.5  # seconds per example: the budget's MACs per second x 0.5
    assert m["params"] <= 30_000 and m["macs"] <= 4_000_000 * clip
    assert m["pruning"]["plan"]["requested"]["budget"] == "params_bytes=30k,macs=4M"
    assert m["distill"]["temperature"] == 2.0 and m["distill"]["alpha"] == 0.5
    assert m["distill"]["teacher"]["run"] == str((out / "dcase21net-fold1").resolve())
    q = json.loads((out / int8[0] / "metrics.json").read_text())
    assert q["precision"] == "int8" and q["parent"]["run"] == str((out / pruned[0]).resolve())
    assert q["split"] == "fold:1/2"
    rows = {r["run"]: r for r in _csv_rows(out / "report" / "report.csv")}
    assert rows[int8[0]]["kind"] == "quantized" and rows[int8[0]]["precision"] == "int8"
    assert rows[int8[0]]["parent"] == str((out / pruned[0]).resolve())
    again = run_recipe(recipe, out, progress=False)  # everything done: nothing runs again
    assert again.ran == []
    assert "7-bit" in q["quantization"]["weights"]
    # 8-bit weights from the recipe: only the new int8 runs are made, and they are 8-bit
    full = parse_recipe({**spec, "report": False, "quantize": [
        {"of": ["prune"], "calibration_batches": 1, "reduce_range": False}]})
    assert run_recipe(full, out, progress=False).ran == \
        [f"quantize {q.replace('-int8-', '-int8-8bit-')}" for q in int8]
    q8 = json.loads((out / int8[0].replace("-int8-", "-int8-8bit-") / "metrics.json").read_text())
    assert q8["quantization"]["weights"] == "int8, symmetric, full range"


def _csv_rows(path: Path) -> list[dict[str, str]]:
    import csv

    return list(csv.DictReader(path.open()))


def test_second_run_skips_every_finished_step(finished: tuple[Path, Path],
                                              monkeypatch: pytest.MonkeyPatch,
                                              capsys: pytest.CaptureFixture) -> None:
    path, out = finished
    mtimes = {p: p.stat().st_mtime_ns for p in out.rglob("*") if p.is_file()
              and "report" not in p.parts}
    calls: list[str] = []

    def refuse(name: str) -> Any:
        def fn(*args: Any, **kwargs: Any) -> None:
            calls.append(name)
            raise AssertionError(f"{name} called on a finished step")
        return fn

    import audioprune.runs.prune as prune

    import audioprune.runs.distill as distill

    monkeypatch.setattr(experiment, "train_run", refuse("train_run"))
    monkeypatch.setattr(prune, "prune_run", refuse("prune_run"))
    monkeypatch.setattr(distill, "distill_run", refuse("distill_run"))
    (out / "report" / "report.md").unlink()
    assert main(["run", str(path), "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr()
    assert calls == []
    assert "0 steps run, 4 skipped as done before" in printed.out
    assert "| dcase21net-wdc-r50 |" in printed.out and "report:" in printed.out
    assert printed.err.count("done before, skipped") == 4
    assert {p: p.stat().st_mtime_ns for p in mtimes} == mtimes  # nothing rewritten
    assert (out / "report" / "report.md").is_file()  # the report is rebuilt


def test_a_changed_recipe_is_refused_naming_the_difference(finished: tuple[Path, Path],
                                                           tmp_path: Path) -> None:
    _, out = finished
    changed = _set(TINY, "prune.finetune", {"epochs": 3})
    with pytest.raises(UserError, match=r"dcase21net-wdc-r50 was made by a different version of "
                       r"prune\[0\].criteria\[0\] \(finetune.epochs: 1 -> 3\)"):
        run_recipe(parse_recipe(changed), out, progress=False)
    stranger = tmp_path / "out" / "dcase21net"  # a directory the pipeline did not make
    stranger.mkdir(parents=True)
    (stranger / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="not made by this pipeline"):
        run_recipe(parse_recipe(TINY), tmp_path / "out", progress=False)
    assert (stranger / "notes.txt").read_text() == "mine"


def test_a_step_killed_as_it_began_is_run_again_not_refused(finished: tuple[Path, Path],
                                                            tmp_path: Path) -> None:
    """A kill inside the first write of a step (its recipe_step.json) leaves only that write's
    temp file in the run directory: the step is new, not a stranger's directory (CI saw this)."""
    _, done = finished
    out = tmp_path / "out"
    shutil.copytree(done, out)
    run = out / "dcase21net-l1-r50"
    shutil.rmtree(run)
    run.mkdir()
    (run / ".recipe_step.json.k1ll3d.tmp").write_text('{"step": "pru')
    result = run_recipe(parse_recipe(TINY), out, progress=False)
    assert result.ran == ["prune dcase21net-l1-r50"]
    assert not list(run.glob(".*.tmp"))
    assert json.loads((run / "recipe_step.json").read_text())["criterion"] == "l1"
    assert (run / "metrics.json").is_file()


@pytest.mark.slow
def test_killed_steps_restart_and_finish_as_if_never_stopped(tmp_path: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    data = {**TINY, "models": [{"name": "dcase21net", "train": TINY_TRAIN}],
            "prune": {"criteria": ["l1"], "layers": "C1-C2", "ratios": [0.5],
                      "finetune": {"epochs": 2}}}
    del data["distill"]
    recipe = parse_recipe(data)
    out = tmp_path / "out"

    # 1. the parent is killed before its first epoch ends: no checkpoint, so it starts again
    real_fit = experiment.fit

    def killed(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(experiment, "fit", killed)
    with pytest.raises(KeyboardInterrupt):
        run_recipe(recipe, out, progress=False)
    assert (out / "dcase21net" / "config.json").is_file()
    assert not (out / "dcase21net" / "metrics.json").exists()
    monkeypatch.setattr(experiment, "fit", real_fit)

    # 2. the prune step is killed right after its first fine-tuning epoch's checkpoint
    real_save = fit_module.save_checkpoint

    def save_then_die(run_dir: Path, model: Any, opt: Any, sched: Any, state: dict) -> None:
        real_save(run_dir, model, opt, sched, state)
        if "rounds" in run_dir.parts and state["epoch"] == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(fit_module, "save_checkpoint", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        run_recipe(recipe, out, progress=False)
    pruned = out / "dcase21net-l1-r50"
    assert (out / "dcase21net" / "metrics.json").is_file()
    assert (pruned / "rounds" / "round1" / "checkpoint" / "last.json").is_file()
    assert not (pruned / "metrics.json").exists()
    monkeypatch.setattr(fit_module, "save_checkpoint", real_save)

    resumed_from: list[int] = []
    real_load = fit_module.load_checkpoint

    def spy_load(*args: Any, **kwargs: Any) -> dict:
        state = real_load(*args, **kwargs)
        resumed_from.append(state["epoch"])
        return state

    monkeypatch.setattr(fit_module, "load_checkpoint", spy_load)
    result = run_recipe(recipe, out, progress=False)
    assert result.ran == ["prune dcase21net-l1-r50"] and result.skipped == ["train dcase21net"]
    assert resumed_from == [1]  # continued from its checkpoint, not started over
    stopped = json.loads((pruned / "metrics.json").read_text())

    monkeypatch.setattr(fit_module, "load_checkpoint", real_load)
    shutil.copytree(out / "dcase21net", tmp_path / "clean" / "dcase21net")  # the same parent
    clean = run_recipe(recipe, tmp_path / "clean", progress=False)
    assert clean.ran == ["prune dcase21net-l1-r50"]
    uninterrupted = json.loads((tmp_path / "clean" / "dcase21net-l1-r50" / "metrics.json").read_text())
    assert [h["train_loss"] for h in stopped["history"]] == pytest.approx(
        [h["train_loss"] for h in uninterrupted["history"]], rel=1e-5)
    assert stopped["accuracy"] == uninterrupted["accuracy"]
    assert stopped["parent"]["accuracy"] == uninterrupted["parent"]["accuracy"]


def test_profile_step_runs_once_per_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The pipeline's profile step (the profiler itself is tested elsewhere): profile_run is
    called with the recipe's settings once per run, and a rerun does not profile again."""
    calls: list[tuple[str, tuple[int, ...], int | None, bool]] = []

    def profile_run(run_dir: Path, *, batch_sizes: tuple[int, ...] = (1, 32),
                    threads: int | None = None, onnx: bool = True) -> dict:
        calls.append((Path(run_dir).name, batch_sizes, threads, onnx))
        m = json.loads((Path(run_dir) / "metrics.json").read_text())
        stats = {"median": m["macs"] / 1e7, "p10": 0.0, "p90": 0.0, "repeats": 3}
        prof = {"params": {"total": m["params"]}, "threads": threads,
                "latency_ms": {"eager": {f"b{b}": stats for b in batch_sizes}}}
        write_json(Path(run_dir) / "profile.json", prof)
        return prof

    fake = types.ModuleType("audioprune.runs.profile")
    fake.profile_run = profile_run  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "audioprune.runs.profile", fake)
    data = {**TINY, "prune": {"criteria": ["l1"], "ratios": [0.5], "finetune": {"epochs": 0}},
            "profile": {"batch_sizes": [1], "threads": 1, "onnx": False}}
    del data["distill"]
    recipe = parse_recipe(data)
    result = run_recipe(recipe, tmp_path / "out", progress=False)
    assert calls == [("dcase21net", (1,), 1, False), ("dcase21net-l1-r50", (1,), 1, False)]
    assert "eager b1 (ms)" in result.report.table  # type: ignore[union-attr]
    again = run_recipe(recipe, tmp_path / "out", progress=False)
    assert len(calls) == 2 and again.ran == []


def test_demo_command_runs_the_builtin_recipe(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                              capsys: pytest.CaptureFixture) -> None:
    """`audioprune demo` wiring (the full demo takes minutes; its steps are tested above)."""
    import audioprune.demo as demo
    from audioprune.pipeline.runner import PipelineResult

    seen: list[tuple[Any, Path]] = []

    def fake_run(recipe: Any, out: Path, progress: bool = True) -> PipelineResult:
        seen.append((recipe, out))
        return PipelineResult(out, [], None, seconds=1.0)

    monkeypatch.setattr(demo, "run_recipe", fake_run)
    fsdd = tmp_path / "fsdd"
    assert main(["demo", "--dataset", "fsdd", "--data-root", str(fsdd), "--epochs", "3"]) == 0
    recipe, out = seen[-1]
    assert out == Path("runs/demo-fsdd") and recipe.name == "demo"
    assert recipe.dataset.name == "fsdd" and recipe.dataset.root == str(fsdd)
    assert [m.train.epochs for m in recipe.models] == [3, 3]
    assert recipe.prune[0].finetune.epochs == 2  # --epochs is the parents' training only
    assert main(["demo", "--out", str(tmp_path / "d")]) == 0
    recipe, out = seen[-1]
    assert out == tmp_path / "d" and recipe.dataset.name == "synthetic"
    assert recipe.dataset.frontend == {"n_mels": 40}
    assert "0 steps run" in capsys.readouterr().out


def test_folds_run_every_step_once_per_fold_with_its_own_parent() -> None:
    from audioprune.pipeline.recipe import parse_recipe
    from audioprune.pipeline.runner import data_spec, fingerprint, recipe_folds
    from audioprune.pipeline.steps import plan_steps

    recipe = parse_recipe({"name": "cv", "dataset": "synthetic", "folds": "all",
                           "models": [{"name": "m", "arch": "dcase21net"}],
                           "prune": {"criteria": ["wdc"], "ratios": [0.5]}}, "cv.yaml")
    folds = recipe_folds(recipe)
    assert folds == [1, 2, 3, 4, 5]
    steps = plan_steps(recipe, folds)
    assert [s.run_name for s in steps[:5]] == [f"m-fold{k}" for k in folds]  # parents first
    prunes = [s for s in steps if s.kind == "prune"]
    assert [(s.run_name, s.parent, s.fold) for s in prunes[:2]] == [
        ("m-wdc-r50-fold1", "m-fold1", 1), ("m-wdc-r50-fold2", "m-fold2", 2)]
    assert data_spec(recipe, 3).options["split"] == "fold:3"
    assert fingerprint(steps[0], recipe) != fingerprint(steps[1], recipe)  # the fold is part of it
    assert plan_steps(recipe)[0].run_name == "m"  # without folds: the names as before
    with pytest.raises(UserError, match="has folds 1..5"):
        recipe_folds(recipe.model_copy(update={"folds": [6]}))


def test_a_variant_replaces_whole_sections_gets_its_own_name_and_is_checked_up_front() -> None:
    base = {"name": "r", "dataset": {"name": "fsdd", "root": "/d"}, "folds": "all",
            "models": [{"name": "dcase21net", "train": {"epochs": 3}}],
            "variants": {"full": {"dataset": {"name": "tau2020", "root": "/t"}, "folds": None,
                                  "models": [{"name": "dcase21net",
                                              "train": {"epochs": 200}}]}}}
    plain, full = parse_recipe(base), parse_recipe(base, variant="full")
    assert plain.name == "r" and plain.models[0].train.epochs == 3 and plain.folds == "all"
    assert full.name == "r-full" and full.dataset.name == "tau2020" and full.folds is None
    assert full.models[0].train.epochs == 200
    with pytest.raises(UserError, match="no variant 'paper'; its variants: full"):
        parse_recipe(base, variant="paper")
    broken = copy.deepcopy(base)
    broken["variants"]["full"]["models"] = [{"name": "dcase21net", "train": {"epochs": -1}}]
    with pytest.raises(UserError, match=r"\(variant full\)"):  # the base run is refused too
        parse_recipe(broken)
