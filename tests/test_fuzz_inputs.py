"""Fuzzing (hypothesis, derandomised so every run tries the same inputs): the audio loader on
random bytes behind audio-looking headers, and every metadata parser on random tables. Nothing
may escape but our documented outcomes: a result, AudioDecodeError, or UserError."""

from __future__ import annotations

import os
import struct
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audioprune.audio.io import load_audio
from audioprune.data.registry import load_dataset
from audioprune.data.tables import read_table
from audioprune.errors import AudioDecodeError, UserError

FUZZ = settings(max_examples=60, derandomize=True, database=None, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])

# ------------------------------------------------------------------------------------ audio


def _wav_header(fmt: int, channels: int, rate: int, bits: int, data_size: int, riff_size: int) -> bytes:
    block = max(channels * bits // 8, 1)
    return struct.pack("<4sI4s4sIHHIIHH4sI", b"RIFF", riff_size, b"WAVE", b"fmt ", 16, fmt,
                       channels, rate, rate * block & 0xFFFFFFFF, block & 0xFFFF, bits, b"data",
                       data_size)


wav_headers = st.builds(
    _wav_header,
    fmt=st.sampled_from([0, 1, 2, 3, 6, 7, 0x11, 0xFFFE, 12345]),
    channels=st.integers(0, 300),
    rate=st.one_of(st.sampled_from([0, 1, 8000, 44100, 96000]), st.integers(0, 2**32 - 1)),
    bits=st.sampled_from([0, 1, 8, 12, 16, 24, 32, 64, 65535]),
    data_size=st.one_of(st.integers(0, 64), st.integers(0, 2**32 - 1)),
    riff_size=st.integers(0, 2**32 - 1),
)
magic = st.sampled_from([b"fLaC", b"OggS\x00\x02", b"FORM\x00\x00\x10\x00AIFF", b".snd",
                         b"ID3\x03\x00", b"\xff\xfb\x90", b"RIFF\x00\x00\x00\x00WAVE", b""])
headers = st.one_of(wav_headers, magic)


def _real_wav() -> bytes:
    import io

    buf = io.BytesIO()
    sf.write(buf, (0.1 * np.sin(np.arange(800))).astype(np.float32), 8000, format="WAV",
             subtype="PCM_16")
    return buf.getvalue()


REAL_WAV = _real_wav()


def _check_load(blob: bytes, suffix: str) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / f"fuzz{suffix}"
        path.write_bytes(blob)
        try:
            wave = load_audio(path, sample_rate=16000)
        except AudioDecodeError as exc:
            assert str(path) in str(exc)
            return
        assert wave.ndim == 1 and wave.dtype == np.float32 and wave.size > 0
        assert np.isfinite(wave).all()


@FUZZ
@given(header=headers, body=st.binary(max_size=600), suffix=st.sampled_from([".wav", ".flac", ".ogg", ".mp3"]))
def test_fuzz_audio_headers_with_random_bodies(header: bytes, body: bytes, suffix: str) -> None:
    _check_load(header + body, suffix)


@FUZZ
@given(cut=st.integers(0, len(REAL_WAV)), flips=st.lists(st.tuples(st.integers(0, len(REAL_WAV) - 1),
                                                                    st.integers(0, 255)), max_size=8))
def test_fuzz_truncated_and_bit_flipped_wav(cut: int, flips: list[tuple[int, int]]) -> None:
    blob = bytearray(REAL_WAV)
    for pos, value in flips:
        blob[pos] = value
    _check_load(bytes(blob[:cut]), ".wav")


# --------------------------------------------------------------------------------- metadata

OUTSIDE = "@OUTSIDE@"  # replaced by the absolute path of <tmp>/outside.wav when written

# cell values that reach the interesting branches: numbers in and out of range, booleans, names
# of files that exist (a.wav, b.wav), traversal, quotes, separators, unicode, empty
cells = st.one_of(
    st.sampled_from(["", "0", "1", "2", "5", "11", "-1", "1.5", "nan", "True", "False", "true",
                     "a.wav", "b.wav", "fold1/a.wav", "audio/a.wav", "audio/b.wav", "../a.wav",
                     "../../outside.wav", "../../../outside.wav", OUTSIDE, "/etc/passwd", "dog",
                     "cat", "/m/0a", "/m/0b", "\"", "a,b", "\t", "é"]),
    st.text(max_size=8),
)


def _table(header: list[str], delimiter: str) -> st.SearchStrategy[bytes]:
    """A header (sometimes damaged), up to 8 rows of random cells, sometimes bytes that are not
    UTF-8 (a table saved in another encoding, or binary junk)."""
    head = st.one_of(st.just(header), st.lists(st.sampled_from(header + ["x", ""]), max_size=len(header) + 1))
    rows = st.lists(st.lists(cells, min_size=0, max_size=len(header) + 2), max_size=8)
    text = st.builds(lambda h, r: ("\n".join(delimiter.join(c) for c in [h, *r]) + "\n").encode(),
                     head, rows)
    junk = st.tuples(text, st.binary(min_size=1, max_size=6)).map(lambda t: t[0] + t[1])
    return st.one_of(text, text, junk)




class _Tree:
    """<tmp>/data (the data root, holding `files`) beside <tmp>/outside.wav, a real file that a
    table may try to reach with ../ or an absolute path; the root is what `with` yields."""

    def __init__(self, files: dict[str, str | bytes]) -> None:
        self.tmp = tempfile.TemporaryDirectory()
        self.root = Path(self.tmp.name) / "data"
        self.root.mkdir()
        outside = Path(self.tmp.name) / "outside.wav"
        outside.write_bytes(REAL_WAV)
        for rel, content in files.items():
            path = self.root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            data = content if isinstance(content, bytes) else content.encode()
            path.write_bytes(data.replace(OUTSIDE.encode(), str(outside).encode()))

    def __enter__(self) -> str:
        return str(self.root)

    def __exit__(self, *exc: object) -> None:
        self.tmp.cleanup()


def _tree(files: dict[str, str | bytes]) -> _Tree:
    return _Tree(files)


def _load(name: str, files: dict[str, str | bytes], **options: object) -> None:
    with _tree(files) as root:
        try:
            index = load_dataset(name, Path(root), **options)
        except UserError:
            return
        for clips in index.splits.values():  # what a loader returns must be usable and inside
            for c in clips:
                assert c.path is None or Path(os.path.normpath(c.path)).is_relative_to(root)
                assert all(0 <= t < index.num_classes for t in c.targets)


AUDIO = {"audio/a.wav": REAL_WAV, "audio/b.wav": REAL_WAV, "audio/fold1/a.wav": REAL_WAV}


@FUZZ
@given(text=st.one_of(st.text(max_size=300).map(str.encode), st.binary(max_size=300),
                     _table(["filename", "fold"], ",")))
def test_fuzz_read_table(text: bytes) -> None:
    with _tree({"t.csv": text}) as root:
        try:
            rows = read_table(Path(root) / "t.csv", ("filename", "fold"), "esc50", "layout")
        except UserError:
            return
        assert all(isinstance(r, dict) and isinstance(n, int) for n, r in rows)


@FUZZ
@given(table=_table(["filename", "fold", "target", "category", "esc10", "src_file", "take"], ","),
       fold=st.sampled_from([None, 1, 2]))
def test_fuzz_esc50_csv(table: bytes, fold: int | None) -> None:
    _load("esc50", {**AUDIO, "meta/esc50.csv": table}, test_fold=fold)


@FUZZ
@given(table=_table(["slice_file_name", "fsID", "start", "end", "salience", "fold", "classID",
                     "class"], ","))
def test_fuzz_urbansound8k_csv(table: bytes) -> None:
    _load("urbansound8k", {**AUDIO, "metadata/UrbanSound8K.csv": table})


@FUZZ
@given(meta=_table(["filename", "scene_label", "identifier", "source_label"], "\t"),
       train=_table(["filename", "scene_label"], "\t"), evaluate=_table(["filename", "scene_label"], "\t"))
def test_fuzz_tau2020_csvs(meta: bytes, train: bytes, evaluate: bytes) -> None:
    _load("tau2020", {**AUDIO, "meta.csv": meta, "evaluation_setup/fold1_train.csv": train,
                      "evaluation_setup/fold1_evaluate.csv": evaluate})


segment_lists = st.lists(st.lists(cells, max_size=5).map(", ".join), max_size=6).map(
    lambda rows: ("# comment\n# YTID, start_seconds, end_seconds, positive_labels\n"
                  + "\n".join(rows) + "\n").encode())


@FUZZ
@given(classes=_table(["index", "mid", "display_name"], ","),
       segments=st.one_of(segment_lists, st.tuples(segment_lists, st.binary(min_size=1, max_size=4))
                          .map(lambda t: t[0] + t[1])))
def test_fuzz_audioset_csvs(classes: bytes, segments: bytes) -> None:
    files = {"class_labels_indices.csv": classes, "balanced_train_segments.csv": segments,
             "eval_segments.csv": segments, "a.wav": REAL_WAV, "b.wav": REAL_WAV}
    _load("audioset", files)


@FUZZ
@given(lists=st.lists(st.one_of(st.text(max_size=40).map(str.encode), st.binary(max_size=40)),
                      min_size=3, max_size=3))
def test_fuzz_gtzan_split_lists(lists: list[bytes]) -> None:
    files: dict[str, str | bytes] = {f"genres/{g}/{g}.0000{i}.wav": REAL_WAV
                                     for g in ("blues", "jazz") for i in range(3)}
    for name, text in zip(("train_filtered.txt", "valid_filtered.txt", "test_filtered.txt"), lists):
        files[f"lists/{name}"] = text
    with _tree(files) as root:
        try:
            ds = load_dataset("gtzan", Path(root), split_file=Path(root) / "lists")
        except UserError:
            return
        # whatever the lists said: only tracks that exist, each in at most one split
        keys = [c.key for part in ds.splits.values() for c in part]
        assert len(keys) == len(set(keys))
        assert set(keys) <= {k for k in files if k.endswith(".wav")}
        assert all(c.targets[0] == ds.class_names.index(c.key.split("/")[1])
                   for part in ds.splits.values() for c in part)
