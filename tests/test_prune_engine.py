"""The structural engine (Torch-Pruning), quaternion-aware pruning and plans, without data:
channels really removed, the right ones, costs by hand arithmetic, coupled layers consistent,
the classifier untouched, budgets, layer patterns, and pruned models that reload exactly."""

from __future__ import annotations

import copy
import itertools
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from audioprune.audio.frontend import FrontEndConfig
from audioprune.data.registry import get_dataset_info
from audioprune.measure.counting import count_macs, count_params
from audioprune.models.base import AudioClassifier
from audioprune.models.registry import create_model
from audioprune.nn.layer_support import layer_support
from audioprune.nn.quaternion import QBatchNorm2d, QConv2d, QLinear
from audioprune.pruning.body import body_pruner, prune_body
from audioprune.pruning.costs import make_cost_fn
from audioprune.pruning.criteria import get_criterion, select_prune
from audioprune.pruning.engine import PruningGraph
from audioprune.pruning.importance import CriterionImportance, aggregate_components
from audioprune.pruning.layers import resolve_layers
from audioprune.pruning.plan import Plan, counts_for_ratio, global_counts, resolve_plan
from audioprune.pruning.schedule import schedule_counts
from audioprune.pruning.spec import PruneSpec
from audioprune.pruning.targets import parse_count, parse_ratios
from audioprune.runs.run_dir import load_model, save_model

FSDD_FE = get_dataset_info("fsdd").frontend  # 8 kHz, 1 s clips, hop 80, 40 mels: 101 x 40


def _dcase(**kw) -> AudioClassifier:
    torch.manual_seed(0)
    return create_model("dcase21net", 10, frontend=FSDD_FE, **kw).eval()


def _graph(model: AudioClassifier) -> PruningGraph:
    """The body of an audio model traced as the CLI traces it: classify() on features."""
    return PruningGraph(model, model.example_features(), "classify")


def _feats(model: AudioClassifier, batch: int = 3) -> torch.Tensor:
    gen = torch.Generator().manual_seed(1)
    return torch.randn(batch, *model.feature_shape(FSDD_FE.clip_samples), generator=gen)


# ------------------------------------------------------------------------------ real CNN


def test_dcase21net_c1_c2_half_matches_hand_arithmetic() -> None:
    model = _dcase()
    assert count_params(model) == 46_118
    # MACs at the FSDD front end (101 frames x 40 mels; conv3 after MaxPool(5): 20 x 8):
    full = 101 * 40 * 16 * 49 + 101 * 40 * 16 * 16 * 49 + 20 * 8 * 32 * 16 * 49 + 64 * 100 + 100 * 10
    assert count_macs(model)["model"] == full == 57_866_600
    original = copy.deepcopy(model)
    x = _feats(model)

    result = prune_body(model, PruneSpec("l1", Plan(ratios={"C1": 0.5, "C2": 0.5})))
    assert result["plan"]["counts"] == {"conv1": 8, "conv2": 8}
    assert model.layer_widths() == {"conv1": 8, "conv2": 8, "conv3": 32, "fc1": 100}
    assert (model.conv1.out_channels, model.bn1.num_features, model.conv2.in_channels) == (8, 8, 8)

    params = (8 * 49 + 8) + 16 + (8 * 8 * 49 + 8) + 16 + (32 * 8 * 49 + 32) + 64 + 6500 + 1010
    macs = 101 * 40 * 8 * 49 + 101 * 40 * 8 * 8 * 49 + 20 * 8 * 32 * 8 * 49 + 64 * 100 + 100 * 10
    assert count_params(model) == params == 23_726  # -48.6 %
    assert count_macs(model)["model"] == macs == 16_267_560  # -71.9 %, the paper's "71 % fewer"
    assert result["plan"]["predicted"] == {"params": params, "macs": macs}

    # the removed filters are exactly the criterion's selection on the original weights
    l1 = get_criterion("l1")
    rm1 = select_prune(l1(original.conv1.weight), 8)
    rm2 = select_prune(l1(original.conv2.weight), 8)
    assert result["removed"] == {"conv1": rm1.tolist(), "conv2": rm2.tolist()}
    k1 = [i for i in range(16) if i not in rm1]
    k2 = [i for i in range(16) if i not in rm2]
    assert torch.equal(model.conv1.weight, original.conv1.weight[k1])
    assert torch.equal(model.conv1.bias, original.conv1.bias[k1])
    for attr in ("weight", "bias", "running_mean", "running_var"):
        assert torch.equal(getattr(model.bn1, attr), getattr(original.bn1, attr)[k1])
    assert torch.equal(model.conv2.weight, original.conv2.weight[k2][:, k1])
    assert torch.equal(model.conv3.weight, original.conv3.weight[:, k2])
    assert torch.equal(model.conv3.bias, original.conv3.bias)
    # untouched layers, classifier included
    for name in ("bn3", "fc1", "fc_out"):
        for p, q in zip(getattr(model, name).parameters(), getattr(original, name).parameters()):
            assert torch.equal(p, q)
    assert model(x).shape == (3, 10)


def test_pruned_output_equals_zeroed_filters_in_eval_mode() -> None:
    """BN in eval mode: zeroing a filter's conv weights AND its BN shift gives an exactly zero
    channel; removing it instead must give the same logits."""
    model = _dcase()
    ref = copy.deepcopy(model)
    x = _feats(model)
    result = prune_body(model, PruneSpec("fpgm", Plan(ratio=0.5, layers=["conv1", "conv3"])))
    with torch.no_grad():
        for conv, bn in (("conv1", "bn1"), ("conv3", "bn3")):
            idx = torch.tensor(result["removed"][conv])
            getattr(ref, conv).weight[idx] = 0
            getattr(ref, conv).bias[idx] = 0
            getattr(ref, bn).bias[idx] = 0
            getattr(ref, bn).running_mean[idx] = 0
        torch.testing.assert_close(model.classify(x), ref.classify(x), rtol=1e-5, atol=1e-5)
    # fc1 lost conv3's columns through the flatten: 16 channels x 2 mel positions
    assert model.fc1.in_features == 16 * 2


def test_every_layer_keeps_a_filter_and_the_classifier_is_never_pruned() -> None:
    model = _dcase()
    result = prune_body(model, PruneSpec("l2", Plan(ratio=0.99)))
    assert model.layer_widths() == {"conv1": 1, "conv2": 1, "conv3": 1, "fc1": 1}
    assert result["plan"]["counts"] == {"conv1": 15, "conv2": 15, "conv3": 31, "fc1": 99}
    assert model.fc_out.out_features == 10 and model(_feats(model)).shape == (3, 10)
    graph = _graph(model)
    assert "fc_out" not in graph.layers()
    with pytest.raises(ValueError, match="keeps at least one"):
        graph.prune({"conv1": [0]})


def test_pruned_run_dir_round_trips_through_load_model(tmp_path) -> None:
    model = _dcase()
    prune_body(model, PruneSpec("wdc", Plan(ratio=0.5)))
    model.arch_kwargs = {}
    save_model(tmp_path, model, [str(i) for i in range(10)], "single-label")
    loaded, info = load_model(tmp_path)
    assert info["widths"] == {"conv1": 8, "conv2": 8, "conv3": 16, "fc1": 50}
    loaded.eval()
    x = _feats(model)
    with torch.no_grad():
        assert torch.equal(loaded.classify(x), model.classify(x))
        wave = torch.randn(2, FSDD_FE.clip_samples)
        assert torch.equal(loaded(wave), model(wave))


def test_importance_follows_torch_pruning_sign_convention() -> None:
    model = _dcase()
    graph = _graph(model)
    imp = CriterionImportance("l1")
    tp_imp = imp(graph.group("conv2"))  # Torch-Pruning: LOWEST importance pruned first
    ours = get_criterion("l1")(model.conv2.weight)  # ours: HIGHEST score pruned first
    np.testing.assert_allclose(tp_imp.numpy(), -ours)
    np.testing.assert_allclose(graph.scores(imp, ["conv2"])["conv2"], ours)


def test_panns_layer_patterns_and_aliases() -> None:
    model = create_model("cnn6", 10, frontend=FSDD_FE, width=0.125).eval()
    graph = _graph(model)
    layers = graph.layers()
    assert list(layers) == ["block1.conv1", "block2.conv1", "block3.conv1", "block4.conv1", "fc1"]
    assert resolve_layers(["block3.*", "block4.*"], layers) == ["block3.conv1", "block4.conv1"]
    assert resolve_layers(["C2-C3"], layers) == ["block2.conv1", "block3.conv1"]
    with pytest.raises(ValueError, match="prunable layers: block1.conv1, block2.conv1"):
        resolve_layers(["block9.*"], layers)
    with pytest.raises(ValueError, match="fc_out is left alone because its channels reach a "
                                         "model output"):
        resolve_layers(["fc_out"], layers, skipped=graph.skipped)
    prune_body(model, PruneSpec("l1", Plan(ratio=0.5, layers=["block3.*", "block4.*"])))
    assert model.layer_widths() == {"block1.conv1": 8, "block2.conv1": 16, "block3.conv1": 16,
                                    "block4.conv1": 32, "fc1": 64}
    assert model(_feats(model, 2)).shape == (2, 10)


def test_layer_and_plan_errors_are_clear() -> None:
    layers = _graph(_dcase()).layers()
    assert resolve_layers(["C1", "C2"], layers) == ["conv1", "conv2"]
    assert resolve_layers(["conv*"], layers) == ["conv1", "conv2", "conv3"]
    with pytest.raises(ValueError, match=r"'conv9' matches no prunable layer; prunable layers: "
                                        r"conv1, conv2, conv3, fc1"):
        resolve_layers(["conv9"], layers)
    with pytest.raises(ValueError, match="'bn1' is not a prunable layer"):
        resolve_layers(["bn1"], layers, module_names=["bn1"])
    for bad in (1.0, -0.1, 1.5):
        with pytest.raises(ValueError, match=r"in \[0, 1\)"):
            Plan(ratio=bad)
    with pytest.raises(ValueError, match="exactly one"):
        Plan(ratio=0.5, target_macs="30M")
    with pytest.raises(ValueError, match="exactly one"):
        Plan()
    with pytest.raises(ValueError, match="LAYER=RATIO"):
        parse_ratios("conv1:0.5")
    assert parse_ratios("C1=0.5, C2=0.25") == {"C1": 0.5, "C2": 0.25}
    assert (parse_count("30M"), parse_count("128k"), parse_count("1.5G"), parse_count("46246")) == \
        (30_000_000, 128_000, 1_500_000_000, 46_246)
    with pytest.raises(ValueError):
        parse_count("lots")
    with pytest.raises(ValueError, match="criterion"):
        prune_body(_dcase(), PruneSpec("nope", Plan(ratio=0.5)))


def test_budget_search_meets_the_target_and_reports_the_impossible() -> None:
    model = _dcase()
    graph = _graph(model)
    spec = Plan(target_macs="30M", layers=["conv1", "conv2"])
    plan = resolve_plan(spec, graph)
    assert plan.predicted["macs"] <= 30_000_000
    # minimal: one filter fewer in the uniform ratio would exceed the target
    counts = plan.counts
    assert counts["conv1"] == counts["conv2"]
    cost = make_cost_fn(model, graph, "macs")
    assert cost({n: c - 1 for n, c in counts.items()}) > 30_000_000
    # the prediction is what pruning really gives
    pruned = copy.deepcopy(model)
    _graph(pruned).prune({n: list(range(c)) for n, c in counts.items()})
    assert count_macs(pruned)["model"] == plan.predicted["macs"]
    assert count_params(pruned) == plan.predicted["params"]

    plan = resolve_plan(Plan(target_params="128k"), graph)  # already small enough
    assert plan.counts == {"conv1": 0, "conv2": 0, "conv3": 0, "fc1": 0}
    with pytest.raises(ValueError, match=r"target_macs cannot be met by pruning conv1: macs "
                                         r"1,000,000 \(smallest achievable [\d,]+"):
        resolve_plan(Plan(target_macs="1M", layers=["conv1"]), graph)
    plan = resolve_plan(Plan(target_params="20k", global_ranking=True), graph,
                        scores=lambda names: graph.scores(CriterionImportance("l1"), names))
    assert plan.predicted["params"] <= 20_000


def test_cost_prediction_on_the_meta_device_equals_pruning_a_copy() -> None:
    model = _dcase()
    graph = _graph(model)
    counts = {"conv2": 5, "conv3": 9, "fc1": 30}
    rebuilt = make_cost_fn(model, graph, "params")(counts)
    assert next(model.parameters()).device.type == "cpu"  # the model itself is untouched
    clone = copy.deepcopy(model)
    _graph(clone).prune({n: list(range(c)) for n, c in counts.items()})
    assert rebuilt == count_params(clone)


def test_global_ranking_and_schedules() -> None:
    scores = {"a": np.array([0.0, 1.0, 2.0, 3.0]),            # evenly spread
              "b": np.array([0.0, 9.0, 9.5, 10.0, 10.0, 10.0])}  # mostly near its maximum
    counts = global_counts(0.5, scores, "minmax")
    assert sum(counts.values()) == 5 and counts["b"] > counts["a"]
    assert counts_for_ratio(0.5, {"a": 4, "b": 6}) == {"a": 2, "b": 3}
    assert global_counts(0.99, scores) == {"a": 3, "b": 5}  # the one-filter floor per layer
    sched = schedule_counts({"conv1": 12, "conv2": 8}, {"conv1": 16, "conv2": 16}, 3)
    assert sched[-1] == {"conv1": 12, "conv2": 8}
    for prev, nxt in itertools.pairwise(sched):
        assert all(nxt[k] >= prev[k] for k in nxt)
    assert sched[0]["conv1"] == 16 - round(16 * 0.25 ** (1 / 3))  # kept 1/4 in 3 geometric steps


def test_global_ranking_prunes_layers_unevenly_but_to_the_total() -> None:
    model = _dcase()
    plan = body_pruner(model, PruneSpec("l1", Plan(ratio=0.5, global_ranking=True,
                                                   layers=["conv1", "conv2", "conv3"]))).plan()
    assert sum(plan.counts.values()) == 32  # half of 16 + 16 + 32
    assert all(plan.counts[n] < plan.n_units[n] for n in plan.counts)


# ------------------------------------------------------------------------------ quaternion


class TinyQNet(AudioClassifier):
    """QConv2d -> [QBN] -> ReLU -> QConv2d -> [QBN] -> ReLU -> pools -> flatten -> QLinear -> Linear."""

    classifier_name = "fc_out"

    def __init__(self, bn: str | None = "quaternion", real_first: bool = False) -> None:
        fe = FrontEndConfig(sample_rate=8000, n_fft=256, hop_length=80, n_mels=16, fmin=0.0,
                            fmax=4000.0, clip_seconds=0.2, channels="deltas")
        super().__init__(5, fe)
        norm = (lambda c: QBatchNorm2d(c, mode=bn)) if bn else (lambda c: nn.Identity())
        self.conv1 = nn.Conv2d(4, 16, 3, padding=1) if real_first else QConv2d(4, 16, 3, padding=1)
        self.bn1 = norm(16)
        self.conv2 = QConv2d(16, 24, 3, padding=1)
        self.bn2 = norm(24)
        self.fc1 = QLinear(24 * 4, 16)
        self.fc_out = nn.Linear(16, 5)
        with torch.no_grad():  # non-trivial BN statistics, so eval mode is a real test
            for m in self.modules():
                if isinstance(m, QBatchNorm2d) and m.mode == "quaternion":
                    m.running_mean.uniform_(-0.5, 0.5)
                    m.running_var.uniform_(0.5, 2.0)
                    m.beta.uniform_(-0.2, 0.2)
                    m.gamma.uniform_(0.5, 1.5)
                if isinstance(m, QConv2d) and m.bias is not None:
                    m.bias.uniform_(-0.1, 0.1)

    @property
    def in_channels(self) -> int:
        return 4

    def classify(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        x = torch.amax(x, dim=2, keepdim=True)
        x = F.max_pool2d(x, (1, 4))
        return self.fc_out(F.relu(self.fc1(x.flatten(1))))


def _real(units: list[int], width: int) -> list[int]:
    return sorted(u + c * (width // 4) for u in units for c in range(4))


def _comp_scores(crit, layer) -> np.ndarray:
    return np.stack([crit(c) for c in layer.components()])


@pytest.mark.parametrize("bn", [None, "quaternion", "real"])
def test_quaternion_filters_are_the_unit(bn: str | None) -> None:
    torch.manual_seed(0)
    model = TinyQNet(bn).eval()
    original = copy.deepcopy(model)
    x = torch.randn(2, 4, 21, 16)
    graph = PruningGraph(model, x[:1], "classify")
    layers = graph.layers()
    assert list(layers) == ["conv1", "conv2", "fc1"]
    assert all(layer.quaternion and layer.unit == 4 for layer in layers.values())
    assert [layers[n].n_units for n in layers] == [4, 6, 4]

    result = prune_body(model, PruneSpec("l1", Plan(ratio=0.5)))
    l1 = get_criterion("l1")
    expect = {n: select_prune(aggregate_components(_comp_scores(l1, getattr(original, n)), "mean"), c)
              for n, c in (("conv1", 2), ("conv2", 3), ("fc1", 2))}
    assert result["removed"] == {n: v.tolist() for n, v in expect.items()}
    widths = model.layer_widths()
    assert widths == {"conv1": 8, "conv2": 12, "fc1": 8} and all(w % 4 == 0 for w in widths.values())

    keep = {n: [q for q in range(original.layer_widths()[n] // 4) if q not in expect[n]]
            for n in expect}
    for name, prev in (("conv1", None), ("conv2", "conv1")):
        for comp in ("r_weight", "i_weight", "j_weight", "k_weight"):
            w = getattr(getattr(original, name), comp)[keep[name]]
            if prev:
                w = w[:, keep[prev]]
            assert torch.equal(getattr(getattr(model, name), comp), w)
        width = original.layer_widths()[name]
        kept_real = [i for i in range(width) if i not in _real(expect[name].tolist(), width)]
        assert torch.equal(getattr(model, name).bias, getattr(original, name).bias[kept_real])
    # the real classifier lost the 4 real inputs of each removed fc1 quaternion
    kept_fc = [i for i in range(16) if i not in _real(expect["fc1"].tolist(), 16)]
    assert torch.equal(model.fc_out.weight, original.fc_out.weight[:, kept_fc])
    assert model.fc_out.out_features == 5

    # same logits as the original with those quaternion filters zeroed (BN shift zeroed too)
    ref = copy.deepcopy(original)
    with torch.no_grad():
        for name, norm in (("conv1", "bn1"), ("conv2", "bn2"), ("fc1", None)):
            layer = getattr(ref, name)
            for comp in layer.components():
                comp[expect[name]] = 0
            real = _real(expect[name].tolist(), layer.bias.numel())
            layer.bias[real] = 0
            bnm = getattr(ref, norm) if norm else None
            if isinstance(bnm, QBatchNorm2d) and bnm.mode == "quaternion":
                bnm.beta[real] = 0
                bnm.running_mean[real] = 0
            elif isinstance(bnm, QBatchNorm2d):
                bnm.bn.bias[real] = 0
                bnm.bn.running_mean[real] = 0
        torch.testing.assert_close(model.classify(x), ref.classify(x), rtol=1e-5, atol=1e-5)


def test_real_layer_feeding_a_quaternion_layer_is_pruned_by_quaternions() -> None:
    torch.manual_seed(0)
    model = TinyQNet(None, real_first=True).eval()
    x = torch.randn(2, 4, 21, 16)
    ref = copy.deepcopy(model)
    graph = PruningGraph(model, x[:1], "classify")
    assert graph.layers()["conv1"].quaternion  # a real conv, but its consumer is a QConv2d
    removed = prune_body(model, PruneSpec("l2", Plan(ratios={"conv1": 0.5})))["removed"]
    assert model.conv1.out_channels == 8 and model.conv2.in_channels == 8
    with torch.no_grad():
        real = _real(removed["conv1"], 16)
        ref.conv1.weight[real] = 0
        ref.conv1.bias[real] = 0
        torch.testing.assert_close(model.classify(x), ref.classify(x), rtol=1e-5, atol=1e-5)


def test_quaternion_aggregates_and_concat_mode() -> None:
    torch.manual_seed(0)
    layer = QConv2d(8, 32, 3)
    s = np.array([[-1.0, 2.0], [-3.0, 2.0], [-1.0, 2.0], [-3.0, 2.0]])
    np.testing.assert_allclose(aggregate_components(s, "mean"), [-2.0, 2.0])
    np.testing.assert_allclose(aggregate_components(s, "max"), [-1.0, 2.0])
    np.testing.assert_allclose(aggregate_components(s, "min"), [-3.0, 2.0])
    np.testing.assert_allclose(aggregate_components(s, "norm"), [-math.sqrt(5.0), 2.0])
    # "norm" of l2 scores is minus half the whole quaternion filter's l2 norm
    norm_scores = CriterionImportance("l2", aggregate="norm").unit_scores(layer, 4)
    whole = torch.stack(layer.components()).transpose(0, 1).reshape(8, -1).norm(dim=1)
    np.testing.assert_allclose(norm_scores, -whole.detach().numpy() / 2, rtol=1e-5)
    # concat mode: for l1 it ranks exactly as the mean aggregate
    mean = CriterionImportance("l1").unit_scores(layer, 4)
    cat = CriterionImportance("l1", quaternion_mode="concat").unit_scores(layer, 4)
    np.testing.assert_allclose(cat, 4 * mean, rtol=1e-5)
    # graph criteria: one node per quaternion (8 scores), from concatenated representatives
    # (the cosine of concatenated unit representatives is the mean of the components' cosines,
    # so the weighted degree comes out as the mean aggregate; path measures differ)
    wdc = CriterionImportance("wdc", quaternion_mode="concat").unit_scores(layer, 4)
    assert wdc.shape == (8,)
    np.testing.assert_allclose(wdc, CriterionImportance("wdc").unit_scores(layer, 4), atol=1e-9)
    layer = QConv2d(8, 64, 3)
    btw = CriterionImportance("closeness", quaternion_mode="concat").unit_scores(layer, 4)
    assert btw.shape == (16,) and np.isfinite(btw).all()
    assert not np.allclose(btw, CriterionImportance("closeness").unit_scores(layer, 4))
    with pytest.raises(ValueError, match="aggregate"):
        CriterionImportance("l1", aggregate="median")


def test_splitting_a_quaternion_is_refused() -> None:
    layer = QConv2d(4, 16, 3)
    with pytest.raises(ValueError, match=r"split unit\(s\) \[1\]"):
        layer_support(layer).prune_out(layer, [1, 5, 9])


@pytest.mark.parametrize("bn_mode", ["real", "quaternion"])
def test_qdcase21net_prunes_by_quaternions(bn_mode: str) -> None:
    torch.manual_seed(0)
    model = create_model("qdcase21net", 10, frontend=FSDD_FE, bn_mode=bn_mode).eval()
    original = copy.deepcopy(model)
    assert model.layer_widths() == {"conv1": 16, "conv2": 16, "conv3": 32, "fc1": 100}
    result = prune_body(model, PruneSpec("l1", Plan(ratios={"C1": 0.5, "C2": 0.5})))
    assert model.layer_widths() == {"conv1": 8, "conv2": 8, "conv3": 32, "fc1": 100}
    assert result["plan"]["counts"] == {"conv1": 2, "conv2": 2}  # quaternions
    # same MACs as the real twin, except conv1's 4 input channels (QBN and input BN: no MACs)
    assert count_macs(model)["model"] == (101 * 40 * 8 * 4 * 49 + 101 * 40 * 8 * 8 * 49
                                          + 20 * 8 * 32 * 8 * 49 + 64 * 100 + 100 * 10)
    l1 = get_criterion("l1")
    ref = copy.deepcopy(original)
    with torch.no_grad():
        for conv, bn in (("conv1", "bn1"), ("conv2", "bn2")):
            expect = select_prune(aggregate_components(_comp_scores(l1, getattr(original, conv)),
                                                       "mean"), 2)
            assert result["removed"][conv] == expect.tolist()
            real = _real(expect.tolist(), 16)
            for comp in getattr(ref, conv).components():
                comp[expect] = 0
            getattr(ref, conv).bias[real] = 0
            norm = getattr(ref, bn)
            shift, mean = (norm.bn.bias, norm.bn.running_mean) if bn_mode == "real" else \
                (norm.beta, norm.running_mean)
            shift[real] = 0
            mean[real] = 0
        wave = torch.randn(2, FSDD_FE.clip_samples)
        torch.testing.assert_close(model(wave), ref(wave), rtol=1e-4, atol=1e-5)


def test_budget_fill_gives_filters_back_up_to_the_budget() -> None:
    """A uniform ratio moves every layer by a filter at once: at 15% of dcase21net's MACs it lands
    at 10.9%. Filling gives filters back while the budget holds: 14.9%, and no layer can take
    one more filter back without breaking the budget."""
    model = _dcase()
    graph = _graph(model)
    target = int(0.15 * 57_866_600)
    uniform = resolve_plan(Plan(target_macs=target, fill=False), graph)
    filled = resolve_plan(Plan(target_macs=target), graph)
    assert uniform.predicted["macs"] / 57_866_600 == pytest.approx(0.1094, abs=1e-4)
    assert not uniform.filled and filled.filled and filled.level == uniform.level
    assert 0.98 * target <= filled.predicted["macs"] <= target
    cost = make_cost_fn(model, graph, "macs")
    for name, c in filled.counts.items():
        if c:
            assert cost({**filled.counts, name: c - 1}) > target
    pruned = copy.deepcopy(model)
    _graph(pruned).prune({n: list(range(c)) for n, c in filled.counts.items() if c})
    assert count_macs(pruned)["model"] == filled.predicted["macs"]


def test_two_budgets_at_once_both_hold() -> None:
    """A challenge's limits: parameters AND MACs; the plan meets both and fills up to whichever
    binds."""
    model = _dcase()
    graph = _graph(model)
    plan = resolve_plan(Plan(target_macs="20M", target_params="20k"), graph)
    assert plan.mode == "budget"
    assert plan.predicted["macs"] <= 20_000_000 and plan.predicted["params"] <= 20_000
    cost = make_cost_fn(model, graph, "params")
    macs = make_cost_fn(model, graph, "macs")
    for name, c in plan.counts.items():  # no layer can take a filter back without breaking one
        if c:
            more = {**plan.counts, name: c - 1}
            assert cost(more) > 20_000 or macs(more) > 20_000_000
    with pytest.raises(ValueError, match="target_macs and target_params cannot be met"):
        resolve_plan(Plan(target_macs="1M", target_params="20k", layers=["conv1"]), graph)


def test_a_named_budget_becomes_both_targets_at_the_deployed_precision() -> None:
    """dcase2024 = 128,000 B of parameters and 30 MMACs per second of audio; on FSDD's 1 s clips
    30M MACs per example, and dcase21net's MACs bind (no layer can take a filter back). With
    80 kB at fp32 (4 B a parameter: 20,000 parameters) the parameters bind instead. A plain
    module has no clip length: the plan asks for one, and 2 s examples double the MACs allowed."""
    model = _dcase()
    int8 = resolve_plan(Plan(budget="dcase2024"), _graph(model))
    assert int8.mode == "budget" and int8.predicted["macs"] <= 30_000_000
    macs = make_cost_fn(model, _graph(model), "macs")
    params = make_cost_fn(model, _graph(model), "params")
    assert all(macs({**int8.counts, n: c - 1}) > 30_000_000 for n, c in int8.counts.items() if c)
    fp32 = resolve_plan(Plan(budget="params_bytes=80k,macs=30M", precision="fp32"),
                        _graph(model))
    assert fp32.predicted["params"] <= 20_000 < int8.predicted["params"]
    assert fp32.predicted["macs"] <= 30_000_000
    assert all(params({**fp32.counts, n: c - 1}) > 20_000 or macs({**fp32.counts, n: c - 1})
               > 30_000_000 for n, c in fp32.counts.items() if c)
    body = nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 32, 3, padding=1),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 4))
    x = torch.randn(1, 1, 50, 40)
    with pytest.raises(ValueError, match="clip_seconds"):
        resolve_plan(Plan(budget="params_bytes=10k,macs=1M"), PruningGraph(body, x))
    one = resolve_plan(Plan(budget="macs=1.5M", clip_seconds=1.0), PruningGraph(body, x))
    two = resolve_plan(Plan(budget="macs=1.5M", clip_seconds=2.0), PruningGraph(body, x))
    assert one.predicted["macs"] <= 1_500_000 < two.predicted["macs"] <= 3_000_000
    with pytest.raises(ValueError, match="give exactly one of .*budget"):
        Plan(budget="dcase2024", ratio=0.5)
    with pytest.raises(ValueError, match="precision"):
        Plan(budget="dcase2024", precision="int4")
