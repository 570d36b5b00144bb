"""Mixed-precision training (TrainConfig.precision): quaternion layers under autocast against a
native real twin and against fp32, the fp32 islands (front end, loss, BN statistics), the fp16
GradScaler's state across a resume, the options' wiring (CLI, recipes, fingerprints), and - on
real FSDD speech - bf16 training reaching fp32's accuracy."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from audioprune.audio.frontend import FrontEndConfig
from audioprune.data.loader import ClipDataset
from audioprune.data.types import Clip
from tones import ToneWaves
from audioprune.errors import UserError
from audioprune.models.registry import create_model
from audioprune.nn import QBatchNorm2d, QConv1d, QConv2d, QLinear
from audioprune.nn.quaternion import fold_hamilton
from audioprune.train.fit import TrainConfig, fit

BF16 = dict(device_type="cpu", dtype=torch.bfloat16)


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.detach().double() - b.detach().double()).norm() / b.detach().double().norm())


def _twin(layer: nn.Module) -> nn.Module:
    """The native real layer computing the same function (the assembled Hamilton kernel)."""
    w = layer.assembled_weight().detach().clone()
    if isinstance(layer, QLinear):
        twin = nn.Linear(layer.in_features, layer.out_features)
    else:
        cls = nn.Conv2d if isinstance(layer, QConv2d) else nn.Conv1d
        twin = cls(layer.in_channels, layer.out_channels, layer.kernel_size, layer.stride,
                   layer.padding, layer.dilation)
    with torch.no_grad():
        twin.weight.copy_(w)
        twin.bias.copy_(layer.bias)
    return twin


def _run(layer: nn.Module, x: torch.Tensor, amp: dict | None) -> tuple[torch.Tensor, ...]:
    layer.zero_grad()
    x = x.clone().requires_grad_(True)
    with torch.autocast(**amp) if amp else torch.autocast("cpu", enabled=False):
        y = layer(x)
    y.float().square().mean().backward()
    return y, x.grad


LAYERS = [
    (lambda: QConv2d(8, 16, 3, stride=(1, 2), padding=1), (3, 8, 12, 10)),
    (lambda: QConv1d(8, 12, 5, padding=2, dilation=2), (3, 8, 40)),
    (lambda: QLinear(16, 8), (6, 16)),
    (lambda: QLinear(16, 8), (2, 5, 16)),  # a sequence: (batch, time, features)
]


@pytest.mark.parametrize("amp", [BF16, dict(device_type="cpu", dtype=torch.float16)],
                         ids=["bf16", "fp16"])
@pytest.mark.parametrize("make,shape", LAYERS, ids=["qconv2d", "qconv1d", "qlinear", "qlinear3d"])
def test_quaternion_layers_under_autocast_match_their_native_twin_and_fp32(make, shape, amp) -> None:
    torch.manual_seed(0)
    layer = make()
    twin = _twin(layer)
    x = torch.randn(shape)
    y, gx = _run(layer, x, amp)
    assert y.dtype == amp["dtype"]  # the conv ran in autocast's precision, as a real one does
    assert gx.dtype == torch.float32 and all(p.grad.dtype == torch.float32 for p in layer.parameters())
    # the native twin under the same autocast: what autocast does to a real layer
    ty, tgx = _run(twin, x, amp)
    assert ty.dtype == y.dtype
    assert _rel(y, ty) < 1e-6  # the same low-precision kernel and input: the same output
    assert _rel(gx, tgx) < 1e-6
    # component gradients = the twin's kernel gradient folded by the Hamilton rule (ours fold
    # in fp32, the twin's gradient arrived in fp32 too: equal up to fp32 summation order)
    folded = fold_hamilton(twin.weight.grad)
    for mine, ref in zip(layer.components(), folded):
        assert _rel(mine.grad, ref) < 1e-5
    assert _rel(layer.bias.grad, twin.bias.grad) < 1e-5
    # and against fp32: within the low precision's rounding, but not equal (autocast ran)
    y32, gx32 = _run(layer, x, None)
    grads32 = [p.grad.clone() for p in layer.parameters()]
    _run(layer, x, amp)
    bound = 2e-2 if amp["dtype"] == torch.bfloat16 else 3e-3
    assert 0 < _rel(y, y32) < bound
    assert 0 < _rel(gx, gx32) < bound
    for p, g32 in zip(layer.parameters(), grads32):
        assert _rel(p.grad, g32) < 2 * bound


def test_quaternion_layer_saves_its_input_in_low_precision() -> None:
    """The module casts its input before the autograd Function: what the backward keeps is the
    bf16 copy (half the activation memory, as for a native conv under autocast)."""
    layer = QConv2d(8, 8, 3, padding=1)
    x = torch.randn(2, 8, 6, 6, requires_grad=True)
    with torch.autocast(**BF16):
        y = layer(x)
    saved = y.grad_fn.saved_tensors
    assert saved[0].dtype == torch.bfloat16 and saved[-1].dtype == torch.bfloat16  # input, kernel
    assert saved[1].dtype == torch.float32  # the components themselves are never copied
    y.float().sum().backward()
    assert x.grad is not None and x.grad.dtype == torch.float32


def test_quaternion_batch_norm_keeps_fp32_statistics_under_autocast() -> None:
    torch.manual_seed(0)
    bn, ref = QBatchNorm2d(8), QBatchNorm2d(8)
    x = torch.randn(4, 8, 5, 5) * 3 + 1
    with torch.autocast(**BF16):
        h = QConv2d(8, 8, 1)(x)  # a bf16 activation, as in a network
    assert h.dtype == torch.bfloat16
    with torch.autocast(**BF16):
        out = bn(h)
    ref(h.detach().float())
    assert out.dtype == torch.bfloat16
    assert bn.running_mean.dtype == bn.running_var.dtype == torch.float32
    torch.testing.assert_close(bn.running_mean, ref.running_mean)
    torch.testing.assert_close(bn.running_var, ref.running_var)


def test_front_end_stays_fp32_under_autocast() -> None:
    fe = FrontEndConfig(sample_rate=8000, n_fft=256, hop_length=80, n_mels=40, fmin=0.0,
                        fmax=None, clip_seconds=0.5)
    model = create_model("dcase21net", 10, frontend=fe).eval()
    wave = 0.1 * torch.randn(2, 4000)
    plain = model.features(wave)
    with torch.autocast(**BF16):
        amp = model.features(wave)
        logits = model(wave)
    assert amp.dtype == torch.float32
    torch.testing.assert_close(amp, plain, rtol=0, atol=0)  # bit-identical: autocast was off
    assert logits.dtype == torch.bfloat16  # ... and back on for the body


def _tones(n: int = 32, classes: int = 4, samples: int = 4000) -> ClipDataset:
    source = ToneWaves(n, classes, samples)
    clips = [Clip(f"c{i}", None, (i % classes,)) for i in range(n)]
    return ClipDataset(clips, source, "single-label", classes, samples, "centre")


def _tiny(classes: int = 4, arch: str = "dcase21net") -> nn.Module:
    fe = FrontEndConfig(sample_rate=8000, n_fft=256, hop_length=80, n_mels=40, fmin=0.0,
                        fmax=None, clip_seconds=0.5, mean=-50.0, std=20.0)
    torch.manual_seed(0)
    return create_model(arch, classes, frontend=fe, width=0.5, dropout=0.0)


@pytest.mark.parametrize("arch", ["dcase21net", "qdcase21net"])
def test_bf16_training_step_autocasts_the_body_and_keeps_the_rest_fp32(tmp_path: Path,
                                                                        arch: str) -> None:
    model = _tiny(arch=arch)
    seen: dict[str, torch.dtype] = {}

    def hook(module: nn.Module, args: tuple, out: torch.Tensor) -> None:
        seen.setdefault("conv", out.dtype)

    model.conv2.register_forward_hook(hook)
    losses: list[torch.dtype] = []

    def loss_fn(logits: torch.Tensor, y: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        losses.append(logits.dtype)
        return F.cross_entropy(logits, y)

    summary = fit(model, _tones(), None, TrainConfig(epochs=3, batch_size=8, lr=3e-3,
                                                     progress=False, precision="bf16"),
                  tmp_path, loss_fn=loss_fn)
    assert seen["conv"] == torch.bfloat16  # the training forward ran under bf16 autocast
    assert set(losses) == {torch.float32}  # the loss always saw fp32 logits
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert all(b.dtype in (torch.float32, torch.int64) for b in model.buffers())
    history = [h["train_loss"] for h in summary["history"]]
    assert history[-1] < 0.9 * history[0], history  # it learned (the tones are easy)


def test_fp16_grad_scaler_state_is_checkpointed_and_restored(tmp_path: Path) -> None:
    cfg = TrainConfig(epochs=2, batch_size=8, lr=3e-3, progress=False, precision="fp16")
    ds = _tones(n=24)
    fit(_tiny(), ds, None, cfg, tmp_path / "full")
    saved = json.loads((tmp_path / "full" / "checkpoint" / "last.json").read_text())
    scaler = saved["grad_scaler"]
    assert scaler["scale"] > 0 and set(scaler) >= {"scale", "_growth_tracker"}
    # stop after one epoch, resume: the second epoch starts from the saved scale
    fit(_tiny(), ds, None, TrainConfig(**{**cfg.to_dict(), "epochs": 1}), tmp_path / "cut")
    once = json.loads((tmp_path / "cut" / "checkpoint" / "last.json").read_text())["grad_scaler"]
    resumed = fit(_tiny(), ds, None, cfg, tmp_path / "cut", resume=True)
    again = json.loads((tmp_path / "cut" / "checkpoint" / "last.json").read_text())
    assert resumed["epoch"] == 2
    assert once != scaler  # the scaler moved during epoch 2 (steps counted, or a back-off)
    assert again["grad_scaler"] == scaler  # ... and the resumed run moved it from where it was
    # fp32 and bf16 runs have no scaler to save
    fit(_tiny(), ds, None, TrainConfig(**{**cfg.to_dict(), "precision": "bf16", "epochs": 1}),
        tmp_path / "bf16")
    assert "grad_scaler" not in json.loads((tmp_path / "bf16" / "checkpoint" / "last.json")
                                           .read_text())


def test_precision_is_checked_and_named() -> None:
    for bad, name in ((dict(precision="fp8"), "precision"), (dict(sampler="uniform"), "sampler"),
                      (dict(compile="yes"), "compile"), (dict(channels_last=1), "channels_last")):
        with pytest.raises(UserError) as info:
            TrainConfig(**bad).validate()  # type: ignore[arg-type]
        assert info.value.template.startswith(f"`{name}` must be"), info.value.template


def test_cli_flags_reach_the_train_config_and_prune_keeps_its_own_precision() -> None:
    from audioprune.cli import _subparser, build_parser, flag_names
    from audioprune.cli.common import train_config

    parser = build_parser()
    args = parser.parse_args(["train", "--model", "dcase21net", "--dataset", "fsdd", "--out", "x",
                              "--precision", "bf16", "--channels-last", "--compile",
                              "--sampler", "balanced"])
    cfg = train_config(args)
    assert (cfg.precision, cfg.channels_last, cfg.compile, cfg.sampler) == \
        ("bf16", True, True, "balanced")
    args = parser.parse_args(["distill", "--train-precision", "fp16"])  # the alias works too
    assert train_config(args).precision == "fp16"
    # prune: --precision stays a budget's deployment precision; training takes --train-precision
    args = parser.parse_args(["prune", "run", "--criterion", "l1", "--ratio", "0.5",
                              "--precision", "fp16", "--train-precision", "bf16"])
    assert args.precision == "fp16" and args.train_precision == "bf16"
    assert args.channels_last is None and args.compile is None and args.sampler is None  # keep
    prune_parser = _subparser(parser, "prune")
    assert flag_names(prune_parser)["train_precision"] == "--train-precision"
    assert "--train-precision" in prune_parser.format_help()


def test_prune_names_its_training_flag_when_the_precision_cannot_train(monkeypatch) -> None:
    from audioprune.cli import prune as prune_cli
    from audioprune.train import precision

    monkeypatch.setattr(precision, "unsupported", lambda device, p: "no bf16 on this device")
    monkeypatch.setattr("audioprune.train.fit.unsupported", precision.unsupported)
    with pytest.raises(UserError) as info:
        prune_cli._check_train_precision("bf16", "cpu")
    assert "`train_precision` bf16" in info.value.template


def test_recipe_precision_is_fingerprinted_only_when_not_fp32() -> None:
    from audioprune.pipeline.fingerprint import fingerprint
    from audioprune.pipeline.recipe import parse_recipe
    from audioprune.pipeline.steps import plan_steps

    def steps(train: dict, finetune: dict) -> list:
        recipe = parse_recipe({
            "name": "r", "dataset": {"name": "synthetic", "split": "small"},
            "models": [{"name": "m", "arch": "dcase21net", "train": {"epochs": 1, **train}}],
            "prune": {"criteria": ["l1"], "ratios": [0.5], "finetune": {"epochs": 1, **finetune}},
            "profile": False, "report": False})
        return [fingerprint(s, recipe) for s in plan_steps(recipe)]

    plain = steps({}, {})
    assert steps({"precision": "fp32", "channels_last": True, "compile": True},
                 {"precision": "fp32", "compile": True}) == plain  # older runs still match
    bf16 = steps({"precision": "bf16"}, {"precision": "bf16"})
    assert bf16[0]["train"]["precision"] == "bf16"
    assert bf16[1]["finetune"]["precision"] == "bf16"
    assert steps({"sampler": "balanced"}, {})[0]["train"]["sampler"] == "balanced"


@pytest.mark.slow
def test_bf16_training_on_fsdd_reaches_fp32_accuracy(fsdd_small: Path, tmp_path: Path) -> None:
    """Same initial weights, same batches: bf16 autocast must learn real speech as fp32 does.
    Seen (seed 0, 8 epochs, cnn6 x0.25): fp32 0.45, bf16 0.38 test accuracy, last-3-epoch
    training loss 1.77 vs 1.84; seeds 1 and 2: 0.40 / 0.40 and 0.35 / 0.37. Chance is 0.10,
    a model that does not learn stays at a loss of ~2.3."""
    from audioprune.runs.data import DataSpec
    from audioprune.runs.train import train_run

    spec = DataSpec("fsdd", str(fsdd_small), frontend={"clip_seconds": 0.8})
    runs = {}
    for precision in ("fp32", "bf16"):
        cfg = TrainConfig(epochs=8, batch_size=16, lr=3e-3, seed=0, progress=False,
                          precision=precision)
        runs[precision] = train_run("cnn6", {"width": 0.25}, spec, cfg, tmp_path / precision)
    fp32, bf16 = runs["fp32"], runs["bf16"]
    assert json.loads((tmp_path / "bf16" / "config.json").read_text())["train"]["precision"] == "bf16"
    tail = {k: np.mean([h["train_loss"] for h in r["history"][-3:]]) for k, r in runs.items()}
    first = bf16["history"][0]["train_loss"]
    assert tail["bf16"] < 0.8 * first  # it learned ...
    assert tail["bf16"] < 1.15 * tail["fp32"], tail  # ... as far as fp32 did
    assert bf16["accuracy"] >= 0.3  # 3x chance on 100 test clips
    assert bf16["accuracy"] >= fp32["accuracy"] - 0.12, (bf16["accuracy"], fp32["accuracy"])


@pytest.mark.slow  # ~12 s: a teacher and a student trained
def test_bf16_distillation_runs_the_online_teacher_under_autocast_and_the_loss_in_fp32(
        tmp_path: Path) -> None:
    """Distiller.fit's path (runs/kd.py): the online teacher computes its logits in the
    student's forward pre-hook, so inside the step's autocast (its convs in bf16, half the
    teacher's cost), and hands them on as fp32; the KD loss (clip loss + T^2 KL) sees fp32
    student and teacher logits, and the student learns from the teacher."""
    from audioprune.distill.losses import resolve_recipe
    from audioprune.distill.teacher import OnlineTeacher

    teacher = _tiny()
    fit(teacher, _tones(), None, TrainConfig(epochs=3, batch_size=8, lr=3e-3, progress=False),
        tmp_path / "teacher")
    source = OnlineTeacher(teacher)
    kd = resolve_recipe(None, "single-label").build(2.0, 0.5)
    seen: dict[str, set] = {"teacher_conv": set(), "student": set(), "teacher": set()}
    teacher.conv2.register_forward_hook(lambda m, a, o: seen["teacher_conv"].add(o.dtype))

    def loss_fn(logits: torch.Tensor, y: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        t = source(idx)
        seen["student"].add(logits.dtype)
        seen["teacher"].add(t.dtype)
        return kd(logits, t, y)

    torch.manual_seed(1)
    student = create_model("dcase21net", 4, frontend=_tiny().frontend_cfg, width=0.25,
                           dropout=0.0)
    with source.attach(student):
        summary = fit(student, _tones(), None,
                      TrainConfig(epochs=3, batch_size=8, lr=3e-3, progress=False,
                                  precision="bf16"), tmp_path / "student", loss_fn=loss_fn)
    assert seen == {"teacher_conv": {torch.bfloat16}, "student": {torch.float32},
                    "teacher": {torch.float32}}
    assert source.batches == 3 * 4  # one teacher forward per training batch, none in eval
    history = [h["train_loss"] for h in summary["history"]]
    assert all(np.isfinite(history)) and history[-1] < 0.9 * history[0], history
