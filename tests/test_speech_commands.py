"""Google Speech Commands in its official layout: word folders of <speaker>_nohash_<n>.wav, the
release's validation and testing lists, _background_noise_ ignored; speaker folds that never put
a speaker in two sets; misnamed files and list entries missing on disk reported by name."""

from __future__ import annotations

from pathlib import Path

import pytest
from fixtures_audio import assert_clips_decode, write_audio

from audioprune.cli import main
from audioprune.data.datasets.speech_commands import speaker_fold
from audioprune.data.registry import load_dataset
from audioprune.errors import UserError

WORDS = ("yes", "no", "up", "down")
SPEAKERS = [f"{0x0a7c2a80 + i:08x}" for i in range(15)]
VAL, TEST = SPEAKERS[:2], SPEAKERS[2:5]  # the lists name whole speakers, as the release does


def _tree(root: Path, ext: str = "wav") -> Path:
    """Two takes of every word by every speaker, a noise folder, and the two lists (which name
    .wav files, as the release's do, whatever format the tree holds)."""
    for word in WORDS:
        for spk in SPEAKERS:
            for n in range(2):
                write_audio(root / word / f"{spk}_nohash_{n}.{ext}", 16000, 0.05)
    write_audio(root / "_background_noise_" / "white_noise.wav", 16000, 0.2)
    (root / "LICENSE").write_text("CC BY 4.0\n")
    for name, speakers in (("validation_list.txt", VAL), ("testing_list.txt", TEST)):
        (root / name).write_text("".join(f"{w}/{s}_nohash_{n}.wav\n" for w in WORDS
                                         for s in speakers for n in range(2)))
    return root


def test_official_split_is_the_release_lists(tmp_path: Path) -> None:
    ix = load_dataset("speech_commands", _tree(tmp_path))
    assert ix.class_names == ["down", "no", "up", "yes"] and ix.split_name == "official"
    assert [len(ix.splits[k]) for k in ("train", "val", "test")] == [4 * 10 * 2, 4 * 2 * 2, 4 * 3 * 2]
    assert {c.group for c in ix.splits["test"]} == set(TEST)
    assert {c.group for c in ix.splits["val"]} == set(VAL)
    assert not {c.group for c in ix.splits["train"]} & set(VAL + TEST)
    keys = {c.key: c.targets for part in ix.splits.values() for c in part}
    assert keys[f"up/{SPEAKERS[7]}_nohash_1.wav"] == (2,)
    assert not any(k.startswith("_background_noise_") for k in keys) and not ix.problems
    assert_clips_decode(ix)


def test_a_converted_copy_follows_the_lists_by_name(tmp_path: Path) -> None:
    ix = load_dataset("speech_commands", _tree(tmp_path, ext="flac"))
    assert {c.key for c in ix.splits["test"]} == {f"{w}/{s}_nohash_{n}.flac" for w in WORDS
                                                  for s in TEST for n in range(2)}


def test_speaker_folds_never_share_a_speaker(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    tested: list[str] = []
    for k in range(1, 6):
        ix = load_dataset("speech_commands", root, split=f"fold:{k}")
        assert ix.fold == (k, 5) and ix.split_name == f"fold:{k}/5"
        groups = {part: {c.group for c in clips} for part, clips in ix.splits.items()}
        assert not groups["train"] & groups["val"] and not groups["train"] & groups["test"]
        assert not groups["val"] & groups["test"]
        assert groups["test"] == {s for s in SPEAKERS if speaker_fold(s, 5) == k}
        assert groups["val"] == {s for s in SPEAKERS if speaker_fold(s, 5) == k % 5 + 1}
        tested += sorted(groups["test"])
    assert sorted(tested) == SPEAKERS  # every speaker is tested exactly once
    # a fold is fixed by the speaker alone: one speaker fewer moves nobody else
    for word in WORDS:
        for n in range(2):
            (root / word / f"{SPEAKERS[0]}_nohash_{n}.wav").unlink()
    (root / "validation_list.txt").write_text("")
    k = speaker_fold(SPEAKERS[1], 5)
    fewer = load_dataset("speech_commands", root, split=f"fold:{k}")
    assert {c.group for c in fewer.splits["test"]} == \
        {s for s in SPEAKERS[1:] if speaker_fold(s, 5) == k}


def test_bad_names_and_missing_list_entries_are_named(tmp_path: Path,
                                                      capsys: pytest.CaptureFixture) -> None:
    root = _tree(tmp_path)
    write_audio(root / "yes" / "recording 3.wav", 16000, 0.05)
    with open(root / "testing_list.txt", "a") as fh:
        fh.write(f"no/{SPEAKERS[3]}_nohash_7.wav\n")
    with pytest.raises(UserError) as err:
        load_dataset("speech_commands", root)
    assert str(err.value).startswith(f"1 of 25 clips listed in {root / 'testing_list.txt'} are "
                                     f"missing on disk (first: line 25: no/{SPEAKERS[3]}_nohash_7.wav)")
    ix = load_dataset("speech_commands", root, skip_missing=True)
    assert ix.missing == [f"no/{SPEAKERS[3]}_nohash_7.wav"]
    assert [(p.kind, p.key) for p in ix.problems] == [("misnamed", "yes/recording 3.wav")]
    assert main(["datasets", "check", "speech_commands", "--data-root", str(root),
                 "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert ("yes/recording 3.wav: not an official name <speaker>_nohash_<n> (e.g. "
            "0a7c2a8d_nohash_0.wav); rename it or remove it") in out
    assert f"no/{SPEAKERS[3]}_nohash_7.wav is listed but not on disk" in out
    with pytest.raises(UserError, match="speech_commands split must be 'official'"):
        load_dataset("speech_commands", root, split="random")
    with pytest.raises(UserError, match="testing_list.txt not found"):
        (root / "testing_list.txt").unlink()
        load_dataset("speech_commands", root)


def test_listed_as_a_dataset_with_its_defaults(capsys: pytest.CaptureFixture) -> None:
    assert main(["datasets"]) == 0
    out = capsys.readouterr().out
    assert "speech_commands Google Speech Commands keyword spotting" in out
    assert "front end: 16000 Hz, 64 mels, hop 160, clips 1.0 s" in out
