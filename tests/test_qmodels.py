"""Quaternion input stacks and the quaternion model twins (qdcase21net, qcnn6/10/14).

Counts are checked against hand arithmetic; the delta filter against librosa on real speech;
fused (real-layer) models against the quaternion ones on random and real FSDD input.
"""

from __future__ import annotations

import json
from pathlib import Path

import librosa
import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from audioprune.audio.clip import fit_length
from audioprune.audio.frontend import FrontEndConfig, LogMel
from audioprune.audio.io import load_audio
from audioprune.audio.quaternion_input import QuaternionInput, delta, deltas
from audioprune.measure.counting import count_macs, count_params
from audioprune.models.base import AudioClassifier
from audioprune.models.qmodels import conv_bn_pairs, fuse_for_inference
from audioprune.models.registry import create_model, list_models, model_config, model_from_config
from audioprune.nn.fuse import fuse_quaternion
from audioprune.nn.quaternion import QBatchNorm2d, QConv2d, QLinear, is_quaternion

FSDD_FE = FrontEndConfig(sample_rate=8000, n_fft=256, hop_length=80, n_mels=40, fmin=0,
                         fmax=4000, clip_seconds=1.0)
FSDD_FILES = ["3_theo_7.flac", "0_george_12.flac", "7_jackson_3.flac", "9_nicolas_20.flac"]
Q_NAMES = ["qdcase21net", "qcnn6", "qcnn10", "qcnn14"]
SMALL = {"qdcase21net": {}, "qcnn6": {"width": 0.25}, "qcnn10": {"width": 0.25},
         "qcnn14": {"width": 0.125}}


def fsdd_waves(root: Path, fe: FrontEndConfig = FSDD_FE) -> torch.Tensor:
    waves = [fit_length(load_audio(root / "recordings" / f, fe.sample_rate), fe.clip_samples)
             for f in FSDD_FILES]
    return torch.from_numpy(np.stack(waves))


# ---------------------------------------------------------------- hand arithmetic
def qconv(c_in: int, c_out: int, k: int, bias: bool = False) -> int:
    """4 components of (c_out/4, c_in/4, k, k): a quarter of the real kernel."""
    return 4 * (c_out // 4) * (c_in // 4) * k * k + (c_out if bias else 0)


def conv(c_in: int, c_out: int, k: int, bias: bool = False) -> int:
    return c_in * c_out * k * k + (c_out if bias else 0)


def linear(n_in: int, n_out: int) -> int:
    return n_in * n_out + n_out


def qlinear(n_in: int, n_out: int) -> int:
    return 4 * (n_in // 4) * (n_out // 4) + n_out


def bn(c: int, mode: str = "real") -> int:
    return 2 * c if mode == "real" else c // 4 + c  # gamma per quaternion, beta per channel


def qcnn14_params(classes: int, bn_mode: str = "real") -> int:
    total = bn(64)  # bn0 over the 64 mels, shared by the 4 input channels (real, as the authors)
    c_in = 4  # the first conv reads the 4 input channels as one quaternion
    for w in (64, 128, 256, 512, 1024, 2048):
        total += qconv(c_in, w, 3) + bn(w, bn_mode) + qconv(w, w, 3) + bn(w, bn_mode)
        c_in = w
    return total + qlinear(2048, 2048) + linear(2048, classes)  # quaternion fc1, real fc_out


# ---------------------------------------------------------------- delta and the input stacks
def test_delta_matches_librosa_on_real_speech(fsdd_root: Path) -> None:
    wave = load_audio(fsdd_root / "recordings" / "3_theo_7.flac", 8000)
    fe = FSDD_FE.replace(clip_seconds=None, mean=-60.0, std=20.0)
    z = LogMel(fe)(torch.from_numpy(wave)[None]).double()  # (1, 1, frames, mels)
    ours = deltas(z, 3)
    ref = z[0, 0].numpy().T  # librosa layout (mels, frames)
    for k in range(3):
        ref = librosa.feature.delta(ref, width=9, order=1, axis=-1, mode="interp")
        np.testing.assert_allclose(ours[k][0, 0].numpy().T, ref, rtol=1e-7, atol=1e-9)
    # librosa refuses clips shorter than the width; we pad the edges instead
    short = delta(z[..., :5, :])
    assert short.shape == (1, 1, 5, 40) and torch.isfinite(short).all()
    flat = delta(torch.full((2, 3, 20, 4), 7.0))  # a constant has no slope
    torch.testing.assert_close(flat, torch.zeros_like(flat), atol=1e-6, rtol=0)


def test_deltas_stack_and_standardisation(fsdd_root: Path) -> None:
    wave = fsdd_waves(fsdd_root)[:2]
    raw = QuaternionInput(FSDD_FE.replace(channels="deltas"))(wave)
    std = QuaternionInput(FSDD_FE.replace(channels="deltas", mean=-70.0, std=30.0))(wave)
    assert raw.shape == (2, 4, 101, 40)
    torch.testing.assert_close(raw[:, :1], LogMel(FSDD_FE)(wave))
    torch.testing.assert_close(raw[:, 1], delta(raw[:, 0]))
    torch.testing.assert_close(raw[:, 3], delta(delta(delta(raw[:, 0]))))
    # the log-mel is standardised; the deltas, taken from it, are only divided by std
    torch.testing.assert_close(std[:, 0], (raw[:, 0] + 70.0) / 30.0)
    torch.testing.assert_close(std[:, 1:], raw[:, 1:] / 30.0, atol=1e-5, rtol=1e-4)
    zero = QuaternionInput(FSDD_FE.replace(channels="deltas-zero"))(wave)
    torch.testing.assert_close(zero[:, :3], raw[:, :3])
    assert torch.all(zero[:, 3] == 0)


def _compute_deltas_np(x: np.ndarray, width: int = 5) -> np.ndarray:
    """torchaudio.functional.compute_deltas (edge-replicated regression) along axis -2."""
    half = width // 2
    pad = np.pad(x, [(0, 0)] * (x.ndim - 2) + [(half, half), (0, 0)], mode="edge")
    n = x.shape[-2]
    return sum(k * pad[..., half + k:half + k + n, :] for k in range(-half, half + 1)) / (
        2 * sum(k * k for k in range(1, half + 1)))


def test_spec_deltas_stack_as_the_authors_code(fsdd_root: Path) -> None:
    wave = fsdd_waves(fsdd_root)[:2]
    fe = FSDD_FE.replace(channels="spec-deltas", mean=-70.0, std=30.0)
    out = QuaternionInput(fe)(wave).double().numpy()
    torch.testing.assert_close(torch.from_numpy(out[:, :1]).float(), LogMel(fe)(wave))
    power = LogMel(fe).mel_power(wave).double().numpy()
    for k in range(1, 4):
        power = _compute_deltas_np(power)
        ref = (10 * np.log10(np.maximum(power, 1e-10)) + 70.0) / 30.0
        np.testing.assert_allclose(out[:, k], ref, atol=2e-3)
    assert out[:, 1].min() == pytest.approx((-100.0 + 70.0) / 30.0)  # negative deltas: floor


def test_stereo_stack_mid_side_left_right(fsdd_root: Path) -> None:
    waves = fsdd_waves(fsdd_root)
    left, right = waves[:2], 0.5 * waves[2:]
    fe = FSDD_FE.replace(channels="stereo", mean=-70.0, std=30.0)
    out = QuaternionInput(fe)(torch.stack([left, right], dim=1))
    logmel = LogMel(fe)
    for c, ref in enumerate([(left + right) / 2, (left - right) / 2, left, right]):
        torch.testing.assert_close(out[:, c], logmel(ref)[:, 0], atol=1e-4, rtol=1e-5)
    mono = QuaternionInput(fe)(left)  # dual mono: L = R, the side channel is silence
    torch.testing.assert_close(mono[:, 0], logmel(left)[:, 0], atol=1e-4, rtol=1e-5)
    assert torch.allclose(mono[:, 1], torch.tensor((-100.0 + 70.0) / 30.0))
    with pytest.raises(ValueError, match="stereo"):
        QuaternionInput(fe)(torch.zeros(1, 3, 8000))
    with pytest.raises(ValueError, match="mono waveform"):
        QuaternionInput(FSDD_FE.replace(channels="deltas"))(torch.zeros(1, 2, 8000))


def test_frontend_config_channels() -> None:
    assert FrontEndConfig().channels == "mono" and FrontEndConfig().num_channels == 1
    assert FSDD_FE.replace(channels="stereo").num_channels == 4
    old = {k: v for k, v in FSDD_FE.to_dict().items() if k != "channels"}  # older model.json
    assert FrontEndConfig.from_dict(old) == FSDD_FE
    with pytest.raises(ValueError, match="feature stack"):
        FrontEndConfig(channels="quad")
    with pytest.raises(ValueError, match="LogMel"):
        QuaternionInput(FSDD_FE)
    # a real model reads a 4-channel stack too (its first conv takes 4 channels)
    real = create_model("cnn6", 3, frontend=FSDD_FE.replace(channels="deltas"), width=0.125)
    assert real.in_channels == 4 and real.block1.conv1.in_channels == 4
    with torch.no_grad():
        assert real.eval()(0.1 * torch.randn(2, 8000)).shape == (2, 3)


# ---------------------------------------------------------------- parameter and MAC counts
def test_qcnn14_params_match_the_authors() -> None:
    # Our qcnn14 and the authors' QCNN14 (21,012,431 at 527 classes) agree exactly: quaternion
    # 3x3 convs without bias (the first reads the 4 input channels as one quaternion, so it keeps
    # the 576 weights of CNN14's 1-channel first conv), a real BatchNorm2d per conv (2 per
    # channel), bn0 over the 64 mels (128), a quaternion fc1 (2048^2 / 4 + 2048 bias) and a real
    # classifier (2048 * 527 + 527). The optional affine-free input_norm adds no parameters; the
    # quaternion BN mode would hold 5/4 instead of 2 per channel (6,048 fewer in all).
    hand = qcnn14_params(527)
    assert hand == 21_012_431
    with torch.device("meta"):
        q14 = create_model("qcnn14", 527)
        cnn14 = create_model("cnn14", 527)
        q14_qbn = create_model("qcnn14", 527, bn_mode="quaternion")
    assert count_params(q14) == hand
    assert count_params(q14_qbn) == qcnn14_params(527, "quaternion") == hand - 6_048
    assert 0.25 < count_params(q14) / count_params(cnn14) < 0.27  # 80,753,615 -> 26.0 %
    # same module names as the real twin: pruning patterns and model.json widths carry over
    assert list(q14.layer_widths()) == list(cnn14.layer_widths())
    assert q14.layer_widths() == cnn14.layer_widths()
    assert isinstance(q14.block6.conv2, QConv2d) and isinstance(q14.fc1, QLinear)
    assert isinstance(q14.block1.bn1, QBatchNorm2d) and type(q14.fc_out) is nn.Linear


def test_qcnn14_conv_macs_equal_the_real_twin() -> None:
    # the real twin reading the same 4-channel input; 1 s at 32 kHz: 101 frames x 64 mels
    with torch.device("meta"):
        q14 = create_model("qcnn14", 527).eval()
        r14 = create_model("cnn14", 527, frontend=FrontEndConfig(channels="deltas")).eval()

    def macs(model: AudioClassifier) -> int:
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            model.classify(torch.zeros(1, 4, 101, 64, device="meta"))
        return counter.get_total_flops() // 2

    sizes = [(101, 64), (50, 32), (25, 16), (12, 8), (6, 4), (3, 2)]
    hand, c_in = 0, 4
    for (t, m), w in zip(sizes, (64, 128, 256, 512, 1024, 2048)):
        hand += t * m * w * c_in * 9 + t * m * w * w * 9
        c_in = w
    hand += 2048 * 2048 + 2048 * 527
    assert macs(q14) == macs(r14) == hand


def test_flop_counter_sees_the_conv_inside_the_autograd_function() -> None:
    layer = QConv2d(8, 12, 3, padding=1)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        layer(torch.zeros(2, 8, 5, 6))
    assert counter.get_total_flops() // 2 == 2 * 5 * 6 * 12 * 8 * 9  # one real conv's MACs


def qdcase_hand(classes: int = 10) -> tuple[int, int, int]:
    """(quaternion params, real-conv params of the fused model, MACs) of qdcase21net on the
    FSDD front end: 1 s = 101 frames x 40 mels; MaxPool 5 -> 20 x 8; max over time, pool 4 -> 2."""
    q_convs = qconv(4, 16, 7, True) + qconv(16, 16, 7, True) + qconv(16, 32, 7, True)
    r_convs = conv(4, 16, 7, True) + conv(16, 16, 7, True) + conv(16, 32, 7, True)
    bns = bn(16) + bn(16) + bn(32)
    params = q_convs + bns + qlinear(64, 100) + linear(100, classes)
    fused = r_convs + bns + linear(64, 100) + linear(100, classes)
    macs = (101 * 40 * 16 * 4 * 49 + 101 * 40 * 16 * 16 * 49 + 20 * 8 * 32 * 16 * 49
            + 64 * 100 + 100 * classes)
    return params, fused, macs


def test_qdcase21net_counts_by_hand() -> None:
    model = create_model("qdcase21net", 10, frontend=FSDD_FE).eval()
    real = create_model("dcase21net", 10, frontend=FSDD_FE).eval()
    params, fused_params, macs = qdcase_hand()
    assert (params, fused_params, macs) == (13_094, 48_470, 67_368_680)
    assert count_params(model) == params
    assert count_macs(model)["model"] == macs
    fused = fuse_quaternion(model)
    assert isinstance(fused, AudioClassifier)
    assert count_params(fused) == fused_params  # the fused model stores the real kernels
    assert count_macs(fused)["model"] == macs

    def conv_params(m: nn.Module) -> int:
        return sum(p.numel() for n, p in m.named_parameters() if n.startswith("conv"))

    # about 1/4 of the real twin's conv parameters: 10,256 vs 38,480 = 26.7 %. Not exactly 1/4:
    # the first conv reads 4 channels (784 weights, as the 1-channel real conv) and the biases
    # (64) stay one per real channel.
    assert conv_params(model) == 10_256 and conv_params(real) == 38_480
    assert 0.25 < conv_params(model) / conv_params(real) < 0.27


# ---------------------------------------------------------------- models
def test_twins_registered_and_run_on_wave_and_features() -> None:
    assert set(Q_NAMES) <= set(list_models())
    for name in Q_NAMES:
        model = create_model(name, 5, frontend=FSDD_FE, **SMALL[name]).eval()
        assert model.frontend_cfg.channels == "deltas" and model.in_channels == 4
        assert model.feature_shape(8000) == (4, 101, 40)
        assert all(w % 4 == 0 for w in model.layer_widths().values())
        with torch.no_grad():
            assert model(0.1 * torch.randn(2, 8000)).shape == (2, 5)
            assert model(torch.randn(2, 4, 101, 40)).shape == (2, 5)
        with pytest.raises(ValueError, match="expected features"):
            model(torch.randn(2, 1, 101, 40))


def test_train_step_with_spec_augment_and_quaternion_bn() -> None:
    model = create_model("qcnn6", 5, frontend=FSDD_FE, width=0.25, bn_mode="quaternion",
                         input_norm=True, spec_augment={"time_masks": 2, "time_width": 10, "freq_masks": 2,
                                       "freq_width": 4}).train()
    out = model(0.1 * torch.randn(3, 8000))
    out.sum().backward()
    assert torch.isfinite(out).all()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
    assert model.input_norm.num_batches_tracked == 1


def test_options_and_errors() -> None:
    with pytest.raises(ValueError, match="bn_mode"):
        create_model("qcnn6", 3, bn_mode="batch")
    with pytest.raises(ValueError, match="in_channels"):
        create_model("qdcase21net", 3, frontend=FSDD_FE, in_channels=1)
    with pytest.raises(ValueError, match="multiple of 4"):
        create_model("qcnn6", 3, width_multiple_of=2)
    with pytest.raises(ValueError, match="multiple of 4"):
        create_model("qcnn6", 3, widths={"block1.conv1": 18})
    plain = create_model("qdcase21net", 3, frontend=FSDD_FE, init="he")
    assert isinstance(plain.input_norm, nn.Identity) and plain.conv1.init == "he"
    normed = create_model("qdcase21net", 3, frontend=FSDD_FE, input_norm=True)
    assert isinstance(normed.input_norm, nn.BatchNorm2d) and normed.input_norm.weight is None
    assert count_params(normed) == count_params(plain)
    with torch.device("meta"):
        q10 = create_model("qcnn10", 3, width=0.3)
    assert q10.layer_widths()["block1.conv1"] == 20  # round(64 * 0.3 / 4) * 4
    assert q10.layer_widths()["fc1"] == 152  # round(512 * 0.3 / 4) * 4
    stereo = create_model("qcnn6", 3, frontend=FSDD_FE.replace(channels="stereo"), width=0.125)
    with torch.no_grad():
        assert stereo.eval()(0.1 * torch.randn(2, 2, 8000)).shape == (2, 3)


def _with_stats(model: AudioClassifier, waves: torch.Tensor) -> AudioClassifier:
    """Running statistics from a few training-mode passes and perturbed BN affine parameters,
    so that fusing is tested on a model that is not at its initialisation."""
    model.train()
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for _ in range(2):
            model(waves)
        for name, p in model.named_parameters():
            if ".bn" in name or name.startswith("bn"):
                p.add_(0.2 * torch.randn(p.shape, generator=gen))
    return model.eval()


@pytest.mark.parametrize("name", Q_NAMES)
def test_config_round_trip_identical_outputs(name: str) -> None:
    model = _with_stats(create_model(name, 4, frontend=FSDD_FE, bn_mode="quaternion",
                                     input_norm=True, **SMALL[name]), 0.1 * torch.randn(3, 8000))
    cfg = json.loads(json.dumps(model_config(model)))
    assert cfg["frontend"]["channels"] == "deltas"
    torch.manual_seed(123)
    rebuilt = model_from_config(cfg).eval()
    rebuilt.load_state_dict(model.state_dict())
    assert rebuilt.layer_widths() == model.layer_widths()
    x = torch.randn(2, 4, 101, 40)
    with torch.no_grad():
        assert torch.equal(model(x), rebuilt(x))


def test_explicit_widths_rebuild() -> None:
    widths = {"block1.conv1": 20, "block6.conv2": 40, "fc1": 36}
    model = create_model("qcnn14", 6, frontend=FSDD_FE, width=0.125, widths=widths).eval()
    assert model.block1.conv1.out_channels == 20 and model.block1.conv2.in_channels == 20
    assert model.block1.bn1.num_features == 20 and model.block1.conv1.r_weight.shape[:2] == (5, 1)
    assert model.fc1.in_features == 40 and model.fc1.out_features == 36
    assert model.fc_out.in_features == 36
    assert {k: model.layer_widths()[k] for k in widths} == widths
    rebuilt = model_from_config(model_config(model)).eval()
    rebuilt.load_state_dict(model.state_dict())
    qd = create_model("qdcase21net", 3, frontend=FSDD_FE, widths={"conv3": 24, "fc1": 48})
    assert qd.fc1.in_features == 24 * 2 and qd.fc1.out_features == 48
    x = torch.randn(1, 4, 101, 40)
    with torch.no_grad():
        assert torch.equal(model(x), rebuilt(x))
        assert qd.eval()(x).shape == (1, 3)


# ---------------------------------------------------------------- fused inference
@pytest.mark.parametrize("name", Q_NAMES)
@pytest.mark.parametrize("bn_mode", ["real", "quaternion"])
def test_fused_model_matches_on_random_and_real_fsdd(name: str, bn_mode: str,
                                                     fsdd_root: Path) -> None:
    waves = fsdd_waves(fsdd_root)
    model = _with_stats(create_model(name, 10, frontend=FSDD_FE, bn_mode=bn_mode,
                                     input_norm=bn_mode == "quaternion", **SMALL[name]), waves)
    fused = fuse_quaternion(model)
    assert isinstance(fused, AudioClassifier) and not fused.training
    assert not any(is_quaternion(m) for m in fused.modules())
    assert {type(m) for m in fused.modules()} >= {nn.Conv2d, nn.BatchNorm2d, nn.Linear}
    assert count_macs(fused) == count_macs(model)
    feats = torch.randn(3, 4, 101, 40)
    with torch.no_grad():
        torch.testing.assert_close(fused(waves), model(waves), atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(fused(feats), model(feats), atol=1e-5, rtol=1e-5)
        folded = fuse_for_inference(model, fold_bn=True)
        torch.testing.assert_close(folded(waves), model(waves), atol=1e-4, rtol=1e-4)
    assert isinstance(model.block1.conv1 if hasattr(model, "block1") else model.conv1, QConv2d)


def test_conv_bn_pairs_and_folding_removes_the_convs_bns() -> None:
    q14 = create_model("qcnn14", 3, width=0.125)
    pairs = conv_bn_pairs(q14)
    assert pairs[:2] == [("block1.conv1", "block1.bn1"), ("block1.conv2", "block1.bn2")]
    assert len(pairs) == 12
    assert conv_bn_pairs(create_model("qdcase21net", 3, frontend=FSDD_FE)) == [
        ("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3")]
    folded = fuse_for_inference(q14, fold_bn=True)
    assert isinstance(folded.block3.bn2, nn.Identity) and folded.block3.conv2.bias is not None
    assert isinstance(folded.bn0, nn.BatchNorm2d)  # bn0 precedes no conv output: kept
