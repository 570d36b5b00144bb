"""Knowledge distillation: the loss formulas against hand computation, the teacher-logit cache
(hit, invalidation, a damaged file rebuilt), the cached/online decision, `audioprune distill`
and `audioprune prune --distill-from` end to end."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from audioprune.cli import main
from audioprune.distill import DistillConfig, KDLoss, make_loss
from audioprune.distill.losses import resolve_recipe
from audioprune.distill.teacher import OnlineTeacher, choose_mode
from audioprune.errors import UserError
from audioprune.fileio import read_tensors, write_json, write_tensors
from audioprune.measure.counting import count_params
from audioprune.runs.data import DataSpec, prepare_data
from audioprune.runs.distill import distill_run
from audioprune.runs.kd import Distiller
from audioprune.runs.run_dir import load_model
from audioprune.runs.train import train_run
from audioprune.train.fit import TrainConfig

# 8 kHz synthetic clips: fast, and exactly the 1 s clip length (so the teacher is cached)
FRONTEND = {"n_mels": 40, "sample_rate": 8000, "fmax": 4000.0}
SYNTH = dict(options={"split": "sizes:120,40,60"}, frontend=FRONTEND)
TEACHER_TRAIN = TrainConfig(epochs=2, batch_size=16, lr=3e-3, seed=0, progress=False)


def _np_softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _np_bce(s: np.ndarray, target: np.ndarray) -> float:
    p = 1 / (1 + np.exp(-s))
    return float(np.mean(-(target * np.log(p) + (1 - target) * np.log(1 - p))))


@pytest.fixture()
def logits() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    s = torch.randn(5, 4, generator=g, dtype=torch.float64) * 2
    t = torch.randn(5, 4, generator=g, dtype=torch.float64) * 3
    return s, t, torch.tensor([0, 3, 1, 1, 2])


# ------------------------------------------------------------------------------ losses


def test_hinton_matches_hand_computation(logits) -> None:
    s, t, y = logits
    T, a = 3.0, 0.7
    sn, tn = s.numpy(), t.numpy()
    ce = float(np.mean(-np.log(_np_softmax(sn)[np.arange(5), y.numpy()])))
    p_t, p_s = _np_softmax(tn / T), _np_softmax(sn / T)
    kl = float(np.mean(np.sum(p_t * (np.log(p_t) - np.log(p_s)), axis=1)))
    loss = make_loss("hinton", temperature=T, alpha=a)
    assert float(loss(s, t, y)) == pytest.approx((1 - a) * ce + a * T * T * kl, rel=1e-10)
    assert float(loss.parts(s, t, y)["kl"]) == pytest.approx(T * T * kl, rel=1e-10)  # the T^2

    # T^2 makes the soft term's gradient T * (softmax(s/T) - softmax(t/T)) / batch: its scale
    # does not vanish as T grows (Hinton et al.)
    s_req = s.clone().requires_grad_(True)
    KDLoss([(1.0, "kl")], T)(s_req, t, y).backward()
    expected = T * (p_s - p_t) / 5
    np.testing.assert_allclose(s_req.grad.numpy(), expected, rtol=1e-10)

    # alpha = 0 is plain cross-entropy, alpha = 1 with teacher == student is zero
    assert torch.equal(make_loss("hinton", alpha=0.0)(s, t, y), F.cross_entropy(s, y))
    assert float(make_loss("hinton", alpha=1.0)(s, s, y)) == pytest.approx(0.0, abs=1e-12)
    # soft (mixup) targets: CE against class probabilities
    soft = F.one_hot(y, 4).double() * 0.6 + F.one_hot(y.roll(1), 4).double() * 0.4
    want = float(np.mean(-np.sum(soft.numpy() * np.log(_np_softmax(sn)), axis=1)))
    assert float(make_loss("hinton", alpha=0.0)(s, t, soft)) == pytest.approx(want, rel=1e-10)


def test_multi_label_losses_match_hand_computation(logits) -> None:
    s, t, _ = logits
    y = (torch.arange(20).reshape(5, 4) % 3 == 0).double()  # multi-hot
    sn, tn, yn = s.numpy(), t.numpy(), y.numpy()
    T, a = 2.0, 0.8
    soft = 1 / (1 + np.exp(-tn / T))
    want = (1 - a) * _np_bce(sn, yn) + a * _np_bce(sn, soft)
    assert float(make_loss("bce-soft", temperature=T, alpha=a)(s, t, y)) == pytest.approx(want, rel=1e-10)

    p_t, p_s = _np_softmax(tn / 2), _np_softmax(sn / 2)
    kl = float(np.mean(np.sum(p_t * (np.log(p_t) - np.log(p_s)), axis=1)))
    qcnn = make_loss("qcnn")  # the authors' T = 2, equal weights
    assert qcnn.temperature == 2.0 and qcnn.terms == [(0.5, "bce"), (0.5, "kl")]
    assert float(qcnn(s, t, y)) == pytest.approx(0.5 * _np_bce(sn, yn) + 0.5 * 4 * kl, rel=1e-10)
    # single-label targets are one-hot for the BCE label term
    labels = torch.tensor([0, 3, 1, 1, 2])
    assert float(make_loss("qcnn", alpha=0.0)(s, t, labels)) == pytest.approx(
        _np_bce(sn, np.eye(4)[labels.numpy()]), rel=1e-10)


def test_recipes_defaults_and_errors() -> None:
    assert resolve_recipe(None, "single-label").name == "hinton"
    assert resolve_recipe(None, "multi-label").name == "bce-soft"
    hinton, soft = make_loss("hinton"), make_loss("bce-soft")
    assert (hinton.temperature, hinton.terms) == (4.0, [(pytest.approx(0.1), "ce"), (0.9, "kl")])
    assert (soft.temperature, soft.terms[1]) == (1.0, (0.9, "soft-bce"))
    with pytest.raises(UserError, match="single-label"):
        resolve_recipe("hinton", "multi-label")
    with pytest.raises(UserError, match=r"in \[0, 1\]"):
        make_loss("hinton", alpha=1.5)
    with pytest.raises(UserError, match="> 0"):
        make_loss("qcnn", temperature=0)
    with pytest.raises(UserError, match="unknown distillation loss"):
        make_loss("fitnet")


# ------------------------------------------------------------------------------ teacher logits


@pytest.fixture(scope="module")
def teacher(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("kd") / "teacher"
    train_run("dcase21net", {"width": 0.25}, DataSpec("synthetic", **SYNTH), TEACHER_TRAIN, out)
    return out


def _distiller(teacher: Path, spec: DataSpec, **kw) -> Distiller:
    bundle = prepare_data(spec, progress=False)
    return Distiller(DistillConfig(str(teacher), **kw), spec, bundle,
                     TrainConfig(batch_size=16, progress=False))


def test_teacher_cache_hit_invalidation_and_damage(teacher: Path, tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    spec = DataSpec("synthetic", **SYNTH, cache_dir=str(tmp_path / "cache"))
    first = _distiller(teacher, spec)
    assert first.mode == "cached" and not first.source.hit
    path = first.source.path
    assert path.is_file() and path.parent == tmp_path / "cache" / "teacher-logits"
    # the cached row i is the teacher's output for training clip i
    model, _ = load_model(teacher)
    bundle = prepare_data(spec, progress=False)
    with torch.no_grad():
        for i in (0, 57, 119):
            want = model.eval()(bundle.train[i][0].unsqueeze(0))[0]
            torch.testing.assert_close(first.source(torch.tensor([i]))[0], want)

    second = _distiller(teacher, spec)
    assert second.source.hit and second.source.path == path
    assert torch.equal(second.source.logits, first.source.logits)

    # other teacher weights: another key, recomputed
    changed = tmp_path / "teacher2"
    shutil.copytree(teacher, changed)
    weights = read_tensors(changed / "model.safetensors")
    weights["conv1.weight"] = weights["conv1.weight"] * 1.01
    write_tensors(changed / "model.safetensors", weights)
    other = _distiller(changed, spec)
    assert not other.source.hit and other.source.path != path
    assert not torch.equal(other.source.logits, first.source.logits)

    # the teacher's front-end settings changed: recomputed
    info = json.loads((changed / "model.json").read_text())
    info["frontend"]["mean"] += 1.0
    write_json(changed / "model.json", info)
    assert not _distiller(changed, spec).source.hit
    # the data's front end (clip length: another waveform) changed: recomputed
    shorter = DataSpec("synthetic", options=SYNTH["options"], cache_dir=str(tmp_path / "cache"),
                       frontend={**FRONTEND, "clip_seconds": 0.5})
    assert not _distiller(teacher, shorter, teacher_mode="cached").source.hit

    # a truncated file is rebuilt, not used
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with caplog.at_level(logging.WARNING, logger="audioprune"):
        rebuilt = _distiller(teacher, spec)
    assert not rebuilt.source.hit and "unreadable" in caplog.text
    assert torch.equal(rebuilt.source.logits, first.source.logits)
    # a file whose numbers were altered in place (same size) fails its checksum
    raw = bytearray(path.read_bytes())
    raw[-8:] = b"\x00" * 8
    path.write_bytes(bytes(raw))
    assert not _distiller(teacher, spec).source.hit
    assert _distiller(teacher, spec).source.hit


def test_mode_choice(teacher: Path, fsdd_small: Path) -> None:
    synth = prepare_data(DataSpec("synthetic", **SYNTH), progress=False).train
    assert choose_mode("auto", synth, 0.0)[0] == "cached"  # 1 s clips, 1 s clip length
    mode, why = choose_mode("auto", synth, 0.4)
    assert mode == "online" and "mixup" in why
    with pytest.raises(UserError, match="mixup"):
        choose_mode("cached", synth, 0.4)
    assert choose_mode("online", synth, 0.0)[0] == "online"

    # FSDD clips are shorter (and a few longer) than 1 s: placed at a random offset every epoch
    fsdd = prepare_data(DataSpec("fsdd", str(fsdd_small)), progress=False).train
    mode, why = choose_mode("auto", fsdd, 0.0)
    assert mode == "online" and "random offset" in why
    mode, why = choose_mode("cached", fsdd, 0.0)
    assert mode == "cached" and "although" in why


def test_online_teacher_sees_the_students_batch(teacher: Path) -> None:
    model, _ = load_model(teacher)
    online = OnlineTeacher(model)
    student, _ = load_model(teacher)
    wave = torch.randn(3, 8000)
    with online.attach(student):
        student.train()
        student(wave)
        got = online(torch.arange(3))
        student.eval()
        student(wave)  # evaluation passes do not run the teacher
    with torch.no_grad():
        torch.testing.assert_close(got, model.eval()(wave))
    assert online.batches == 1 and not student._forward_pre_hooks
    with pytest.raises(RuntimeError, match="no teacher logits"):
        online(torch.arange(3))


# ------------------------------------------------------------------------------ runs


@pytest.mark.slow
def test_distill_cli_end_to_end(teacher: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "student"
    assert main(["distill", "--teacher", str(teacher), "--model", "dcase21net", "--width", "0.125",
                 "--epochs", "1", "--batch-size", "16", "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "teacher dcase21net accuracy" in printed and "teacher logits cached" in printed
    m = json.loads((out / "metrics.json").read_text())
    trained = json.loads((teacher / "metrics.json").read_text())
    assert set(trained) <= set(m)  # every key of a trained run's metrics.json
    assert m["dataset"] == "synthetic" and m["split"] == "sizes:120,40,60"  # the teacher's data
    d = m["distill"]
    assert (d["loss"], d["temperature"], d["alpha"], d["teacher_mode"]) == ("hinton", 4.0, 0.9, "cached")
    assert d["teacher"]["run"] == str(teacher.resolve())
    assert d["teacher"]["accuracy"] == trained["accuracy"] and d["teacher"]["params"] == trained["params"]
    assert d["teacher_seconds"] >= 0 and d["total_seconds"] >= m["train_seconds"]
    model, info = load_model(out)
    assert info["teacher"] == str(teacher.resolve()) and m["params"] == count_params(model)
    assert m["params"] < trained["params"] and len(m["history"]) == 1
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["command"] == "distill" and cfg["distill"]["loss"] is None

    # resuming the finished run trains nothing more, finds the cache, and reproduces the numbers
    assert main(["distill", "--resume", str(out), "--no-progress"]) == 0
    again = json.loads((out / "metrics.json").read_text())
    assert again["accuracy"] == m["accuracy"] and again["distill"]["cache"]["hit"]

    assert main(["distill", "--teacher", str(tmp_path / "nope"), "--model", "dcase21net",
                 "--out", str(tmp_path / "x")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["distill", "--resume", str(teacher)]) == 2
    assert "not a distill run" in capsys.readouterr().err


@pytest.mark.slow
def test_alpha_zero_reproduces_training_from_labels(teacher: Path, tmp_path: Path) -> None:
    """The student of seed s starts from the same weights and sees the same batches as
    `train` with seed s: with alpha = 0 the distilled run IS the label-trained run."""
    student = distill_run(teacher, "dcase21net", {"width": 0.25}, None, TEACHER_TRAIN,
                          tmp_path / "a0", alpha=0.0)
    trained = json.loads((teacher / "metrics.json").read_text())
    assert [h["train_loss"] for h in student["history"]] == [h["train_loss"] for h in trained["history"]]
    assert student["accuracy"] == trained["accuracy"]
    a, b = read_tensors(tmp_path / "a0" / "model.safetensors"), read_tensors(teacher / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_online_quaternion_student_with_mixup(teacher: Path, tmp_path: Path) -> None:
    cfg = TrainConfig(epochs=1, batch_size=16, lr=3e-3, mixup=0.4, progress=False)
    m = distill_run(teacher, "qdcase21net", {"width": 0.25}, None, cfg, tmp_path / "q")
    d = m["distill"]
    assert d["teacher_mode"] == "online" and "mixup" in d["teacher_mode_reason"]
    assert d["online_batches"] == 8 and "cache" not in d  # 120 clips / 16 per batch
    model, info = load_model(tmp_path / "q")
    assert info["arch"] == "qdcase21net" and info["frontend"]["channels"] == "deltas"
    assert "mode online" in (tmp_path / "q" / "log.txt").read_text()


@pytest.mark.slow
def test_prune_distill_from_parent(teacher: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "pruned"
    assert main(["prune", str(teacher), "--criterion", "l1", "--ratio", "0.5", "--finetune-epochs",
                 "1", "--distill-from", "--kd-loss", "qcnn", "--out", str(out), "--no-progress"]) == 0
    assert "loss qcnn (T=2, alpha=0.5)" in capsys.readouterr().out
    m = json.loads((out / "metrics.json").read_text())
    d = m["distill"]
    assert d["teacher"]["run"] == str(teacher.resolve()) == m["parent"]["run"]
    assert (d["loss"], d["temperature"], d["teacher_mode"]) == ("qcnn", 2.0, "cached")
    assert m["params"] < m["parent"]["params"] and len(m["history"]) == 1
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["distill"]["teacher"] == str(teacher.resolve())
    # a resumed prune run keeps distilling from the same teacher
    (out / "metrics.json").unlink()
    assert main(["prune", "--resume", str(out), "--no-progress"]) == 0
    assert json.loads((out / "metrics.json").read_text())["distill"]["teacher"] == d["teacher"]

    assert main(["prune", str(teacher), "--criterion", "l1", "--ratio", "0.5", "--alpha", "0.5",
                 "--out", str(tmp_path / "y"), "--no-progress"]) == 2
    assert "--distill-from" in capsys.readouterr().err
