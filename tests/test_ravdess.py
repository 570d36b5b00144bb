"""RAVDESS as users hold it: the official names in any audio format, Actor_* folders at the root or
one folder down, a precise `datasets check` on a broken tree, the actor folds (fixed by actor
number, gender-balanced validation), and the real recordings of ../shared/datasets/ravdess."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from fixtures_audio import write_audio

from audioprune.cli import main
from audioprune.data.datasets.ravdess import fold_actors
from audioprune.data.registry import load_dataset

RAVDESS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "ravdess"


def _tree(root: Path, actors=range(1, 25), ext: str = "wav") -> Path:
    """Nine clips per actor in the official names: each emotion spoken once, happy sung once."""
    for a in actors:
        for name in [f"03-01-{e:02d}-{'01' if e == 1 else '02'}-01-01-{a:02d}" for e in range(1, 9)
                     ] + [f"03-02-03-02-01-01-{a:02d}"]:
            write_audio(root / f"Actor_{a:02d}" / f"{name}.{ext}")
    return root


@pytest.fixture(scope="module")
def ravdess_root() -> Path:
    if not (RAVDESS / "Actor_01").is_dir():
        pytest.skip(f"real RAVDESS recordings not found at {RAVDESS}")
    return RAVDESS


@pytest.mark.parametrize("ext", ["wav", "flac", "ogg"])
def test_any_audio_format_the_reader_takes(tmp_path: Path, ext: str) -> None:
    _tree(tmp_path / "Audio_Speech_Actors_01-24", ext=ext)
    ix = load_dataset("ravdess", tmp_path, split="fold:2")
    keys = {c.key: c.targets for part in ix.splits.values() for c in part}
    assert len(keys) == 24 * 9 and not ix.problems
    assert keys[f"Audio_Speech_Actors_01-24/Actor_07/03-01-05-02-01-01-07.{ext}"] == (4,)  # angry


def test_folds_are_fixed_by_actor_number_and_validation_is_one_man_one_woman() -> None:
    full = list(range(1, 25))
    for k in range(1, 7):
        test, val = fold_actors(k, full)
        assert test == [4 * k - 3, 4 * k - 2, 4 * k - 1, 4 * k]
        assert sorted(a % 2 for a in val) == [0, 1] and not set(val) & set(test)
    # an actor missing shifts nothing else: fold 2 tests 5, 7, 8 and the other folds are unchanged
    without_6 = [a for a in full if a != 6]
    assert fold_actors(2, without_6) == ([5, 7, 8], [9, 10])
    assert fold_actors(1, without_6) == ([1, 2, 3, 4], [5, 8])  # the woman comes from 5-8: 8
    for k in range(3, 7):
        assert fold_actors(k, without_6) == fold_actors(k, full)


def test_check_names_every_problem_of_a_broken_tree(tmp_path: Path,
                                                    capsys: pytest.CaptureFixture) -> None:
    root = _tree(tmp_path, actors=[a for a in range(1, 25) if a != 14])
    write_audio(root / "Actor_03" / "03-01-05-1-01-02-03.wav")       # a field lost a digit
    write_audio(root / "Actor_03" / "03-01-09-01-01-02-03.wav")      # emotion 09 does not exist
    write_audio(root / "Actor_03" / "03-01-01-02-01-02-03.wav")      # neutral has no strong take
    write_audio(root / "Actor_05" / "03-01-04-01-01-02-06.wav")      # actor 06's clip in Actor_05
    (root / "Actor_05" / "notes.txt").write_text("not audio: ignored")
    argv = ["datasets", "check", "ravdess", "--data-root", str(root), "--no-progress"]
    assert main(argv) == 1
    out = capsys.readouterr().out
    assert "problems (5):" in out
    assert "  misnamed (3):" in out and "  wrong folder (1):" in out and "  missing actor (1):" in out
    assert "Actor_03/03-01-05-1-01-02-03.wav: not an official name MM-VV-EE-II-SS-RR-AA" in out
    assert "Actor_03/03-01-09-01-01-02-03.wav: emotion field 09 is not one of the release's" in out
    assert "Actor_03/03-01-01-02-01-02-03.wav: neutral (emotion 01) has no strong intensity" in out
    assert ("Actor_05/03-01-04-01-01-02-06.wav: its actor field is 06 but it is in Actor_05; "
            "move it to Actor_06 or fix its name") in out
    assert "no clips of Actor_14 (the release has actors 01-24); fold 4 then tests fewer actors" in out
    assert "unlisted" not in out  # the loader's own findings are not reported twice
    assert "  fold 4: test Actor_13, Actor_15, Actor_16; validation Actor_17, Actor_18" in out
    report = json.loads(_run_json(argv, capsys))
    assert sorted(p["kind"] for p in report["problems"]) == [
        "misnamed", "misnamed", "misnamed", "missing actor", "wrong folder"]
    assert report["files"] == 23 * 9 and report["folds"][3]["test"] == ["Actor_13", "Actor_15",
                                                                         "Actor_16"]
    # training leaves out exactly the bad files, and says so
    ix = load_dataset("ravdess", root, split="fold:4")
    keys = {c.key for part in ix.splits.values() for c in part}
    assert len(keys) == 23 * 9 and "Actor_05/03-01-04-01-01-02-06.wav" not in keys
    assert len(ix.problems) == 5


def _run_json(argv: list[str], capsys: pytest.CaptureFixture) -> str:
    assert main([*argv, "--json"]) == 1
    return capsys.readouterr().out


def test_the_shared_copy_is_clean_and_its_folds_are_printed(ravdess_root: Path,
                                                           capsys: pytest.CaptureFixture) -> None:
    assert main(["datasets", "check", "ravdess", "--data-root", str(ravdess_root),
                 "--split", "fold:6", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "files: 1440 listed, 1440 decode, 0 undecodable" in out
    assert "channels: mono x 1435, stereo x 5" in out and "sample rates: 48000 Hz x 1440" in out
    assert "splits: train 1080, val 120, test 240" in out and "  neutral    48/8/16" not in out
    assert "  fold 6: test Actor_21, Actor_22, Actor_23, Actor_24; validation Actor_01, Actor_02" in out
    # the release holds one take twice (bit-identical FLAC): noted, not a problem (one split)
    assert "identical audio within the train split" in out and "problems: none" in out


def test_stereo_clips_are_mixed_down_for_mono_and_kept_for_the_stereo_stack(
        ravdess_root: Path, tmp_path: Path) -> None:
    from audioprune.data.cache import AudioCache

    root = tmp_path / "ravdess"
    for name in ("03-01-08-01-02-02-01", "03-01-02-01-01-02-01", "03-01-01-01-01-01-01"):
        dest = root / "Actor_01" / f"{name}.flac"
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.symlink_to(ravdess_root / "Actor_01" / f"{name}.flac")
    for a in range(2, 25):  # the other actors: one real mono clip each
        src = sorted((ravdess_root / f"Actor_{a:02d}").glob("*.flac"))[0]
        (root / f"Actor_{a:02d}").mkdir()
        (root / f"Actor_{a:02d}" / src.name).symlink_to(src)
    ix = load_dataset("ravdess", root, split="fold:1")
    stereo = next(c for c in ix.splits["test"] if c.key.endswith("03-01-08-01-02-02-01.flac"))
    mono_cache = AudioCache(ix, 16000, tmp_path / "cache", root, channels=1)
    both_cache = AudioCache(ix, 16000, tmp_path / "cache", root, channels=2)
    for cache in (mono_cache, both_cache):
        cache.build([stereo], progress=False)
    mono, both = mono_cache.get(stereo), both_cache.get(stereo)
    assert mono.ndim == 1 and both.shape == (2, mono.shape[0])
    np.testing.assert_allclose(mono, both.mean(axis=0), atol=1e-4)
    # the release's stereo takes hold two equal channels: both are kept, each the file's own
    import soundfile as sf
    import soxr

    left = soxr.resample(sf.read(str(stereo.path), dtype="float32")[0][:, 0], 48000, 16000)
    np.testing.assert_allclose(both[0], left[:both.shape[1]], atol=1e-4)
    np.testing.assert_allclose(both[1], left[:both.shape[1]], atol=1e-4)
    shutil.rmtree(tmp_path / "cache")
