"""Bad metadata: extra or missing columns, rows naming missing files, labels outside the class
list, empty folds and splits, duplicate rows, paths that try to leave the data root, and tables
that are not text. Each gives a UserError naming the file and the rows (or a named note)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fixtures_audio import write_audio, write_table
from test_datasets_layouts import (
    ESC_HEADER,
    ESC_ROWS,
    TAU_EVAL,
    TAU_META,
    TAU_TRAIN,
    US8K_HEADER,
    US8K_ROWS,
    _tau_rows,
    write_audioset_tree,
)

from audioprune.data.registry import load_dataset
from audioprune.data.tables import read_table, stays_inside
from audioprune.errors import UserError
from audioprune.runs.data import DataSpec, prepare_data


def _esc50(root: Path, rows: list[tuple], header: list[str] = ESC_HEADER) -> Path:
    for fname, *_ in ESC_ROWS:
        write_audio(root / "audio" / fname)
    write_table(root / "meta" / "esc50.csv", header, rows)
    return root


def _esc_rows(extra: tuple = ()) -> list[tuple]:
    return [(f, fold, t, cat, e, f.split("-")[1], "A", *extra) for f, fold, t, cat, e in ESC_ROWS]


def test_extra_columns_are_ignored_and_short_rows_are_named(tmp_path: Path) -> None:
    root = _esc50(tmp_path, _esc_rows(("x", "y")), ESC_HEADER + ["notes", "licence"])
    assert sum(len(v) for v in load_dataset("esc50", root).splits.values()) == len(ESC_ROWS)
    rows = _esc_rows()
    rows[4] = rows[4][:2]  # a short row on line 6: no target, no esc10
    write_table(root / "meta" / "esc50.csv", ESC_HEADER, rows)
    with pytest.raises(UserError, match=r"esc50\.csv.*line\(s\) 6"):
        load_dataset("esc50", root)


def test_duplicate_rows_are_named(tmp_path: Path) -> None:
    rows = _esc_rows()
    rows.append(rows[2])  # line 14 repeats line 4
    root = _esc50(tmp_path, rows)
    with pytest.raises(UserError, match=r"esc50\.csv: 1 row\(s\) list a file already listed "
                                        r"\(line 14: 3-102-A-0\.wav \(as on line 4\)\)"):
        load_dataset("esc50", root)


@pytest.mark.parametrize("escape", ["../../outside.wav", "/tmp/outside.wav", "sub/../../x.wav", "..", "a/\x00.wav"])
def test_paths_cannot_leave_the_data_root(tmp_path: Path, escape: str) -> None:
    outside = tmp_path / "outside.wav"
    write_audio(outside)  # a real file the row points at: it must not be read
    root = tmp_path / "esc"
    rows = _esc_rows()
    rows[1] = (escape, *rows[1][1:])  # line 3
    _esc50(root, rows)
    with pytest.raises(UserError, match=r"esc50\.csv: a file name that is empty, absolute or climbs "
                                        r"out of the data root with '\.\.' on line\(s\) 3"):
        load_dataset("esc50", root)
    assert not stays_inside(escape)
    assert stays_inside("audio/1-100-A-0.wav") and stays_inside("a..b.wav")


def test_urbansound8k_traversal_and_duplicates(tmp_path: Path) -> None:
    for fname, fold, *_ in US8K_ROWS:
        write_audio(tmp_path / "audio" / f"fold{fold}" / fname)
    rows = [(f, f.split("-")[0], 0.0, 0.05, 1, fold, cid, name) for f, fold, cid, name in US8K_ROWS]
    table = tmp_path / "metadata" / "UrbanSound8K.csv"
    write_table(table, US8K_HEADER, rows + [rows[0]])
    with pytest.raises(UserError, match=r"line 11: fold1/100-0-0-0\.wav \(as on line 2\)"):
        load_dataset("urbansound8k", tmp_path)
    rows[3] = ("../../../etc/passwd", *rows[3][1:])
    write_table(table, US8K_HEADER, rows)
    with pytest.raises(UserError, match=r"UrbanSound8K\.csv: .*climbs out.* line\(s\) 5"):
        load_dataset("urbansound8k", tmp_path)


def test_tau2020_duplicates_overlap_and_absolute_paths(tmp_path: Path) -> None:
    train, evaluate = _tau_rows(TAU_TRAIN), _tau_rows(TAU_EVAL)
    for fname, *_ in train + evaluate:
        write_audio(tmp_path / fname)
    setup = tmp_path / "evaluation_setup"

    def write(meta: list, tr: list, ev: list) -> None:
        write_table(tmp_path / "meta.csv", TAU_META, meta, delimiter="\t")
        write_table(setup / "fold1_train.csv", ["filename", "scene_label"], [r[:2] for r in tr], "\t")
        write_table(setup / "fold1_evaluate.csv", ["filename", "scene_label"], [r[:2] for r in ev], "\t")

    write(train + evaluate, train, evaluate)
    assert load_dataset("tau2020", tmp_path).splits["test"]
    write(train + evaluate, train, evaluate + [train[0]])  # a training clip also in the test set
    with pytest.raises(UserError, match=r"1 file\(s\) listed in both .*fold1_train\.csv.*fold1_evaluate"):
        load_dataset("tau2020", tmp_path)
    write(train + evaluate, train + [train[1]], evaluate)
    with pytest.raises(UserError, match=r"fold1_train\.csv: 1 row\(s\) list a file already listed"):
        load_dataset("tau2020", tmp_path)
    meta = train + evaluate
    meta[2] = ("/etc/hostname", *meta[2][1:])
    write(meta, train, evaluate)
    with pytest.raises(UserError, match=r"meta\.csv: a file name .*absolute.* line\(s\) 4"):
        load_dataset("tau2020", tmp_path)


def test_labels_outside_the_class_list_and_missing_files(tmp_path: Path) -> None:
    root = write_audioset_tree(tmp_path / "as")
    with open(root / "eval_segments.csv", "a") as fh:
        fh.write('--nonesuch01, 0.0, 10.0, "/m/not_a_class"\n')
    with pytest.raises(UserError, match=r"eval_segments\.csv: 1 row\(s\) with labels not in "
                                        r"class_labels_indices\.csv: line \d+ \(/m/not_a_class\)"):
        load_dataset("audioset", root)
    rows = _esc_rows()
    rows[5] = (rows[5][0], rows[5][1], "-3", *rows[5][3:])  # a negative target on line 7
    esc = _esc50(tmp_path / "esc", rows)
    with pytest.raises(UserError, match=r"esc50\.csv.*target a non-negative integer.*line\(s\) 7"):
        load_dataset("esc50", esc)
    (esc / "audio" / "2-201-A-1.wav").unlink()
    write_table(esc / "meta" / "esc50.csv", ESC_HEADER, _esc_rows())
    with pytest.raises(UserError, match=r"1 of 12 clips listed in .*esc50\.csv are missing on disk "
                                        r"\(first: line 6: audio/2-201-A-1\.wav\)"):
        load_dataset("esc50", esc)


def test_empty_folds_and_splits(tmp_path: Path) -> None:
    rows = [r for r in _esc_rows() if r[1] != 3]  # fold 3 has no clips left
    root = _esc50(tmp_path, rows)
    with pytest.raises(UserError, match="test fold 3 holds no clips"):
        load_dataset("esc50", root, test_fold=3)
    only_fold1 = [(r[0], 1, *r[2:]) for r in _esc_rows()]  # everything is test: no training clip
    write_table(root / "meta" / "esc50.csv", ESC_HEADER, only_fold1)
    with pytest.raises(UserError, match="the training split is empty"):
        prepare_data(DataSpec("esc50", str(root), frontend={"sample_rate": 8000, "fmax": 4000,
                                                             "clip_seconds": 0.05}), progress=False)
    write_table(root / "meta" / "esc50.csv", ESC_HEADER, [])
    with pytest.raises(UserError, match=r"esc50\.csv lists no clips"):
        load_dataset("esc50", root)


@pytest.mark.parametrize("content, message", [
    (b"filename,fold,target\n\xff\xfe\x00bad\n", "is not UTF-8 text"),
    (b"filename,fold,target\n" + b'"' + b"x" * 200_000 + b'"\n', "unreadable table"),
    (b"", "header lacks column"),
    (b"\n\n\n", "header lacks column"),
])
def test_tables_that_are_not_text_are_named(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "t.csv"
    path.write_bytes(content)
    with pytest.raises(UserError, match=message):
        read_table(path, ("filename", "fold", "target"), "esc50", "layout")


def test_binary_junk_in_audioset_and_gtzan_lists_is_named(tmp_path: Path) -> None:
    root = write_audioset_tree(tmp_path / "as")
    (root / "class_labels_indices.csv").write_bytes(b"index,mid,display_name\n0,\xc3\x28,x\n")
    with pytest.raises(UserError, match=r"class_labels_indices\.csv is not UTF-8"):
        load_dataset("audioset", root)
    from test_datasets_layouts import _gtzan_tree

    _gtzan_tree(tmp_path / "gt" / "genres")
    lists = tmp_path / "lists"
    for name in ("train_filtered.txt", "valid_filtered.txt", "test_filtered.txt"):
        write_table(lists / name, None, [["blues/blues.00001.wav"]])
    (lists / "valid_filtered.txt").write_bytes(b"\x80\x81\x82 jazz\n")
    with pytest.raises(UserError, match=r"valid_filtered\.txt is not UTF-8"):
        load_dataset("gtzan", tmp_path / "gt", split_file=lists)
