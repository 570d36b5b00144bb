"""Each dataset loader on a tiny fixture tree written in the dataset's official on-disk layout."""

from __future__ import annotations

from pathlib import Path

import pytest
from fixtures_audio import assert_clips_decode, keys, write_audio, write_table

from audioprune.data.registry import get_dataset_info, list_datasets, load_dataset
from audioprune.errors import UserError

# --------------------------------------------------------------------------------------- ESC-50

ESC_HEADER = ["filename", "fold", "target", "category", "esc10", "src_file", "take"]
# (filename, fold, target, category, esc10)
ESC_ROWS = [
    ("1-100-A-0.wav", 1, 0, "dog", True), ("2-101-A-0.wav", 2, 0, "dog", True),
    ("3-102-A-0.wav", 3, 0, "dog", True), ("1-200-A-1.wav", 1, 1, "rooster", True),
    ("2-201-A-1.wav", 2, 1, "rooster", True), ("4-202-A-1.wav", 4, 1, "rooster", True),
    ("1-300-A-2.wav", 1, 2, "pig", False), ("5-301-A-2.wav", 5, 2, "pig", False),
    ("3-302-A-2.wav", 3, 2, "pig", False), ("2-400-A-10.wav", 2, 10, "rain", True),
    ("5-401-A-10.wav", 5, 10, "rain", True), ("4-402-A-10.wav", 4, 10, "rain", True),
]


@pytest.fixture
def esc50_root(tmp_path: Path) -> Path:
    for fname, *_ in ESC_ROWS:
        write_audio(tmp_path / "audio" / fname)
    write_table(tmp_path / "meta" / "esc50.csv", ESC_HEADER,
                [(f, fold, t, cat, esc10, f.split("-")[1], "A") for f, fold, t, cat, esc10 in ESC_ROWS])
    return tmp_path


def test_esc50_folds_and_targets(esc50_root: Path) -> None:
    ds = load_dataset("esc50", esc50_root)
    assert ds.task == "single-label" and ds.split_name == "fold1"
    assert ds.class_names == ["dog", "rooster", "pig", "rain"]  # ordered by target
    assert keys(ds.splits["test"]) == {f"audio/{f}" for f, fold, *_ in ESC_ROWS if fold == 1}
    assert keys(ds.splits["train"]) | keys(ds.splits["val"]) == {
        f"audio/{f}" for f, fold, *_ in ESC_ROWS if fold != 1}
    by_key = {c.key: c for part in ds.splits.values() for c in part}
    assert by_key["audio/5-401-A-10.wav"].targets == (3,)
    assert by_key["audio/5-401-A-10.wav"].group == "5"
    assert by_key["audio/3-302-A-2.wav"].targets == (2,)
    assert_clips_decode(ds)

    ds = load_dataset("esc50", esc50_root, test_fold=5, val_fold=2)
    assert keys(ds.splits["test"]) == {"audio/5-301-A-2.wav", "audio/5-401-A-10.wav"}
    assert {c.group for c in ds.splits["val"]} == {"2"}
    assert {c.group for c in ds.splits["train"]} == {"1", "3", "4"}


def test_esc50_esc10_subset_remaps_targets(esc50_root: Path) -> None:
    ds = load_dataset("esc50", esc50_root, subset="esc10")
    assert ds.name == "esc10"
    assert ds.class_names == ["dog", "rooster", "rain"]
    everything = {c.key: c.targets for part in ds.splits.values() for c in part}
    assert "audio/1-300-A-2.wav" not in everything  # pig is not in ESC-10
    assert everything["audio/2-400-A-10.wav"] == (2,)  # target 10 -> 2
    assert everything["audio/1-200-A-1.wav"] == (1,)


def test_esc50_errors(esc50_root: Path) -> None:
    with pytest.raises(UserError, match="test_fold 6"):
        load_dataset("esc50", esc50_root, test_fold=6)
    with pytest.raises(UserError, match="split_file"):
        load_dataset("esc50", esc50_root, split_file=esc50_root)
    with pytest.raises(UserError, match="subset"):
        load_dataset("esc50", esc50_root, subset="esc20")
    with pytest.raises(UserError, match="test_fold"):
        load_dataset("esc50", esc50_root, split="fold2")
    (esc50_root / "audio" / "4-202-A-1.wav").unlink()
    with pytest.raises(UserError, match=r"1 of 12 clips .*esc50\.csv.*4-202-A-1\.wav"):
        load_dataset("esc50", esc50_root)
    write_table(esc50_root / "meta" / "esc50.csv", ESC_HEADER[:-1], [])
    with pytest.raises(UserError, match=r"esc50\.csv.*take"):
        load_dataset("esc50", esc50_root)


def test_esc50_bad_rows_are_named(esc50_root: Path) -> None:
    rows = [(f, fold, t, cat, e, "x", "A") for f, fold, t, cat, e in ESC_ROWS]
    rows[3] = (rows[3][0], 7, *rows[3][2:])  # fold 7 on line 5
    write_table(esc50_root / "meta" / "esc50.csv", ESC_HEADER, rows)
    with pytest.raises(UserError, match=r"esc50\.csv.*line\(s\) 5"):
        load_dataset("esc50", esc50_root)


# --------------------------------------------------------------------------------- UrbanSound8K

US8K_HEADER = ["slice_file_name", "fsID", "start", "end", "salience", "fold", "classID", "class"]
# (file, fold, classID, class)
US8K_ROWS = [
    ("100-0-0-0.wav", 1, 0, "air_conditioner"), ("101-0-0-1.wav", 2, 0, "air_conditioner"),
    ("102-0-0-2.wav", 3, 0, "air_conditioner"), ("200-1-0-0.wav", 1, 1, "car_horn"),
    ("201-1-0-0.wav", 2, 1, "car_horn"), ("202-1-0-0.wav", 10, 1, "car_horn"),
    ("300-3-1-0.wav", 2, 3, "dog_bark"), ("301-3-0-0.wav", 3, 3, "dog_bark"),
    ("302-3-0-5.wav", 10, 3, "dog_bark"),
]


@pytest.fixture
def us8k_root(tmp_path: Path) -> Path:
    for fname, fold, *_ in US8K_ROWS:
        write_audio(tmp_path / "audio" / f"fold{fold}" / fname, sample_rate=11025)
    write_table(tmp_path / "metadata" / "UrbanSound8K.csv", US8K_HEADER,
                [(f, f.split("-")[0], 0.0, 0.05, 1, fold, cid, name) for f, fold, cid, name in US8K_ROWS])
    return tmp_path


def test_urbansound8k_folds(us8k_root: Path) -> None:
    ds = load_dataset("urbansound8k", us8k_root, test_fold=10, val_fold=3)
    assert ds.split_name == "fold10-val3"
    assert ds.class_names == ["air_conditioner", "car_horn", "dog_bark"]
    assert keys(ds.splits["test"]) == {"audio/fold10/202-1-0-0.wav", "audio/fold10/302-3-0-5.wav"}
    assert keys(ds.splits["val"]) == {"audio/fold3/102-0-0-2.wav", "audio/fold3/301-3-0-0.wav"}
    assert {c.group for c in ds.splits["train"]} == {"1", "2"}
    assert {c.targets for c in ds.splits["test"]} == {(1,), (2,)}  # classID 3 -> index 2
    assert_clips_decode(ds)
    assert keys(load_dataset("urbansound8k", us8k_root).splits["test"]) == {
        "audio/fold1/100-0-0-0.wav", "audio/fold1/200-1-0-0.wav"}


def test_urbansound8k_errors(us8k_root: Path) -> None:
    with pytest.raises(UserError, match="test_fold 11"):
        load_dataset("urbansound8k", us8k_root, test_fold=11)
    with pytest.raises(UserError, match="subset"):
        load_dataset("urbansound8k", us8k_root, subset="esc10")
    (us8k_root / "audio" / "fold2" / "300-3-1-0.wav").unlink()
    with pytest.raises(UserError, match=r"1 of 9 clips.*UrbanSound8K\.csv.*fold2/300-3-1-0\.wav"):
        load_dataset("urbansound8k", us8k_root)
    write_table(us8k_root / "metadata" / "UrbanSound8K.csv",
                [h for h in US8K_HEADER if h not in ("fold", "classID")], [])
    with pytest.raises(UserError, match=r"UrbanSound8K\.csv.*fold, classID"):
        load_dataset("urbansound8k", us8k_root)


# ---------------------------------------------------------------------------------------- GTZAN

GENRES = ["blues", "jazz", "rock"]


def _gtzan_tree(base: Path) -> None:
    for genre in GENRES:
        for n in range(5):
            name = f"{genre}.{n:05d}"
            if n == 0:  # the original tarball's format
                write_audio(base / genre / f"{name}.au", fmt="AU")
            else:
                write_audio(base / genre / f"{name}.wav")


def test_gtzan_random_split(tmp_path: Path) -> None:
    _gtzan_tree(tmp_path / "genres")
    ds = load_dataset("gtzan", tmp_path, seed=3)
    assert ds.class_names == GENRES and ds.split_name == "random"
    for part, per_genre in (("test", 1), ("val", 1), ("train", 3)):  # 20% of 5; 10% of 4 (>= 1)
        assert sorted(c.targets[0] for c in ds.splits[part]) == sorted(list(range(3)) * per_genre)
    assert "genres/blues/blues.00000.au" in {c.key for p in ds.splits.values() for c in p}
    assert_clips_decode(ds)
    again = load_dataset("gtzan", tmp_path, seed=3)
    assert keys(again.splits["test"]) == keys(ds.splits["test"])
    with pytest.raises(UserError, match="test_fold"):
        load_dataset("gtzan", tmp_path, test_fold=1)
    with pytest.raises(UserError, match="split_file"):
        load_dataset("gtzan", tmp_path, split="filtered")


def test_gtzan_kaggle_folder(tmp_path: Path) -> None:
    _gtzan_tree(tmp_path / "Data" / "genres_original")
    ds = load_dataset("gtzan", tmp_path)
    assert ds.class_names == GENRES
    assert all(c.key.startswith("Data/genres_original/") for p in ds.splits.values() for c in p)


def test_gtzan_filtered_split_files(tmp_path: Path) -> None:
    _gtzan_tree(tmp_path / "genres")
    lists = tmp_path / "splits"
    write_table(lists / "train_filtered.txt", None,
                [["blues/blues.00000.wav"], ["blues/blues.00001.wav"], ["jazz/jazz.00001.wav"],
                 ["rock/rock.00001.wav"]])
    write_table(lists / "valid_filtered.txt", None, [["jazz/jazz.00002.wav"], ["rock/rock.00002.wav"]])
    write_table(lists / "test_filtered.txt", None,
                [["blues/blues.00003.wav"], ["jazz/jazz.00003.wav"], ["rock/rock.00004.wav"]])
    for given in (lists, lists / "test_filtered.txt"):
        ds = load_dataset("gtzan", tmp_path, split_file=given)
        assert ds.split_name == "filtered"
        assert keys(ds.splits["train"]) == {"genres/blues/blues.00000.au", "genres/blues/blues.00001.wav",
                                            "genres/jazz/jazz.00001.wav", "genres/rock/rock.00001.wav"}
        assert keys(ds.splits["val"]) == {"genres/jazz/jazz.00002.wav", "genres/rock/rock.00002.wav"}
        assert {c.targets for c in ds.splits["test"]} == {(0,), (1,), (2,)}
        assert any("6 of 15 tracks" in n for n in ds.notes)
    assert_clips_decode(ds)
    with pytest.raises(UserError, match="split_file"):
        load_dataset("gtzan", tmp_path, split_file=lists / "other.txt")
    write_table(lists / "test_filtered.txt", None, [["rock/rock.00099.wav"]])
    with pytest.raises(UserError, match=r"test_filtered\.txt.*rock/rock\.00099\.wav"):
        load_dataset("gtzan", tmp_path, split_file=lists)


# -------------------------------------------------------------------------------------- RAVDESS

def _ravdess_tree(base: Path, actors=(1, 2, 19, 20, 21, 24)) -> None:
    for a in actors:
        write_audio(base / f"Actor_{a:02d}" / f"03-01-05-01-02-01-{a:02d}.wav")  # angry
        write_audio(base / f"Actor_{a:02d}" / f"03-01-01-01-01-02-{a:02d}.wav")  # neutral
        write_audio(base / f"Actor_{a:02d}" / f"03-02-03-02-01-01-{a:02d}.wav")  # happy (song)


def test_ravdess_actor_split(tmp_path: Path) -> None:
    _ravdess_tree(tmp_path)
    ds = load_dataset("ravdess", tmp_path)
    assert ds.class_names == ["neutral", "calm", "happy", "sad", "angry", "fearful", "disgust",
                              "surprised"]
    assert ds.split_name == "actors:21,24"
    assert {c.group for c in ds.splits["test"]} == {"Actor_21", "Actor_24"}
    assert {c.group for c in ds.splits["val"]} == {"Actor_19", "Actor_20"}
    assert {c.group for c in ds.splits["train"]} == {"Actor_01", "Actor_02"}
    targets = {c.key: c.targets for p in ds.splits.values() for c in p}
    assert targets["Actor_21/03-01-05-01-02-01-21.wav"] == (4,)  # 05 = angry
    assert targets["Actor_01/03-01-01-01-01-02-01.wav"] == (0,)
    assert targets["Actor_02/03-02-03-02-01-01-02.wav"] == (2,)
    assert_clips_decode(ds)

    ds = load_dataset("ravdess", tmp_path, split="actors:1,2")
    assert {c.group for c in ds.splits["test"]} == {"Actor_01", "Actor_02"}
    assert {c.group for c in ds.splits["val"]} == {"Actor_21", "Actor_24"}
    assert {c.group for c in ds.splits["train"]} == {"Actor_19", "Actor_20"}


def test_ravdess_nested_and_errors(tmp_path: Path) -> None:
    _ravdess_tree(tmp_path / "Audio_Speech_Actors_01-24")
    ds = load_dataset("ravdess", tmp_path)
    assert all(c.key.startswith("Audio_Speech_Actors_01-24/Actor_") for p in ds.splits.values() for c in p)
    with pytest.raises(UserError, match="actor.* 7 not found"):
        load_dataset("ravdess", tmp_path, split="actors:7")
    with pytest.raises(UserError, match="actors:21,22"):
        load_dataset("ravdess", tmp_path, split="speaker:1")
    with pytest.raises(UserError, match="val_fold"):
        load_dataset("ravdess", tmp_path, val_fold=2)
    with pytest.raises(UserError, match="at least 3 actors"):
        load_dataset("ravdess", tmp_path, split="actors:1,2,19,20")
    write_audio(tmp_path / "Audio_Speech_Actors_01-24" / "Actor_01" / "03-01-09-01-01-01-01.wav")
    ds = load_dataset("ravdess", tmp_path)  # left out and named (tests/test_ravdess.py: the check)
    assert [(p.kind, p.key) for p in ds.problems if p.kind == "misnamed"] == [
        ("misnamed", "Audio_Speech_Actors_01-24/Actor_01/03-01-09-01-01-01-01.wav")]


# ------------------------------------------------------------------------------------- AudioSet

CLASSES = [(0, "/m/09x0r", "Speech"), (1, "/m/05zppz", "Male speech, man speaking"),
           (2, "/m/04rlf", "Music"), (3, "/m/0jbk", "Animal"), (4, "/m/0bt9lr", "Dog")]
BALANCED = [("--PJHxphWEs", 30, "/m/09x0r,/m/05zppz"), ("--ZhevVpy1s", 50, "/m/04rlf"),
            ("--aE2O5G5WE", 0, "/m/0jbk,/m/0bt9lr"), ("-0RWZT-miFs", 420, "/m/04rlf,/m/09x0r"),
            ("YyT_4_5abcD", 10, "/m/0jbk"), ("-0SdAVK79lg", 30, "/m/0bt9lr,/m/0jbk"),
            ("-1nilez17Dg", 30, "/m/04rlf")]  # the last one is not downloaded
EVAL = [("--4gqARaEJE", 0, "/m/0jbk,/m/0bt9lr"), ("--BfvyPmVMo", 20, "/m/04rlf")]
UNBALANCED = [("---1_cCGK4M", 0, "/m/09x0r"), ("---2_BBVHAA", 30, "/m/04rlf")]


def _segments(path: Path, rows) -> None:
    lines = ["# Segments csv created Sun Mar  5 10:54:31 2017",
             "# num_ytids=3, num_segs=3, num_unique_labels=5, num_positive_labels=7",
             "# YTID, start_seconds, end_seconds, positive_labels"]
    lines += [f'{y}, {s:.3f}, {s + 10:.3f}, "{labels}"' for y, s, labels in rows]
    path.write_text("\n".join(lines) + "\n")


def write_audioset_tree(tmp_path: Path) -> Path:
    """A tiny AudioSet tree in the official layout (CSV lists, clips named the usual ways)."""
    write_table(tmp_path / "class_labels_indices.csv", ["index", "mid", "display_name"], CLASSES)
    _segments(tmp_path / "balanced_train_segments.csv", BALANCED)
    _segments(tmp_path / "eval_segments.csv", EVAL)
    _segments(tmp_path / "unbalanced_train_segments.csv", UNBALANCED)
    bal = tmp_path / "balanced_train_segments"
    write_audio(bal / "Y--PJHxphWEs.wav")  # PANNs naming
    write_audio(tmp_path / "audio" / "--ZhevVpy1s_50.000.wav")  # <YTID>_<start>
    write_audio(tmp_path / "audio" / "--aE2O5G5WE_0_10000.flac")  # <YTID>_<start_ms>_<end_ms>
    write_audio(bal / "-0RWZT-miFs.wav")  # <YTID>
    write_audio(bal / "YYyT_4_5abcD.wav")  # Y + a YTID that itself starts with Y
    write_audio(bal / "-0SdAVK79lg_30.wav")
    write_audio(tmp_path / "eval_segments" / "--4gqARaEJE.wav")
    write_audio(tmp_path / "eval_segments" / "Y--BfvyPmVMo.wav")
    write_audio(tmp_path / "audios" / "unbalanced_train_segments" / "unbalanced_train_segments_part00"
                / "Y---1_cCGK4M.wav")
    return tmp_path



@pytest.fixture
def audioset_root(tmp_path: Path) -> Path:
    return write_audioset_tree(tmp_path)


def test_audioset_balanced(audioset_root: Path) -> None:
    ds = load_dataset("audioset", audioset_root)
    assert ds.task == "multi-label" and ds.split_name == "balanced"
    assert ds.class_names == [name for _, _, name in CLASSES]
    assert ds.num_classes == 5  # from the CSV, not hard-coded
    train = ds.splits["train"] + ds.splits["val"]
    assert len(train) == 6 and len(ds.splits["val"]) >= 1
    by_key = {c.key: c.targets for c in train}
    assert by_key["balanced_train_segments/Y--PJHxphWEs.wav"] == (0, 1)
    assert by_key["audio/--aE2O5G5WE_0_10000.flac"] == (3, 4)
    assert by_key["balanced_train_segments/YYyT_4_5abcD.wav"] == (3,)
    assert by_key["audio/--ZhevVpy1s_50.000.wav"] == (2,)
    assert keys(ds.splits["test"]) == {"eval_segments/--4gqARaEJE.wav", "eval_segments/Y--BfvyPmVMo.wav"}
    assert ds.notes == ["balanced_train: 1 of 7 clips listed but not found"]
    assert_clips_decode(ds)


def test_audioset_full(audioset_root: Path) -> None:
    ds = load_dataset("audioset", audioset_root, split="full", val_fraction=0.2, seed=1)
    train = ds.splits["train"] + ds.splits["val"]
    assert len(train) == 7
    assert {c.group for c in train} == {"balanced_train", "unbalanced_train"}
    assert "unbalanced_train: 1 of 2 clips listed but not found" in ds.notes


def test_audioset_errors(audioset_root: Path) -> None:
    with pytest.raises(UserError, match="'balanced' or 'full'"):
        load_dataset("audioset", audioset_root, split="unbalanced")
    with pytest.raises(UserError, match="test_fold"):
        load_dataset("audioset", audioset_root, test_fold=1)
    for f in (audioset_root / "eval_segments").iterdir():
        f.unlink()
    with pytest.raises(UserError, match=r"test split.*eval_segments\.csv"):
        load_dataset("audioset", audioset_root)
    _segments(audioset_root / "balanced_train_segments.csv", BALANCED + [("--xyzxyzxyz", 0, "/m/nope")])
    with pytest.raises(UserError, match=r"balanced_train_segments\.csv.*line 11 \(/m/nope\)"):
        load_dataset("audioset", audioset_root)
    write_table(audioset_root / "class_labels_indices.csv", ["index", "label"], [])
    with pytest.raises(UserError, match=r"class_labels_indices\.csv.*mid, display_name"):
        load_dataset("audioset", audioset_root)


# ----------------------------------------------------------------------------------- TAU 2020

TAU_META = ["filename", "scene_label", "identifier", "source_label"]
# scene, location identifiers in train, in evaluate
TAU_TRAIN = {"airport": ["barcelona-0", "barcelona-1", "helsinki-2"], "bus": ["lyon-0", "lyon-1"],
             "park": ["paris-3", "paris-4"]}
TAU_EVAL = {"airport": ["lisbon-5"], "bus": ["london-6"], "park": ["vienna-7"]}
TAU_DEVICES = ["a", "b", "s1"]


def _tau_rows(spec: dict[str, list[str]]) -> list[tuple[str, str, str, str]]:
    rows = []
    for scene, idents in spec.items():
        for ident in idents:
            for seg, device in enumerate(TAU_DEVICES):
                rows.append((f"audio/{scene}-{ident}-{seg}-{device}.wav", scene, ident, device))
    return rows


@pytest.fixture
def tau_root(tmp_path: Path) -> Path:
    train, evaluate = _tau_rows(TAU_TRAIN), _tau_rows(TAU_EVAL)
    for fname, *_ in train + evaluate:
        write_audio(tmp_path / fname)
    write_table(tmp_path / "meta.csv", TAU_META, train + evaluate, delimiter="\t")
    setup = tmp_path / "evaluation_setup"
    write_table(setup / "fold1_train.csv", ["filename", "scene_label"], [r[:2] for r in train], "\t")
    write_table(setup / "fold1_evaluate.csv", ["filename", "scene_label"], [r[:2] for r in evaluate], "\t")
    write_table(setup / "fold1_test.csv", ["filename"], [r[:1] for r in evaluate], "\t")
    return tmp_path


def test_tau2020_official_setup(tau_root: Path) -> None:
    ds = load_dataset("tau2020", tau_root, seed=0, val_fraction=0.3)
    info = get_dataset_info("tau2020")
    assert (info.frontend.sample_rate, info.frontend.n_mels, info.frontend.hop_length) == (44100, 40, 882)
    assert ds.class_names == ["airport", "bus", "park"] and ds.split_name == "fold1"
    assert keys(ds.splits["test"]) == {r[0] for r in _tau_rows(TAU_EVAL)}
    assert {c.group for c in ds.splits["test"]} == set(TAU_DEVICES)
    by_key = {c.key: c for p in ds.splits.values() for c in p}
    assert by_key["audio/bus-lyon-1-2-s1.wav"].group == "s1"
    assert by_key["audio/park-vienna-7-0-a.wav"].targets == (2,)

    def locations(clips):
        return {c.key.split("-", 1)[1].rsplit("-", 2)[0] for c in clips}

    assert not locations(ds.splits["train"]) & locations(ds.splits["val"])  # no shared location
    assert {c.targets[0] for c in ds.splits["val"]} == {0, 1, 2}  # one location of each scene
    assert len(locations(ds.splits["val"])) == 3
    assert_clips_decode(ds)


def test_tau2020_errors(tau_root: Path) -> None:
    with pytest.raises(UserError, match="'fold1'"):
        load_dataset("tau2020", tau_root, split="fold2")
    with pytest.raises(UserError, match="subset"):
        load_dataset("tau2020", tau_root, subset="a")
    train_csv = tau_root / "evaluation_setup" / "fold1_train.csv"
    text = train_csv.read_text()
    train_csv.write_text(text.replace("audio/bus-lyon-0-1-b.wav\tbus", "audio/bus-lyon-0-1-b.wav\ttram"))
    with pytest.raises(UserError, match=r"fold1_train\.csv.*bus-lyon-0-1-b\.wav 'tram'"):
        load_dataset("tau2020", tau_root)
    train_csv.write_text(text)
    (tau_root / "audio" / "park-paris-4-2-s1.wav").unlink()
    with pytest.raises(UserError, match=r"1 of 21 clips.*fold1_train\.csv.*park-paris-4-2-s1"):
        load_dataset("tau2020", tau_root)
    meta = tau_root / "meta.csv"
    meta.write_text(meta.read_text().replace("\t", ","))  # comma-separated: wrong header
    with pytest.raises(UserError, match=r"meta\.csv.*scene_label"):
        load_dataset("tau2020", tau_root)


# --------------------------------------------------------------------------------------- folder

def test_folder_random_split(tmp_path: Path) -> None:
    for n in range(5):
        write_audio(tmp_path / "dog" / f"d{n}.wav")
        write_audio(tmp_path / "cat" / f"c{n}.flac")
    write_audio(tmp_path / "cat" / "more" / "c9.ogg")
    write_audio(tmp_path / "bird" / "b0.aiff", fmt="AIFF")
    write_audio(tmp_path / "bird" / "b1.au", fmt="AU")
    (tmp_path / "dog" / "notes.txt").write_text("not audio")
    (tmp_path / ".cache").mkdir()
    write_audio(tmp_path / ".cache" / "x.wav")
    (tmp_path / "empty").mkdir()
    ds = load_dataset("folder", tmp_path, seed=7)
    assert ds.class_names == ["bird", "cat", "dog"] and ds.split_name == "random"
    assert sum(len(p) for p in ds.splits.values()) == 13
    for cls in range(3):
        assert sum(c.targets == (cls,) for c in ds.splits["test"]) == 1
    assert "cat/more/c9.ogg" in {c.key for p in ds.splits.values() for c in p}
    assert_clips_decode(ds)
    with pytest.raises(UserError, match="val_fold"):
        load_dataset("folder", tmp_path, val_fold=1)
    with pytest.raises(UserError, match="'random', 'folders' or fold:K"):
        load_dataset("folder", tmp_path, split="fold1")


def test_folder_split_folders_and_empty(tmp_path: Path) -> None:
    for part, n in (("train", 4), ("test", 2)):
        for i in range(n):
            write_audio(tmp_path / part / "yes" / f"{part}{i}.wav")
            write_audio(tmp_path / part / "no" / f"{part}{i}.wav")
    ds = load_dataset("folder", tmp_path)
    assert ds.split_name == "folders" and ds.class_names == ["no", "yes"]
    assert keys(ds.splits["test"]) == {f"test/{c}/test{i}.wav" for c in ("yes", "no") for i in range(2)}
    assert len(ds.splits["val"]) == 2 and len(ds.splits["train"]) == 6
    empty = tmp_path / "nothing"
    (empty / "cls").mkdir(parents=True)
    with pytest.raises(UserError, match="no audio files"):
        load_dataset("folder", empty)


# ------------------------------------------------------------------------------------- registry

def test_registry_lists_every_layout() -> None:
    names = {d.name for d in list_datasets()}
    assert {"esc50", "urbansound8k", "gtzan", "ravdess", "audioset", "tau2020", "folder",
            "fsdd"} <= names
    for name in ("esc50", "urbansound8k", "gtzan", "audioset", "folder"):
        fe = get_dataset_info(name).frontend
        assert (fe.sample_rate, fe.n_fft, fe.hop_length, fe.n_mels, fe.fmin, fe.fmax) == (
            32000, 1024, 320, 64, 50.0, 14000.0)
    # RAVDESS: the front end bench/ravdess_frontend.py chose (bench/results/ravdess_frontend.json)
    fe = get_dataset_info("ravdess").frontend
    assert (fe.sample_rate, fe.n_fft, fe.hop_length, fe.n_mels, fe.fmin, fe.fmax) == (
        16000, 512, 320, 40, 50.0, 8000.0)
    assert [get_dataset_info(n).frontend.clip_seconds for n in
            ("esc50", "urbansound8k", "gtzan", "ravdess", "audioset", "folder")] == [5, 4, 30, 4, 10, 5]
    with pytest.raises(UserError, match="not a directory"):
        load_dataset("esc50", "/nonexistent/esc50")
