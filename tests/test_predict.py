"""`audioprune predict`: windows over long files, mean/max pooling, softmax vs sigmoid, bad files
named and skipped, on a model trained on real FSDD recordings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from audioprune.cli import main
from audioprune.runs.data import DataSpec
from audioprune.runs.predict import predict_wave, window_starts
from audioprune.runs.train import train_run
from audioprune.train.fit import TrainConfig


def test_window_starts() -> None:
    assert window_starts(5, 8, 4) == [0]
    assert window_starts(8, 8, 4) == [0]
    assert window_starts(20, 8, 4) == [0, 4, 8, 12]
    assert window_starts(21, 8, 4) == [0, 4, 8, 12, 13]  # the last window ends at the end


class _Loudness(torch.nn.Module):
    """Logits from each window's mean: class 1 when loud, class 0 when quiet."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = x.abs().mean(dim=-1, keepdim=True)
        return torch.cat([-10 * m, 10 * m - 1], dim=-1)


def test_pooling_over_windows() -> None:
    wave = np.zeros(40, dtype=np.float32)
    wave[30:] = 1.0  # loud only in the last quarter
    model = _Loudness()
    mean, n = predict_wave(model, wave, "multi-label", window=10, pool="mean")
    top, _ = predict_wave(model, wave, "multi-label", window=10, pool="max")
    assert n == 7  # starts 0, 5, ..., 30
    probs = torch.sigmoid(model(torch.from_numpy(np.stack([wave[s:s + 10] for s in
                                                            window_starts(40, 10, 5)]))))
    np.testing.assert_allclose(mean, probs.mean(0).numpy(), rtol=1e-6)
    np.testing.assert_allclose(top, probs.max(0).values.numpy(), rtol=1e-6)
    assert top[1] > 0.99 > mean[1]
    single, _ = predict_wave(model, wave[:10], "single-label", window=10)
    assert single.sum() == pytest.approx(1.0)  # softmax: one label per clip


@pytest.fixture(scope="module")
def digit_run(fsdd_small: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("predict") / "run"
    spec = DataSpec("fsdd", str(fsdd_small))
    train_run("dcase21net", {"width": 0.5}, spec,
              TrainConfig(epochs=3, batch_size=16, lr=3e-3, progress=False), out)
    return out


def test_predict_command(digit_run: Path, fsdd_small: Path, tmp_path: Path,
                         capsys: pytest.CaptureFixture) -> None:
    rec = fsdd_small / "recordings"
    long = tmp_path / "long.wav"  # 12 s of recordings one after another, at 16 kHz (resampled)
    parts = [sf.read(p)[0] for p in sorted(rec.iterdir())[:30]]
    wave = np.concatenate(parts)[: 12 * 8000]
    sf.write(long, np.interp(np.arange(0, len(wave), 0.5), np.arange(len(wave)), wave), 16000)
    broken = tmp_path / "broken.wav"
    broken.write_bytes(b"RIFF not really")
    files = [str(rec / "3_george_0.flac"), str(long), str(broken)]
    assert main(["predict", str(digit_run), *files, "--top-k", "3", "--json"]) == 0
    captured = capsys.readouterr()
    doc = json.loads(captured.out)
    assert [p["file"] for p in doc["predictions"]] == files[:2]
    first, second = doc["predictions"]
    assert first["windows"] == 1 and len(first["top"]) == 3
    scores = [t["score"] for t in first["top"]]
    assert scores == sorted(scores, reverse=True) and sum(scores) <= 1.0 + 1e-6
    assert second["seconds"] == pytest.approx(12.0) and second["windows"] == 23  # 1 s, hop 0.5 s
    assert doc["skipped"][0]["file"] == str(broken) and "broken.wav" in captured.err
    assert main(["predict", str(digit_run), str(broken)]) == 2  # nothing could be read
    assert main(["predict", str(digit_run), files[0], "--top-k", "0"]) == 2
