"""The public Python API beyond the architectures: our criteria inside Torch-Pruning's own pruner
(local and global ranking), group scope equal to Torch-Pruning's group importances, active
criteria with the user's batches and loss, iterative pruning with the user's fine-tuning,
errors that name the API argument, the pruning record, and a new gradient criterion that is
its own (not Taylor)."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
import torch
import torch_pruning as tp
from torch import nn

import audioprune as ap
from architectures import build, outputs_of
from audioprune.pruning.criteria import _REGISTRY, get_criterion, register_criterion, select_prune
from audioprune.pruning.engine import PruningGraph


def _plain_cnn(scale_conv2: float = 1.0) -> tuple[nn.Module, torch.Tensor]:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                          nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 5)).eval()
    with torch.no_grad():
        model[3].weight.mul_(scale_conv2)
    return model, torch.randn(2, 1, 12, 12, generator=torch.Generator().manual_seed(3))


# ------------------------------------------------------------------------ inside BasePruner


def test_our_importance_inside_torch_pruning_prunes_what_our_criterion_selects() -> None:
    model, x = _plain_cnn()
    expect = {i: select_prune(get_criterion("betweenness")(model[i].weight), 8).tolist()
              for i in (0, 3)}
    kept = {i: [c for c in range(16) if c not in expect[i]] for i in (0, 3)}
    w0 = model[0].weight.detach().clone()
    pruner = tp.pruner.BasePruner(model, x, importance=ap.importance("betweenness"),
                                  pruning_ratio=0.5, ignored_layers=[model[8]])
    pruner.step()
    assert model[0].out_channels == 8 and model[3].out_channels == 8
    assert torch.equal(model[0].weight, w0[kept[0]])
    assert model(x).shape == (2, 5)


def test_global_ranking_inside_torch_pruning_needs_and_gets_per_layer_normalisation() -> None:
    """conv2's weights scaled by 1000: raw l1 scores make every conv1 filter look less important
    than any conv2 filter, so a global ranking without normalisation takes nothing from conv2
    (and, capped at 90% per layer, 14 of conv1's 16 filters); with the per-layer min-max
    normalisation both layers lose filters."""
    removed = {}
    for normalise in (None, "minmax"):
        model, x = _plain_cnn(scale_conv2=1000.0)
        pruner = tp.pruner.BasePruner(model, x, importance=ap.importance("l1", normalise=normalise),
                                      pruning_ratio=0.5, global_pruning=True,
                                      max_pruning_ratio=0.9, ignored_layers=[model[8]])
        pruner.step()
        removed[normalise] = (16 - model[0].out_channels, 16 - model[3].out_channels)
    assert removed[None][1] == 0  # the large-scale layer is never reached
    assert removed["minmax"][0] > 0 and removed["minmax"][1] > 0
    assert sum(removed["minmax"]) == 16
    imp = ap.importance("l1")
    model, x = _plain_cnn(scale_conv2=1000.0)
    graph = PruningGraph(model, x)
    for name in ("0", "3"):
        values = imp(graph.group(name)).numpy()
        assert values.min() == 0.0 and values.max() == 1.0  # one scale for every layer


# ------------------------------------------------------------------------ group scope


@pytest.mark.parametrize("name", ["resnet", "attention", "wave1d"])
def test_group_scope_l1_equals_torch_prunings_group_magnitude(name: str) -> None:
    """(Not on depthwise convs: Torch-Pruning 1.6.1's group importances skip them, since their
    pruning function is not the conv one its importances test for; ours score them too.)"""
    model, x = build(name)
    graph = PruningGraph(model, x)
    ours = ap.importance("l1", scope="group", normalise=None)
    peer = tp.importance.GroupMagnitudeImportance(p=1, normalizer=None)
    for layer in graph.layers():
        group = graph.group(layer)
        np.testing.assert_allclose(ours(group).numpy(), peer(group).double().numpy(), rtol=1e-5)


def test_group_scope_taylor_ranks_as_torch_prunings_group_taylor() -> None:
    model, x = build("resnet")
    y = torch.tensor([1, 3])
    nn.functional.cross_entropy(model(x), y).backward()
    graph = PruningGraph(model, x)
    peer = tp.importance.GroupTaylorImportance(normalizer=None)
    taylor = _REGISTRY["taylor"].fn
    from audioprune.pruning.importance import group_unit_scores

    for layer in graph.layers():
        group = graph.group(layer)
        ours = -group_unit_scores(group, 1, taylor, grads=True)
        np.testing.assert_allclose(ours, peer(group).double().numpy(), rtol=1e-4)


def test_group_scope_changes_the_ranking_of_a_centrality_criterion() -> None:
    model, x = build("resnet")
    graph = PruningGraph(model, x)
    group = graph.group("layer1.conv1")
    root = ap.importance("wdc", normalise=None)(group)
    whole = ap.importance("wdc", scope="group", normalise=None)(group)
    assert root.shape == whole.shape == (24,)
    assert not torch.allclose(root, whole)


# ------------------------------------------------------------------------ active criteria


def _taylor_prunes(model: nn.Module, x: torch.Tensor, batches: list, loss_fn, ratio: float
                   ) -> dict[str, list[int]]:
    """What group-scope Taylor prunes, worked out apart from ap.prune: the gradients of the
    user's loss over the user's batches (their mean, eval mode), ranked by Torch-Pruning's
    GroupTaylorImportance; the lowest `ratio` of each layer's filters."""
    ref = copy.deepcopy(model).eval()
    for inputs, targets in batches:
        (loss_fn(ref(inputs), targets) / len(batches)).backward()
    graph = PruningGraph(ref, x)
    peer = tp.importance.GroupTaylorImportance(normalizer=None)
    prunes = {}
    for layer in graph.layers():
        imp = peer(graph.group(layer)).double().numpy()
        prunes[layer] = sorted(select_prune(-imp, int(ratio * len(imp))).tolist())
    return prunes


def _sorted(removed: dict[str, list[int]]) -> dict[str, list[int]]:
    return {name: sorted(idx) for name, idx in removed.items()}


def test_active_criteria_with_user_batches_and_loss() -> None:
    """Taylor prunes by the gradients of the user's loss on the user's batches; activation by the
    feature maps of the user's inputs alone (targets, when given, are not used); an active
    criterion without batches, or a dict output without a loss, is refused naming what to pass."""
    model, x = build("resnet")
    g = torch.Generator().manual_seed(5)
    batches = [(torch.randn(4, 1, 32, 24, generator=g), torch.randint(0, 10, (4,), generator=g))
               for _ in range(3)]
    result = ap.prune(copy.deepcopy(model), x, "taylor", ap.Plan(ratio=0.25), calibration_data=batches)
    assert _sorted(result.removed) == _taylor_prunes(model, x, batches, nn.functional.cross_entropy, 0.25)
    inputs = [b for b, _ in batches]
    act = ap.prune(copy.deepcopy(model), x, "activation", ap.Plan(ratio=0.25), calibration_data=inputs)
    with torch.no_grad():  # the stem's map after conv -> BN -> ReLU, over the 12 user inputs
        stem = copy.deepcopy(model).eval().stem(torch.cat(inputs))
    weakest = select_prune(-stem.abs().mean(dim=(0, 2, 3)).double().numpy(), 6)
    assert sorted(act.removed["stem.0"]) == sorted(weakest.tolist())
    with_targets = ap.prune(copy.deepcopy(model), x, "activation", ap.Plan(ratio=0.25),
                            calibration_data=batches)
    assert with_targets.removed == act.removed
    flipped = ap.prune(copy.deepcopy(model), x, "activation", ap.Plan(ratio=0.25),
                       calibration_data=[b.flip(2) for b in inputs])
    assert flipped.removed != act.removed  # other inputs, other maps, another choice
    with pytest.raises(ValueError, match=r"^hrank is an active criterion: pass calibration_data "
                                         r"\(an iterable of training batches: inputs, or "
                                         r"\(inputs, targets\)\)$"):
        ap.prune(copy.deepcopy(model), x, "hrank", ap.Plan(ratio=0.25))
    dict_model, xd = build("dict-output")
    with pytest.raises(ValueError, match=r"^the model returns several outputs \(a dict or tuple\); "
                                         r"pass `loss_fn\(outputs, targets\)` saying which one"):
        ap.prune(copy.deepcopy(dict_model), xd, "taylor", ap.Plan(ratio=0.25), calibration_data=batches)
    loss = lambda out, y: nn.functional.cross_entropy(torch.logit(out["clipwise_output"]), y)  # noqa: E731
    expect = _taylor_prunes(dict_model, xd, batches, loss, 0.25)
    result = ap.prune(dict_model, xd, "taylor", ap.Plan(ratio=0.25), calibration_data=batches, loss_fn=loss)
    assert _sorted(result.removed) == expect and set(expect) == {"block1.0", "block2.0"}


def test_a_new_gradient_criterion_is_its_own_not_taylor() -> None:
    register_criterion("test-grad-l1", lambda w, g: -g.abs().flatten(1).sum(1).double().numpy(),
                       inputs="gradients", options=("batches",))
    try:
        model, x = _plain_cnn()
        batches = [(torch.randn(4, 1, 12, 12), torch.tensor([0, 1, 2, 3]))]
        ref = copy.deepcopy(model)
        nn.functional.cross_entropy(ref(batches[0][0]), batches[0][1]).backward()
        expect = select_prune(-ref[0].weight.grad.abs().flatten(1).sum(1).numpy(), 4).tolist()
        result = ap.prune(model, x, "test-grad-l1", ap.Plan(ratios={"0": 0.25}), calibration_data=batches)
        assert result.removed["0"] == expect
    finally:
        del _REGISTRY["test-grad-l1"]


# ------------------------------------------------------------------------ iterative, record


def test_iterative_pruning_calls_the_users_finetuning_between_rounds(tmp_path) -> None:
    model, x = build("wave1d")
    calls = []
    result = ap.prune(model, x, "l1", ap.Plan(ratio=0.5), iterative=3, finetune=lambda m, k: calls.append((k, m.features[0].out_channels)))
    assert [k for k, _ in calls] == [1, 2] and calls[0][1] > calls[1][1] > 16
    assert model.features[0].out_channels == 16 and len(result.rounds) == 3
    # removed indices are numbered as in the model given, and match the widths
    assert len(result.removed["features.0"]) == 16
    path = ap.save_pruned(model, tmp_path / "w.safetensors")
    fresh, _ = build("wave1d", seed=9)
    ap.load_pruned(path, fresh)
    assert torch.equal(outputs_of(fresh, x)["out"], outputs_of(model, x)["out"])


def test_loading_refuses_another_model_and_pickles(tmp_path) -> None:
    model, x = build("resnet")
    ap.prune(model, x, "l1", ap.Plan(ratio=0.5))
    path = ap.save_pruned(model, tmp_path / "m.safetensors")
    other, _ = build("grouped")
    with pytest.raises(ValueError, match="does not match the record"):
        ap.load_pruned(path, other)
    marker = tmp_path / "executed"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    bad = tmp_path / "evil.safetensors"
    bad.write_bytes(pickle.dumps(Evil()))
    with pytest.raises(ValueError, match="not a safetensors file"):
        ap.load_pruned(bad, build("resnet")[0])
    assert not marker.exists()
    unpruned, _ = build("resnet")  # a model never pruned saves and loads as a plain state dict
    path = ap.save_pruned(unpruned, tmp_path / "plain.safetensors")
    fresh, _ = build("resnet", seed=4)
    ap.load_pruned(path, fresh)
    assert torch.equal(outputs_of(fresh, x)["out"], outputs_of(unpruned, x)["out"])


# ------------------------------------------------------------------------ errors, helpers


@pytest.mark.parametrize("plan, kwargs, message", [
    (None, {}, r"give a plan, e.g. ap.Plan\(ratio=0.5\)"),
    ({}, {}, "give exactly one of ratio, ratios, target_macs, target_params"),
    ({"ratio": 1.5}, {}, r"ratio must be in \[0, 1\)"),
    ({"ratios": {"conv9": 0.5}}, {}, "layers: 'conv9' matches no prunable layer"),
    ({"ratio": 0.5}, {"criterion": "nope"}, "criterion: unknown criterion 'nope'"),
    ({"ratio": 0.5}, {"criterion": "wdcc"}, r"unknown criterion 'wdcc' \(did you mean 'wdc'\?\)"),
    ({"ratio": 0.5}, {"paper_compt": True}, "criterion 'wdc' has no option paper_compt"),
    ({"target_macs": "lots"}, {}, "target_macs 'lots': not a number; give a fraction"),
    ({"target_macs": 10}, {}, r"target_macs cannot be met by pruning 0, 3: macs 10 \(smallest "
                              "achievable"),
    ({"ratio": 0.5}, {"ignored_layers": ["nope"]}, "ignored_layers: no layer named 'nope'"),
    ({"ratio": 0.5}, {"iterative": 0}, "iterative needs at least 1 round"),
    ({"ratio": 0.5}, {"quaternion": "yes"}, "unknown quaternion 'yes'"),
    ({"ratio": 0.5}, {"scope": "everything"}, "unknown scope 'everything'"),
    ({"ratio": 0.5}, {"ratio": 0.5}, "give the plan once: plan or ratio"),
])
def test_errors_name_the_api_argument(plan: dict | None, kwargs: dict, message: str) -> None:
    model, x = _plain_cnn()
    criterion = kwargs.pop("criterion", "wdc")
    with pytest.raises(ValueError, match=message):
        ap.prune(model, x, criterion, None if plan is None else ap.Plan(**plan), **kwargs)


def test_the_old_plan_keywords_still_work_and_warn() -> None:
    """ratio=, target_macs=, layers= ... as keywords of ap.prune are the plan as before (same
    filters removed), with a DeprecationWarning that shows the new spelling."""
    model, x = _plain_cnn()
    twin = copy.deepcopy(model)
    with pytest.warns(DeprecationWarning, match=r"pass plan=ap.Plan\(target_macs=0.6"):
        old = ap.prune(model, x, "l1", target_macs=0.6, layers=["0", "3"])
    new = ap.prune(twin, x, "l1", ap.Plan(target_macs=0.6, layers=["0", "3"]))
    assert old.removed == new.removed and old.macs_after == new.macs_after


def test_bad_example_inputs_and_models_are_named() -> None:
    model, _ = _plain_cnn()
    with pytest.raises(ValueError, match=r"^tracing the model with example_inputs failed \(.*"
                                         r"expected input\[2, 3, 12, 12\] to have 1 channels.*\); "
                                         r"pass inputs the model accepts.*, or a forward_fn$"):
        ap.prune(model, torch.randn(2, 3, 12, 12), "l1", ap.Plan(ratio=0.5))
    assert model[0].out_channels == 16  # refused before anything was pruned
    with pytest.raises(TypeError, match=r"^model must be a torch.nn.Module, got str$"):
        ap.prune("model", torch.randn(1), "l1", ap.Plan(ratio=0.5))


def test_target_as_a_fraction_or_a_count() -> None:
    model, x = _plain_cnn()
    before = ap.count(model, x).macs
    result = ap.prune(copy.deepcopy(model), x, "l1", ap.Plan(target_macs=0.6))
    assert result.macs_after <= 0.6 * before
    result = ap.prune(copy.deepcopy(model), x, "l1", ap.Plan(target_macs=int(0.6 * before)))
    assert result.macs_after <= 0.6 * before
    result = ap.prune(copy.deepcopy(model), x, "l1", ap.Plan(target_params="1.5k"))
    assert result.params_after <= 1500


def test_list_criteria_and_fuse_quaternion() -> None:
    names = ap.list_criteria()
    assert {"wdc", "betweenness", "similarity", "l1", "opnorm", "fpgm", "random", "taylor",
            "hrank"} <= set(names)
    assert ap.list_criteria("gradients") == ["taylor", "tp-taylor"]
    model, x = build("quaternion")
    fused = ap.fuse_quaternion(model)
    assert not any(isinstance(m, ap.nn.QConv2d) for m in fused.modules())
    torch.testing.assert_close(fused(x), model(x), rtol=1e-4, atol=1e-5)
    assert ap.count(fused, x).macs == ap.count(model, x).macs


def test_layer_kinds_come_from_the_layer_support_table() -> None:
    """A plain model with a groups=4 convolution is not a quaternion model (auto chooses for
    it); a user's own norm layer, declared as kind "norm", is tapped by the activation criteria
    like a BatchNorm (its output, not the conv's, is what they score)."""
    from audioprune.nn.layer_support import LayerSupport, register_layer_support
    from audioprune.pruning.calibration import feature_taps

    torch.manual_seed(0)
    grouped = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                            nn.Conv2d(8, 16, 3, padding=1, groups=4), nn.BatchNorm2d(16),
                            nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, 3))
    x = torch.randn(2, 1, 12, 12)
    result = ap.prune(grouped, x, "auto", ap.Plan(target_macs=0.3))
    assert result.plan["auto"]["chosen"] == "tp-magnitude" and result.macs_ratio <= 0.3

    class ScaleNorm(nn.Module):  # a user's own per-channel norm
        def __init__(self, c: int) -> None:
            super().__init__()
            self.scale = nn.Parameter(torch.ones(c))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x / (x.std(dim=(2, 3), keepdim=True) + 1e-5) * self.scale.view(1, -1, 1, 1)

    def prune_channels(m: nn.Module, idxs: list[int]) -> None:
        keep = [i for i in range(m.scale.numel()) if i not in set(idxs)]
        m.scale = nn.Parameter(m.scale.data[keep].clone())

    register_layer_support(LayerSupport(
        types=(ScaleNorm,), kind="norm", prune_out=prune_channels, prune_in=prune_channels,
        out_channels=lambda m: m.scale.numel(), in_channels=lambda m: m.scale.numel(),
        to_real=lambda m: m))
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), ScaleNorm(8), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 3))
    taps = feature_taps(model, {"0": model[0]}, x)
    assert taps["0"] is model[1]  # the norm's output, as for a BatchNorm


def test_one_spelling_of_normalise_the_other_warns() -> None:
    with pytest.warns(DeprecationWarning, match="normalise"):
        old = ap.importance("l1", normalize=None)
    assert old.normalize is None and ap.importance("l1").normalize == "minmax"
