"""Resolution as a compression axis (issue 26): a trained model read at a coarser hop and fewer
mel bins with its conv weights kept, what depends on the feature size adapted; a MAC budget
split between resolution and width, fixed or searched; the pruned widths trained from scratch as
the baseline; everything recorded in model.json / metrics.json, counted, exported."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import audioprune as ap
from audioprune.audio.frontend import FrontEndConfig
from audioprune.models.registry import create_model
from audioprune.models.resolution import _merge_positions, coarsen
from audioprune.pipeline.recipe import parse_recipe
from audioprune.pipeline.runner import run_recipe
from audioprune.runs.run_dir import load_model

FE = FrontEndConfig(sample_rate=8000, n_fft=256, hop_length=80, n_mels=40, fmin=0.0, fmax=4000.0,
                    clip_seconds=1.0)


@pytest.mark.parametrize("arch, kw", [("dcase21net", {}), ("qdcase21net", {}),
                                      ("cnn6", {"width": 0.25}), ("qcnn6", {"width": 0.25})])
def test_coarsening_keeps_the_weights_and_cuts_the_macs(arch: str, kw: dict) -> None:
    torch.manual_seed(0)
    model = create_model(arch, 10, frontend=FE, **kw).eval()
    before = ap.count(model, model.example_features(), "classify").macs
    small = coarsen(model, time=2.0, freq=0.5)
    assert (small.frontend_cfg.hop_length, small.frontend_cfg.n_mels) == (160, 20)
    assert model.frontend_cfg.hop_length == 80  # the given model is left as it is
    old, new = model.state_dict(), small.state_dict()
    convs = [k for k in old if "conv" in k and k.endswith("weight") or k.endswith(".r")]
    assert convs and all(torch.equal(old[k], new[k]) for k in convs if k in new)
    after = ap.count(small, small.example_features(), "classify").macs
    assert 0.2 < after / before < 0.3  # about half the frames x half the bins
    with torch.no_grad():
        assert small(torch.randn(2, 8000) * 0.1).shape == (2, 10)


def test_fewer_mel_positions_take_the_columns_they_cover() -> None:
    w = torch.arange(12, dtype=torch.float32).reshape(2, 6)  # 2 outputs, 2 channels x 3 positions
    merged = _merge_positions(w, torch.Size([2, 4]), 60, 40)  # 3 -> 2 positions per channel
    # new position 0 covers old 0 and half of old 1; new 1 the other half of 1 and old 2
    assert torch.allclose(merged[0], torch.tensor([0 + 0.5 * 1, 0.5 * 1 + 2, 3 + 0.5 * 4,
                                                   0.5 * 4 + 5]))
    assert torch.allclose(merged.sum(), w.sum())  # every old weight is used exactly once
    with pytest.raises(ValueError, match="supported for"):
        coarsen(torch.nn.Linear(2, 2))  # type: ignore[arg-type]


TINY_DATA = {"name": "synthetic", "split": "sizes:40,20,20",
             "frontend": {"n_mels": 40, "clip_seconds": 0.5}}
TRAIN = {"epochs": 1, "batch_size": 8, "lr": 0.003}


def test_resolution_and_width_under_one_budget_end_to_end(tmp_path: Path) -> None:
    recipe = parse_recipe({
        "name": "res", "dataset": TINY_DATA, "seed": 0, "profile": False, "report": False,
        "models": [{"name": "dcase21net", "train": TRAIN}],
        "prune": [
            {"criteria": ["l1"], "target_macs": [0.3], "resolution": [1.5, 0.75],
             "finetune": {"epochs": 1}, "scratch": ["labels", "kd"]},
            {"criteria": ["l1"], "target_macs": [0.3], "resolution": "search",
             "finetune": {"epochs": 1}},
        ]}, "res.yaml")
    run_recipe(recipe, tmp_path / "runs", progress=False)
    out = tmp_path / "runs"
    fixed = json.loads((out / "dcase21net-l1-macs30pct-res1.5x0.75" / "metrics.json").read_text())
    parent_macs = fixed["parent"]["macs"]
    assert 0.9 * 0.3 * parent_macs <= fixed["macs"] <= 0.3 * parent_macs  # filled up to it
    res = fixed["pruning"]["resolution"]
    assert (res["time"], res["freq"]) == (1.5, 0.75)
    assert res["frontend_after"]["hop_length"] == 1.5 * res["frontend_before"]["hop_length"]
    model, info = load_model(out / "dcase21net-l1-macs30pct-res1.5x0.75")
    assert info["frontend"]["n_mels"] == 30 and model.frontend_cfg.n_mels == 30
    assert ap.count(model, model.example_features(), "classify").macs == fixed["macs"]
    pytest.importorskip("onnx")
    from audioprune.measure.onnx_export import export_onnx

    assert len(export_onnx(model)) > 1000  # the coarser front end exports like any other

    searched = json.loads((out / "dcase21net-l1-macs30pct-ressearch" / "metrics.json").read_text())
    grid = searched["pruning"]["resolution"]["search"]["grid"]
    tried = [g for g in grid if g["score"] is not None]
    assert len(grid) == 9 and tried and all(g["macs"] <= 0.3 * parent_macs for g in tried)
    chosen = searched["pruning"]["resolution"]["search"]["chosen"]
    best = max(tried, key=lambda g: g["score"])
    assert (chosen["time"], chosen["freq"]) == (best["time"], best["freq"])
    assert 0.9 * 0.3 * parent_macs <= searched["macs"] <= 0.3 * parent_macs

    for name, kd in (("-scratch", False), ("-scratch-kd", True)):
        run = out / f"dcase21net-l1-macs30pct-res1.5x0.75{name}"
        m = json.loads((run / "metrics.json").read_text())
        assert m["scratch_of"]["distill"] is kd and ("distill" in m) is kd
        assert m["macs"] == fixed["macs"] and m["params"] == fixed["params"]
        _, scratch_info = load_model(run)
        assert scratch_info["widths"] == info["widths"]
        assert scratch_info["frontend"] == info["frontend"]


def test_scratch_kd_is_asked_of_the_step_not_of_a_run_name_that_folds_extend() -> None:
    """With folds (and seeds) every run name gains -fold<K>-s<S>: the KD baseline must still be
    planned, fingerprinted and described as KD (it was read from a name ending in -kd, so on
    folds both baselines trained from labels alone)."""
    from audioprune.pipeline.fingerprint import fingerprint
    from audioprune.pipeline.steps import plan_steps

    recipe = parse_recipe({
        "name": "res", "dataset": {"name": "synthetic", "split": "fold:1/3"}, "seeds": [0, 1],
        "profile": False, "report": False,
        "models": [{"name": "dcase21net", "train": TRAIN}],
        "prune": [{"criteria": ["l1"], "target_macs": [0.3], "finetune": {"epochs": 1},
                   "scratch": ["labels", "kd"]}]}, "res.yaml")
    scratch = [s for s in plan_steps(recipe, [1, 2]) if s.kind == "scratch"]
    assert len(scratch) == 2 * 2 * 2  # labels and kd, per fold and seed
    for step in scratch:
        kd = "-scratch-kd-" in step.run_name
        assert step.run_name.endswith(f"-fold{step.fold}-s{step.seed}")
        assert step.kd is kd and fingerprint(step, recipe)["kd"] is kd
        assert step.describe().endswith(" with KD") is kd


def test_the_split_ranks_only_candidates_that_meet_the_budget() -> None:
    """ap.split_budget: a candidate whose width plan lands more than `tolerance` under the
    budget is skipped, however well it scores (the benchmarks would flag it as having missed
    the budget), and so is a coarsening that alone undercuts it; the best of the rest wins."""
    import torch
    from torch import nn

    import audioprune as ap

    target = 1000  # MACs of a Linear(k, n) on one example: k * n
    lands = {(1.0, 1.0): 1000, (2.0, 1.0): 970, (1.5, 1.0): 990}  # 0%, 4% and 1% under

    def build(t: float, f: float) -> tuple[nn.Module, torch.Tensor]:
        k = {1.0: 40, 2.0: 20, 1.5: 30, 0.5: 2}[t if f == 1.0 else 0.5]
        model = nn.Sequential(nn.Linear(k, 100, bias=False))
        model.key = (t, f)
        return model, torch.zeros(1, k)

    def prune(model: nn.Module, x: torch.Tensor, macs: int) -> None:
        assert macs == target
        model[0] = nn.Linear(x.shape[1], lands[model.key] // x.shape[1], bias=False)

    scores = {(1.0, 1.0): 0.5, (2.0, 1.0): 0.9, (1.5, 1.0): 0.7, (1.0, 0.5): 1.0}
    result = ap.split_budget(build, target, prune, lambda m: scores[m.key],
                             grid=[(1.0, 1.0), (2.0, 1.0), (1.5, 1.0), (1.0, 0.5)])
    assert (result.time, result.freq) == (1.5, 1.0)  # the 4%-under one scored higher
    by = {(c.time, c.freq): c for c in result.candidates}
    assert by[(2.0, 1.0)].macs == 960 and by[(2.0, 1.0)].score is None
    assert "more than 2% under the budget's 1,000" in by[(2.0, 1.0)].skipped
    assert "the coarsening alone keeps 200 MACs" in by[(1.0, 0.5)].skipped
    assert by[(1.0, 1.0)].score == 0.5 and by[(1.5, 1.0)].macs == 990
    with pytest.raises(ap.ArgumentError, match="within 2%"):
        ap.split_budget(build, target, prune, lambda m: 1.0, grid=[(2.0, 1.0)])
