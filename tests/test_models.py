"""Reference model families: PANNs CNN6/10/14, ast-tiny and dcase21net.

Parameter and MAC counts are checked against hand arithmetic (conv/BN/linear formulas), not
against numbers copied from the models. CNN14 at full width (80.75 M parameters) is built once,
counted, and run once on a 1 s input; its 10 s MACs are counted on the meta device (no compute).
"""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from audioprune.audio.frontend import FrontEndConfig
from audioprune.measure.counting import count_keras_params, count_macs, count_params
from audioprune.models.dcase21net import DCASE21_FRONTEND
from audioprune.models.panns import pool2x2_safe
from audioprune.models.registry import create_model, list_models, model_config, model_from_config

PANNS_FRONTEND = FrontEndConfig()  # 32 kHz, n_fft 1024, hop 320, 64 mels, 50-14000 Hz
FSDD_FRONTEND = FrontEndConfig(sample_rate=8000, n_fft=256, hop_length=80, n_mels=40, fmin=0.0,
                               fmax=None, clip_seconds=1.0)


# ---------------------------------------------------------------- hand arithmetic
def conv_params(c_in: int, c_out: int, k: int) -> int:
    return c_in * c_out * k * k  # PANNs convs have no bias


def bn_params(c: int) -> int:
    return 2 * c  # weight + bias (running statistics are buffers)


def linear_params(n_in: int, n_out: int) -> int:
    return n_in * n_out + n_out


def panns_params(widths: list[int], convs_per_block: int, k: int, classes: int,
                 n_mels: int = 64) -> int:
    total = bn_params(n_mels)  # bn0
    c_in = 1
    for w in widths:
        for _ in range(convs_per_block):
            total += conv_params(c_in, w, k) + bn_params(w)
            c_in = w
    return total + linear_params(c_in, c_in) + linear_params(c_in, classes)  # fc1, fc_out


def convs_params(convs: list[int], k: int, fc1: int, classes: int, n_mels: int = 64) -> int:
    """A PANNs CNN with explicit widths: one entry per conv, in order, then fc1's width."""
    total, c_in = bn_params(n_mels), 1
    for w in convs:
        total += conv_params(c_in, w, k) + bn_params(w)
        c_in = w
    return total + linear_params(c_in, fc1) + linear_params(fc1, classes)


CNN14_WIDTHS = [64, 128, 256, 512, 1024, 2048]


def cnn14_macs(sizes: list[tuple[int, int]], classes: int) -> int:
    """Sum over the 12 convs of H_out * W_out * C_out * C_in * 3 * 3, plus fc1 and fc_out.
    `sizes` is the (frames, mels) plane each block's convs run at (same padding)."""
    total, c_in = 0, 1
    for (t, m), w in zip(sizes, CNN14_WIDTHS):
        total += t * m * w * c_in * 9 + t * m * w * w * 9
        c_in = w
    return total + 2048 * 2048 + 2048 * classes


# ---------------------------------------------------------------- PANNs parameter counts
@pytest.fixture(scope="module")
def cnn14_full():
    torch.manual_seed(0)
    return create_model("cnn14", 527).eval()


def test_cnn14_params_match_panns(cnn14_full):
    hand = panns_params(CNN14_WIDTHS, 2, 3, 527)
    assert hand == 80_753_615  # PANNs: 80.75 M
    assert count_params(cnn14_full) == hand
    assert count_params(cnn14_full, include_frontend=True) == hand  # front end: buffers only


@pytest.mark.parametrize("name, convs, k, hand_expected, published_m", [
    ("cnn6", 1, 5, 4_837_455, 4.84),
    ("cnn10", 2, 3, 5_219_279, 5.22),
])
def test_cnn6_cnn10_params(name, convs, k, hand_expected, published_m):
    hand = panns_params([64, 128, 256, 512], convs, k, 527)
    assert hand == hand_expected
    assert round(hand / 1e6, 2) == published_m
    with torch.device("meta"):  # no need to fill 5 M weights to count them
        model = create_model(name, 527)
    assert count_params(model) == hand


def test_panns_structure_and_init():
    torch.manual_seed(0)
    m6 = create_model("cnn6", 10, width=0.125)
    m14 = create_model("cnn14", 10, width=0.125)
    assert m6.block1.conv1.kernel_size == (5, 5) and not hasattr(m6.block1, "conv2")
    assert m14.block1.conv2.kernel_size == (3, 3) and m14.block1.conv1.bias is None
    assert [m14.get_submodule(f"block{i}").pool for i in range(1, 7)] == [True] * 5 + [False]
    assert m14.bn0.num_features == 64  # bn0 normalises the mel axis
    for mod in m14.modules():
        if isinstance(mod, torch.nn.BatchNorm2d):
            assert torch.all(mod.weight == 1) and torch.all(mod.bias == 0)
    assert torch.all(m14.fc_out.bias == 0)
    assert list(m14.layer_widths()) == [f"block{b}.conv{c}" for b in range(1, 7)
                                        for c in (1, 2)] + ["fc1"]
    assert m14.layer_widths()["block1.conv1"] == 8 and m14.layer_widths()["fc1"] == 256


# ---------------------------------------------------------------- MACs
def test_cnn14_macs_1s(cnn14_full):
    # 1 s at 32 kHz: 32000 // 320 + 1 = 101 frames x 64 mels; 5 avg-pools of 2 (floor).
    sizes = [(101, 64), (50, 32), (25, 16), (12, 8), (6, 4), (3, 2)]
    hand = cnn14_macs(sizes, 527)
    assert hand == 1_974_290_432
    assert count_macs(cnn14_full, 32000)["model"] == hand


def test_cnn14_macs_10s_on_meta():
    # 10 s: 1001 frames x 64 mels -> 20.04 GMACs (PANNs reports 42.2 GFLOPs for CNN14, counting
    # a multiply-add as 2 plus BN / ReLU / pooling operations; 2 x 20.04 = 40.08).
    with torch.device("meta"):
        model = create_model("cnn14", 527).eval()
    sizes = [(1001, 64), (500, 32), (250, 16), (125, 8), (62, 4), (31, 2)]
    hand = cnn14_macs(sizes, 527)
    assert hand == 20_041_926_656
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.classify(torch.zeros(1, 1, 1001, 64, device="meta"))
    assert counter.get_total_flops() // 2 == hand


# ---------------------------------------------------------------- every model forwards
MODEL_CASES = [
    ("cnn6", {"width": 0.125}, PANNS_FRONTEND),
    ("cnn10", {"width": 0.125}, PANNS_FRONTEND),
    ("cnn14", {"width": 0.125}, PANNS_FRONTEND),
    ("ast-tiny", {}, PANNS_FRONTEND),
    ("ast-tiny", {"width": 0.5, "patch_stride": 10, "depth": 2}, PANNS_FRONTEND),
    ("dcase21net", {}, DCASE21_FRONTEND),
]
CASE_IDS = ["cnn6", "cnn10", "cnn14", "ast-tiny", "ast-tiny-overlap", "dcase21net"]


def test_models_registered():
    assert {"cnn6", "cnn10", "cnn14", "ast-tiny", "dcase21net"} <= set(list_models())


@pytest.mark.parametrize("name, kwargs, frontend", MODEL_CASES, ids=CASE_IDS)
def test_forward_wave_and_features(name, kwargs, frontend):
    torch.manual_seed(0)
    model = create_model(name, 7, frontend=frontend, **kwargs).eval()
    n = frontend.sample_rate  # 1 s
    wave = 0.1 * torch.randn(2, n)
    feats = torch.randn(2, *model.feature_shape(n))
    with torch.no_grad():
        out_wave = model(wave)
        out_feats = model(feats)
        # a waveform goes through the front end, then the same body features go through
        assert model.features(wave).shape == (2, *model.feature_shape(n))
        torch.testing.assert_close(out_wave, model(model.features(wave)), rtol=0, atol=0)
        torch.testing.assert_close(out_feats, model.classify(feats), rtol=0, atol=0)
        # examples are classified independently (eval mode): one alone gives its row of the batch
        torch.testing.assert_close(model(feats[1:]), out_feats[1:], rtol=1e-4, atol=1e-5)
    for out in (out_wave, out_feats):
        assert out.shape == (2, 7) and torch.isfinite(out).all()
        assert not torch.allclose(out[0], out[1])  # the output depends on the input


@pytest.mark.parametrize("name", ["cnn6", "ast-tiny"])
def test_train_mode_with_spec_augment(name):
    torch.manual_seed(0)
    model = create_model(name, 5, width=0.25,
                         spec_augment={"time_masks": 2, "time_width": 10, "freq_masks": 2,
                                       "freq_width": 4}).train()
    seen = []  # what SpecAugment hands on to the rest of the body
    model.spec_augment.register_forward_hook(lambda mod, args, out: seen.append((args[0], out)))
    out = model(torch.randn(2, 1, 101, 64))
    out.sum().backward()
    assert out.shape == (2, 5) and torch.isfinite(out).all()
    for p_name, param in model.named_parameters():  # the loss reaches every weight
        assert param.grad is not None and torch.isfinite(param.grad).all(), p_name
    x, masked = seen[0]
    zeroed = (masked == 0) & (x != 0)
    for z in zeroed[:, 0]:  # per example: whole frames and whole mel bins, nothing else
        frames, mels = z.all(dim=1), z.all(dim=0)
        assert 1 <= frames.sum() <= 20 and 1 <= mels.sum() <= 8  # 2 stripes of <= 10 / <= 4
        assert torch.equal(z, frames[:, None] | mels[None, :])
    assert torch.equal(masked[~zeroed], x[~zeroed])
    model.eval()
    seen.clear()
    with torch.no_grad():
        model(x)
    assert torch.equal(seen[0][1], seen[0][0])  # evaluation: no masks


@pytest.mark.parametrize("name, kwargs, frontend", MODEL_CASES, ids=CASE_IDS)
def test_config_round_trip(name, kwargs, frontend):
    torch.manual_seed(0)
    model = create_model(name, 4, frontend=frontend, **kwargs).eval()
    cfg = json.loads(json.dumps(model_config(model)))  # model.json must be plain JSON
    torch.manual_seed(123)  # a different init, to be overwritten by the state dict
    rebuilt = model_from_config(cfg).eval()
    rebuilt.load_state_dict(model.state_dict())
    assert rebuilt.layer_widths() == model.layer_widths()
    feats = torch.randn(2, *model.feature_shape(frontend.sample_rate))
    with torch.no_grad():
        assert torch.equal(model(feats), rebuilt(feats))


# ---------------------------------------------------------------- explicit widths (pruned models)
def test_cnn_explicit_widths():
    torch.manual_seed(0)
    widths = {"block1.conv1": 20, "block6.conv2": 40, "fc1": 30}
    model = create_model("cnn14", 6, width=0.125, widths=widths).eval()
    assert model.block1.conv1.out_channels == 20 and model.block1.bn1.num_features == 20
    assert model.block1.conv2.in_channels == 20 and model.block1.conv2.out_channels == 8
    assert model.block6.conv2.out_channels == 40 and model.fc1.in_features == 40
    assert model.fc1.out_features == 30 and model.fc_out.in_features == 30
    got = model.layer_widths()
    assert {k: got[k] for k in widths} == widths

    m6 = create_model("cnn6", 6, widths={"block1.conv1": 20}, width=0.125)
    assert m6.block1.conv1.out_channels == 20 and m6.block2.conv1.in_channels == 20
    # every weight follows the widths: parameters by hand, conv by conv
    convs14 = [20, 8, 16, 16, 32, 32, 64, 64, 128, 128, 256, 40]
    assert count_params(model) == convs_params(convs14, 3, 30, 6)
    assert count_params(m6) == convs_params([20, 16, 32, 64], 5, 64, 6)
    with torch.no_grad():
        assert model(torch.randn(1, 1, 101, 64)).shape == (1, 6)

    cfg = model_config(model)  # a "pruned" model round-trips too
    rebuilt = model_from_config(cfg).eval()
    rebuilt.load_state_dict(model.state_dict())
    assert rebuilt.layer_widths() == got


def test_width_multiple_of():
    with torch.device("meta"):
        model = create_model("cnn14", 3, width=0.3, width_multiple_of=4, in_channels=4)
    widths = model.layer_widths()
    assert all(w % 4 == 0 for w in widths.values())
    assert widths["block1.conv1"] == 20  # round(64 * 0.3 / 4) * 4
    assert widths["fc1"] == 616  # round(2048 * 0.3 / 4) * 4
    assert model.block1.conv1.in_channels == 4 and model.in_channels == 4


def test_ast_explicit_widths():
    torch.manual_seed(0)
    model = create_model("ast-tiny", 3, widths={"patch_embed": 96, "blocks.1.linear1": 100})
    assert model.patch_embed.out_channels == 96 and model.fc_out.in_features == 96
    assert model.blocks[0].linear1.out_features == 4 * 96
    assert model.blocks[1].linear1.out_features == 100
    assert model.blocks[1].linear2.in_features == 100
    mlp = lambda hidden: linear_params(96, hidden) + linear_params(hidden, 96)  # noqa: E731
    assert count_params(model) == ast_params(96, 4, 4 * 96, (62, 4), 3) - mlp(4 * 96) + mlp(100)
    with torch.no_grad():
        assert model(torch.randn(1, 1, 101, 64)).shape == (1, 3)
    with pytest.raises(ValueError, match="residual stream"):
        create_model("ast-tiny", 3, widths={"patch_embed": 96, "blocks.0.linear2": 192})


# ---------------------------------------------------------------- ast-tiny
def ast_params(dim: int, depth: int, hidden: int, grid: tuple[int, int], classes: int,
               patch: int = 16, n_mels: int = 64) -> int:
    per_layer = (3 * dim * dim + 3 * dim      # attention in-projection (q, k, v)
                 + linear_params(dim, dim)    # out_proj
                 + linear_params(dim, hidden) + linear_params(hidden, dim)
                 + 2 * 2 * dim)               # norm1, norm2
    return (bn_params(n_mels) + patch * patch * dim + dim   # bn0, patch_embed
            + dim * grid[0] * grid[1] + dim                 # pos_embed, cls_token
            + depth * per_layer + 2 * dim + linear_params(dim, classes))


def test_ast_tiny_params():
    model = create_model("ast-tiny", 527)
    grid = ((1001 - 16) // 16 + 1, (64 - 16) // 16 + 1)  # 10 s: 62 x 4 patches
    assert model.grid == grid == (62, 4)
    hand = ast_params(192, 4, 768, grid, 527)
    assert hand == 1_978_831  # about 2 M
    assert count_params(model) == hand
    half = create_model("ast-tiny", 527, width=0.5)
    assert half.patch_embed.out_channels == 96 and half.blocks[0].self_attn.num_heads == 3


@pytest.mark.parametrize("heads", [3, 4])
def test_ast_tiny_macs(heads):
    # 1 s: 101 frames x 64 mels -> 6 x 4 = 24 patches, 25 tokens with CLS.
    model = create_model("ast-tiny", 527, num_heads=heads)
    d, tokens, patches, depth = 192, 25, 24, 4
    linear = (patches * d * 16 * 16
              + depth * tokens * (3 * d * d + d * d + 2 * d * 4 * d)
              + d * 527)
    attention = depth * 2 * tokens * tokens * d  # q k^T and (scores) v over all heads
    macs = count_macs(model, 32000)["model"]
    # Torch's fused attention fast paths would hide the projections (checked with 4 heads, where
    # nn.MultiheadAttention would take it); count_macs adds the rule FlopCounterMode lacks for
    # the CPU flash SDPA kernel, so the 2*T^2*D score MACs per layer are counted too.
    assert macs == linear + attention


def test_ast_tiny_short_and_long_inputs():
    torch.manual_seed(0)
    model = create_model("ast-tiny", 3, width=0.5, depth=1).eval()
    with torch.no_grad():
        model.bn0.running_mean.copy_(torch.randn(64))  # bn0 as after training: mean not 0
        model.bn0.running_var.uniform_(0.5, 2.0)
        x = torch.randn(2, 1, 5, 64)
        short = model(x)  # shorter than one patch: padded after bn0, i.e. at the mean
        at_mean = model.bn0.running_mean.expand(2, 1, 11, 64)
        torch.testing.assert_close(short, model(torch.cat([x, at_mean], dim=2)))
        x = torch.randn(1, 1, 1601, 64)
        long = model(x)  # 16 s: more patches than pos_embed holds (interpolated, not cut)
        later = x.clone()
        later[:, :, 1100:] = torch.randn(1, 1, 501, 64)  # only what lies beyond 10 s
        assert not torch.allclose(model(later), long)
    assert short.shape == (2, 3) and long.shape == (1, 3)
    assert torch.isfinite(short).all() and torch.isfinite(long).all()


# ---------------------------------------------------------------- dcase21net
def test_dcase21net_counts_and_short_clip():
    torch.manual_seed(0)
    model = create_model("dcase21net", 10, frontend=DCASE21_FRONTEND).eval()
    assert count_keras_params(model) == 46_246
    hand = (501 * 40 * 16 * 49 + 501 * 40 * 16 * 16 * 49 + 100 * 8 * 32 * 16 * 49
            + 64 * 100 + 100 * 10)
    assert hand == 287_170_920
    assert count_macs(model)["model"] == hand  # default: the 10 s clip
    # 1 s: 44100 // 882 + 1 = 51 frames; max-pool 5 -> 10 frames for conv3; the max over all
    # frames makes the head the same size at any length
    assert count_macs(model, 44100)["model"] == (51 * 40 * 16 * 49 + 51 * 40 * 16 * 16 * 49
                                                 + 10 * 8 * 32 * 16 * 49 + 64 * 100 + 100 * 10)
    with torch.no_grad():
        wave = 0.1 * torch.randn(1, 44100)  # 1 s
        out = model(wave)
        assert model.features(wave).shape == (1, 1, 51, 40)
        torch.testing.assert_close(out, model.classify(model.features(wave)), rtol=0, atol=0)
    assert out.shape == (1, 10) and torch.isfinite(out).all()


# ---------------------------------------------------------------- short inputs and pooling
def test_pool2x2_safe():
    x = torch.randn(2, 3, 7, 6)
    assert torch.equal(pool2x2_safe(x), F.avg_pool2d(x, 2))  # PANNs' pooling when dims >= 2
    assert pool2x2_safe(torch.randn(1, 2, 1, 6)).shape == (1, 2, 1, 3)
    assert pool2x2_safe(torch.randn(1, 2, 5, 1)).shape == (1, 2, 2, 1)
    y = torch.randn(1, 2, 1, 1)
    assert torch.equal(pool2x2_safe(y), y)


@pytest.mark.parametrize("name, width", [("cnn6", 0.25), ("cnn14", 0.125)])
def test_panns_on_fsdd_frontend(name, width):
    torch.manual_seed(0)
    model = create_model(name, 10, frontend=FSDD_FRONTEND, width=width).eval()
    assert model.feature_shape(8000) == (1, 101, 40)
    # the convs run at FSDD's 101 x 40 plane, pooled 2x2 (floor) after each block
    sizes = [(101, 40), (50, 20), (25, 10), (12, 5), (6, 2), (3, 1)]
    convs = [c for c in model.layer_widths().values()][:-1]  # every conv; fc1 last
    per_block = 1 if name == "cnn6" else 2
    hand, c_in = 0, 1
    for i, c_out in enumerate(convs):
        t, m = sizes[i // per_block]
        hand += t * m * c_out * c_in * (25 if name == "cnn6" else 9)
        c_in = c_out
    assert count_macs(model, 8000)["model"] == hand + c_in * c_in + c_in * 10  # + fc1, fc_out
    with torch.no_grad():
        wave = 0.1 * torch.randn(2, 8000)
        out = model(wave)
        assert model.features(wave).shape == (2, 1, 101, 40)
        torch.testing.assert_close(out, model(model.features(wave)), rtol=0, atol=0)
    assert out.shape == (2, 10) and torch.isfinite(out).all()


def test_cnn14_on_tiny_input_does_not_collapse():
    # 8 mels and 5 frames: plain avg_pool2d(2) would reach size 0 after the 3rd block.
    frontend = FrontEndConfig(n_mels=8)
    torch.manual_seed(0)
    model = create_model("cnn14", 3, frontend=frontend, width=0.125).eval()
    planes = []
    for b in range(1, 7):
        model.get_submodule(f"block{b}").register_forward_hook(
            lambda mod, args, out: planes.append(tuple(out.shape[2:])))
    with torch.no_grad():
        x = torch.randn(2, 1, 5, 8)
        out = model(x)
        # 5 x 8 -> 2 x 4 -> 1 x 2 -> then an axis of 1 stays 1 (plain pooling would give 0)
        assert planes == [(2, 4), (1, 2), (1, 1), (1, 1), (1, 1), (1, 1)]
        assert not torch.allclose(model(torch.randn(2, 1, 5, 8)), out)  # still reads its input
    assert out.shape == (2, 3) and torch.isfinite(out).all()
