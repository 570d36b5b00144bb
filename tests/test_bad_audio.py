"""Bad audio: each broken file is refused with its name and reason; unusual but valid audio
(multichannel, 8-96 kHz, very long) loads; training skips bad files with one warning each and a
summary, --strict makes them an error, and nothing non-finite reaches the model."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
from bad_audio import BAD_FILES, SR, noise, write_bad

from audioprune.audio.frontend import FrontEndConfig, LogMel
from audioprune.audio.io import load_audio
from audioprune.cli import main
from audioprune.data.cache import AudioCache, AudioSource
from audioprune.data.registry import load_dataset
from audioprune.errors import AudioDecodeError, UserError
from audioprune.runs.data import DataSpec, prepare_data

FE = {"clip_seconds": 0.5}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_each_bad_file_is_refused_naming_file_and_reason(case: str, tmp_path: Path) -> None:
    suffix = ".flac" if "flac" in case else ".wav"
    path = write_bad(tmp_path / f"clip{suffix}", case)
    with pytest.raises(AudioDecodeError, match=BAD_FILES[case][1]) as err:
        load_audio(path, 16000)
    assert str(path) in str(err.value)
    assert isinstance(err.value, UserError)  # the CLI prints it, no traceback


def test_multichannel_is_mixed_down_and_rates_8_to_96k_resample(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    six = (0.1 * rng.standard_normal((4000, 6))).astype(np.float32)
    sf.write(tmp_path / "six.wav", six, SR, subtype="FLOAT")
    np.testing.assert_allclose(load_audio(tmp_path / "six.wav"), six.mean(axis=1), atol=1e-6)
    assert load_audio(tmp_path / "six.wav", mono=False).shape == (6, 4000)
    for sr in (8000, 11025, 16000, 22050, 32000, 44100, 48000, 96000):
        t = np.arange(sr // 2) / sr  # 0.5 s of a 1 kHz tone
        sf.write(tmp_path / f"{sr}.flac", 0.5 * np.sin(2 * np.pi * 1000 * t), sr)
        wave = load_audio(tmp_path / f"{sr}.flac", 16000)
        assert abs(len(wave) - len(t) * 16000 / sr) < 1, sr
        peak_hz = np.argmax(np.abs(np.fft.rfft(wave))) * 16000 / len(wave)
        assert abs(peak_hz - 1000) <= 2, (sr, peak_hz)


def test_very_long_file_loads_whole_and_crops(tmp_path: Path) -> None:
    path = tmp_path / "long.flac"
    sf.write(path, np.tile(np.linspace(-0.5, 0.5, SR, dtype=np.float32), 600), SR)  # 10 minutes
    wave = load_audio(path)
    assert wave.shape == (600 * SR,) and np.isfinite(wave).all()


def test_features_stay_finite_for_silence_and_huge_samples(tmp_path: Path) -> None:
    fe = FrontEndConfig(sample_rate=SR, n_fft=256, hop_length=80, n_mels=40, fmin=0, fmax=4000)
    silent = LogMel(fe)(torch.zeros(1, SR))  # a silent crop of a valid clip: log(0 + log_offset)
    assert torch.isfinite(silent).all() and silent.max() == pytest.approx(10 * np.log10(fe.log_offset))
    with pytest.raises(ValueError, match="log_offset"):
        fe.replace(log_offset=0.0)  # log(0) would put -inf into training
    # a float file with huge but finite samples: the no-cache source clips to [-1, 1] like the cache
    x = (0.1 * np.random.default_rng(0).standard_normal(SR)).astype(np.float32)
    x[10] = 1e30
    (tmp_path / "recordings").mkdir()
    sf.write(tmp_path / "recordings" / "0_anna_0.wav", x, SR, subtype="FLOAT")
    index = load_dataset("fsdd", tmp_path, val_fraction=0)
    clip = index.splits["test"][0]
    wave = AudioSource(index, SR).get(clip)
    assert wave.max() == 1.0 and torch.isfinite(LogMel(fe)(torch.from_numpy(wave)[None])).all()


def _tree(root: Path, bad: dict[str, str]) -> Path:
    """An FSDD-layout tree: 10 digits x indices 0-6 of noise, plus the `bad` files by name."""
    rec = root / "recordings"
    rec.mkdir(parents=True)
    for d in range(10):
        for i in range(7):
            noise(rec / f"{d}_anna_{i}.wav")
    for name, case in bad.items():
        write_bad(rec / name, case)
    return root


BAD_TREE = {"1_anna_20.wav": "truncated wav", "2_anna_21.wav": "NaN sample",
            "3_anna_22.wav": "all silent", "4_anna_23.wav": "empty data chunk",
            "5_anna_24.wav": "broken link", "6_anna_25.wav": "random bytes",
            "7_anna_2.wav": "zero bytes"}  # index 2: a test clip


@pytest.mark.parametrize("cache", [True, False])
def test_training_data_skips_bad_files_with_one_warning_each(tmp_path: Path, cache: bool,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    root = _tree(tmp_path / "data", BAD_TREE)
    spec = DataSpec("fsdd", str(root), frontend=FE, cache=cache, cache_dir=str(tmp_path / "cache"))
    for attempt in range(2 if cache else 1):  # the second run finds the failures in the cache
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="audioprune"):
            bundle = prepare_data(spec, progress=False)
        used = {c.key for part in bundle.index.splits.values() for c in part}
        assert not used & {f"recordings/{n}" for n in BAD_TREE}, attempt
        assert len(used) == 70 - 1
        skips = [r.getMessage() for r in caplog.records if r.getMessage().startswith("skipping ")]
        assert len(skips) == len(BAD_TREE), skips
        for name, case in BAD_TREE.items():
            assert any(name in s and _matches(BAD_FILES[case][1], s) for s in skips), (name, skips)
        assert f"{len(BAD_TREE)} of {70 - 1 + len(BAD_TREE)} files could not be decoded" in caplog.text
        # never NaN into training: every training example is finite and in [-1, 1]
        waves = torch.stack([bundle.train[i][0] for i in range(len(bundle.train))])
        assert torch.isfinite(waves).all() and waves.abs().max() <= 1.0
    strict = DataSpec(**{**spec.__dict__, "strict": True})
    with pytest.raises(AudioDecodeError, match=r"anna_\d+\.wav"):
        prepare_data(strict, progress=False)


def _matches(pattern: str, text: str) -> bool:
    import re

    return re.search(pattern, text) is not None


def test_cache_retries_a_fixed_file_and_drops_a_newly_broken_one(tmp_path: Path) -> None:
    root = _tree(tmp_path / "data", {"1_anna_20.wav": "truncated wav"})
    index = load_dataset("fsdd", root, val_fraction=0)
    clips = [c for part in index.splits.values() for c in part]
    cache = AudioCache(index, SR, tmp_path / "cache", root)
    cache.build(clips, progress=False)
    assert set(cache.skipped(clips)) == {"recordings/1_anna_20.wav"}
    assert AudioCache(index, SR, tmp_path / "cache", root).build(clips, progress=False) == 0
    noise(root / "recordings" / "1_anna_20.wav")  # re-downloaded
    write_bad(root / "recordings" / "0_anna_5.wav", "NaN sample")  # broken after being cached
    again = AudioCache(index, SR, tmp_path / "cache", root)
    assert {c.key for c in again.missing(clips)} == {"recordings/1_anna_20.wav", "recordings/0_anna_5.wav"}
    assert again.build(clips, progress=False) == 2
    assert set(again.skipped(clips)) == {"recordings/0_anna_5.wav"}
    assert again.has(next(c for c in clips if c.key == "recordings/1_anna_20.wav"))
    assert not again.has(next(c for c in clips if c.key == "recordings/0_anna_5.wav"))  # no stale audio
    with pytest.raises(AudioDecodeError, match="0_anna_5"):
        AudioCache(index, SR, tmp_path / "cache", root).build(clips, strict=True, progress=False)


def test_cli_train_on_a_tree_with_bad_files(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = _tree(tmp_path / "data", {n: c for n, c in BAD_TREE.items() if n != "7_anna_2.wav"})
    common = ["train", "--model", "dcase21net", "--width", "0.25", "--dataset", "fsdd",
              "--data-root", str(root), "--epochs", "1", "--batch-size", "16", "--frontend",
              "clip_seconds=0.5", "--no-progress", "--cache-dir", str(tmp_path / "cache")]
    assert main([*common, "--out", str(tmp_path / "run")]) == 0
    assert "test accuracy" in capsys.readouterr().out
    log = (tmp_path / "run" / "log.txt").read_text()
    assert "6 of 76 files could not be decoded" in log and "1_anna_20.wav: truncated" in log
    assert main([*common, "--strict", "--out", str(tmp_path / "strict")]) == 2
    err = capsys.readouterr().err
    assert "6 undecodable file(s) and --strict" in err and "Traceback" not in err
    # the failed attempt finished no epoch: the same --out can simply be used again
    assert main([*common, "--out", str(tmp_path / "strict")]) == 0
