"""`audioprune report`: the table's numbers are the runs' own, deltas are against the unpruned
parent, the Pareto front is right, plots are real PNGs. Run directories are written by hand
(metrics.json / model.json / profile.json as train, prune and profile write them): no training."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pytest

from audioprune.cli import main
from audioprune.fileio import write_json
from audioprune.report import write_report
from audioprune.report.collect import collect_rows, find_runs
from audioprune.report.pareto import pareto_front

PARENT = {"task": "single-label", "accuracy": 0.8, "params": 46_118, "macs": 57_866_600,
          "size_bytes": 184_984, "dataset": "fsdd", "split": "speaker:nicolas",
          "num_examples": 500}


def _parent_block(run: Path, metrics: dict) -> dict:
    return {"run": str(run.resolve()), **{k: metrics[k] for k in ("accuracy", "params", "macs",
                                                                  "size_bytes")},
            "dataset": metrics["dataset"], "split": metrics["split"]}


def make_run(root: Path, name: str, metrics: dict, arch: str = "dcase21net") -> Path:
    run = root / name
    write_json(run / "metrics.json", metrics)
    write_json(run / "model.json", {"arch": arch})
    return run


def make_pruned(root: Path, name: str, parent: Path, criterion: str, ratio: float,
                accuracy: float, params: int, macs: int) -> Path:
    pm = {**PARENT}
    m = {**PARENT, "accuracy": accuracy, "params": params, "macs": macs, "size_bytes": 4 * params,
         "parent": _parent_block(parent, pm), "before_finetune": {"accuracy": 0.1},
         "pruning": {"criterion": criterion, "plan": {
             "requested": {"ratio": ratio, "ratios": None, "target_macs": None,
                           "target_params": None, "layers": ["C1", "C2"], "global_ranking": False},
             "resolved": {"level": ratio}}},
         "reduction": {"params": 1 - params / PARENT["params"], "macs": 1 - macs / PARENT["macs"]}}
    return make_run(root, name, m)


@pytest.fixture()
def runs(tmp_path: Path) -> Path:
    root = tmp_path / "runs"
    parent = make_run(root, "dcase21net", PARENT)
    make_pruned(root, "dcase21net-wdc-r25", parent, "wdc", 0.25, 0.79, 34_142, 33_900_000)
    make_pruned(root, "dcase21net-wdc-r50", parent, "wdc", 0.5, 0.775, 23_726, 16_900_000)
    make_pruned(root, "dcase21net-l1-r25", parent, "l1", 0.25, 0.81, 34_142, 33_900_000)
    make_pruned(root, "dcase21net-l1-r50", parent, "l1", 0.5, 0.70, 23_726, 16_900_000)
    return root


def _csv(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text())))


def test_table_numbers_are_the_runs_and_deltas_are_against_the_parent(runs: Path,
                                                                       tmp_path: Path) -> None:
    # only the pruned runs are named: the parent comes in through their `parent` block
    report = write_report([str(runs / "*-r*")], tmp_path / "report")
    names = [r.name for r in report.rows]
    assert names == ["dcase21net", "dcase21net-l1-r25", "dcase21net-l1-r50",
                     "dcase21net-wdc-r25", "dcase21net-wdc-r50"]
    rows = {r["run"]: r for r in _csv(report.csv)}
    import json
    for name, row in rows.items():
        m = json.loads((runs / name / "metrics.json").read_text())
        assert float(row["value"]) == m["accuracy"]
        assert int(row["params"]) == m["params"] and int(row["macs"]) == m["macs"]
        assert int(row["size_bytes"]) == m["size_bytes"]
    assert rows["dcase21net"]["kind"] == "unpruned" and rows["dcase21net"]["delta_value"] == ""
    wdc50 = rows["dcase21net-wdc-r50"]
    assert float(wdc50["delta_value"]) == pytest.approx(0.775 - 0.8)
    assert float(wdc50["delta_params"]) == pytest.approx(23_726 / 46_118 - 1)
    assert float(wdc50["delta_macs"]) == pytest.approx(16_900_000 / 57_866_600 - 1)
    assert wdc50["criterion"] == "wdc" and wdc50["plan"] == "50% of C1,C2"
    assert wdc50["parent"] == str((runs / "dcase21net").resolve())

    md = report.markdown.read_text()
    line = next(ln for ln in md.splitlines() if ln.startswith("| dcase21net-wdc-r50 "))
    cells = [c.strip() for c in line.strip("|").split("|")]
    # run, model, criterion, plan, accuracy %, delta pts, params k, delta, MACs M, delta, size kB
    assert cells == ["dcase21net-wdc-r50", "dcase21net", "wdc", "50% of C1,C2", "77.50", "-2.50",
                     "23.7", "-48.6%", "16.90", "-70.8%", "94.9"]
    assert "No run has been profiled" in md  # no latency column without profile.json
    assert "(ms)" not in report.table
    assert "compute" not in report.table  # no run recorded its timings


def test_latency_from_profile_json_and_dash_where_missing(runs: Path, tmp_path: Path) -> None:
    lat = {"median": 1.25, "p10": 1.2, "p90": 1.4, "repeats": 50}
    write_json(runs / "dcase21net-wdc-r50" / "profile.json", {
        "params": {"total": 23_726}, "threads": 2,
        "latency_ms": {"eager": {"b1": lat, "b32": {**lat, "median": 9.5}},
                       "onnxruntime": {"b1": {**lat, "median": 0.5}}}})
    report = write_report([runs], tmp_path / "report")
    header = report.table.splitlines()[0]
    assert header.endswith("| eager b1 (ms) | eager b32 (ms) | onnxruntime b1 (ms) |")
    wdc = next(ln for ln in report.table.splitlines() if ln.startswith("| dcase21net-wdc-r50 "))
    assert wdc.rstrip().endswith("| 1.250 | 9.500 | 0.500 |")
    l1 = next(ln for ln in report.table.splitlines() if ln.startswith("| dcase21net-l1-r50 "))
    assert l1.rstrip().endswith("| - | - | - |")
    rows = {r["run"]: r for r in _csv(report.csv)}
    assert float(rows["dcase21net-wdc-r50"]["latency_ms_eager_b32"]) == 9.5
    assert rows["dcase21net-l1-r50"]["latency_ms_eager_b32"] == ""
    assert "2 thread(s)" in report.markdown.read_text()


def test_pareto_front_on_hand_made_points() -> None:
    costs = [10, 20, 20, 30, 5, 40, 15, 10]
    scores = [0.5, 0.7, 0.6, 0.7, 0.4, 0.9, 0.5, 0.5]
    # (15, .5) and (10, .5) duplicate are dominated by / equal to (10, .5) idx 0; (20, .6) by
    # (20, .7); (30, .7) costs more for the same score
    assert pareto_front(costs, scores) == [4, 0, 1, 5]
    assert pareto_front([], []) == []
    assert pareto_front([3.0], [0.1]) == [0]
    with pytest.raises(ValueError):
        pareto_front([1, 2], [0.5])


def test_plots_are_written_and_show_something(runs: Path, tmp_path: Path) -> None:
    report = write_report([runs], tmp_path / "report")
    assert [p.name for p in report.plots] == ["accuracy_vs_macs.png", "accuracy_vs_params.png"]
    for path in report.plots:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        img = mpimg.imread(path)[..., :3]
        assert img.shape[0] > 300 and img.shape[1] > 500
        ink = (img < 0.9).any(axis=-1).mean()  # not a blank canvas: axes, lines, text
        assert 0.01 < ink < 0.5
        colours = {tuple(np.round(px, 1)) for px in img.reshape(-1, 3)[::7]}
        assert len(colours) > 10  # coloured series, not just black axes
        assert f"![{path.stem}]({path.name})" in report.markdown.read_text()


def test_one_plot_per_dataset_and_split(runs: Path, tmp_path: Path) -> None:
    other = make_run(tmp_path / "more", "esc-dcase21net", {**PARENT, "dataset": "esc50",
                                                            "split": "fold1"})
    report = write_report([runs, other], tmp_path / "report")
    names = sorted(p.name for p in report.plots)
    assert names == ["accuracy_vs_macs-esc50-fold1.png", "accuracy_vs_macs-fsdd-speaker-nicolas.png",
                     "accuracy_vs_params-esc50-fold1.png",
                     "accuracy_vs_params-fsdd-speaker-nicolas.png"]
    assert "| dataset |" in report.table  # mixed data: the table says which row is which


def test_parent_directory_gone_uses_the_parent_block(runs: Path, tmp_path: Path) -> None:
    import shutil

    shutil.rmtree(runs / "dcase21net")
    rows = collect_rows(find_runs([runs]))
    parent = rows[0]
    assert parent.is_parent and parent.value == 0.8 and parent.params == 46_118
    assert all(r.delta_value() is not None for r in rows[1:])


def test_report_cli_and_its_errors(runs: Path, tmp_path: Path,
                                   capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "cli-report"
    assert main(["report", str(runs / "dcase21net-l1-*"), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "| dcase21net-l1-r25 |" in printed and "| dcase21net |" in printed
    assert "dcase21net-wdc" not in printed
    assert (out / "report.md").is_file() and (out / "accuracy_vs_macs.png").stat().st_size > 10_000

    assert main(["report", str(tmp_path / "nowhere"), "--out", str(out)]) == 2
    assert "nowhere" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty"), "--out", str(out)]) == 2
    assert "no run directory" in capsys.readouterr().err


def _kd_block(teacher: Path, train_seconds: float, teacher_seconds: float) -> dict:
    """A `distill` block as distill writes it: cached teacher, so total = training + cache build."""
    return {"teacher": {"run": str(teacher.resolve()), "arch": "cnn6", "accuracy": 0.55,
                        "params": 287_562, "macs": 39_521_664, "size_bytes": 1_152_488},
            "loss": "hinton", "temperature": 4.0, "alpha": 0.9, "teacher_mode": "cached",
            "teacher_seconds": teacher_seconds, "total_seconds": train_seconds + teacher_seconds}


@pytest.fixture()
def timed(tmp_path: Path) -> Path:
    """The prune-vs-KD recipe's runs as written by train, prune, prune --distill-from, distill."""
    root = tmp_path / "timed"
    teacher = make_run(root, "teacher", {**PARENT, "accuracy": 0.55, "params": 287_562,
                                         "macs": 39_521_664, "size_bytes": 1_152_488,
                                         "train_seconds": 1434.62}, arch="cnn6")
    make_run(root, "labels", {**PARENT, "accuracy": 0.45, "params": 72_530, "macs": 10_284_736,
                              "size_bytes": 291_400, "train_seconds": 381.29}, arch="cnn6")
    pruned = make_pruned(root, "teacher-l1-r50", teacher, "l1", 0.5, 0.60, 72_530, 10_284_736)
    m = json.loads((pruned / "metrics.json").read_text())
    write_json(pruned / "metrics.json", {**m, "train_seconds": 119.16})
    # pruned again, fine-tuned with KD from the teacher: the teacher is upstream twice
    again = make_pruned(root, "teacher-l1-r50-l1-r25-kd", pruned, "l1", 0.25, 0.5, 40_000,
                        5_000_000)
    m = json.loads((again / "metrics.json").read_text())
    write_json(again / "metrics.json", {**m, "train_seconds": 50.0,
                                        "distill": _kd_block(teacher, 50.0, 12.5)})
    make_run(root, "kd", {**PARENT, "accuracy": 0.38, "params": 72_530, "macs": 10_284_736,
                          "size_bytes": 291_400, "train_seconds": 300.25,
                          "distill": _kd_block(teacher, 300.25, 40.5)}, arch="cnn6")
    return root


def test_compute_columns_are_the_runs_timings_and_totals_add_the_parent_once(
        timed: Path, tmp_path: Path) -> None:
    report = write_report([timed], tmp_path / "report")
    rows = {r["run"]: r for r in _csv(report.csv)}
    own = {name: float(r["compute_seconds"]) for name, r in rows.items()}
    total = {name: float(r["total_compute_seconds"]) for name, r in rows.items()}
    # own: training; a pruned run's fine-tuning; a KD run's training + teacher logits
    assert own == {"teacher": 1434.62, "labels": 381.29, "teacher-l1-r50": 119.16,
                   "teacher-l1-r50-l1-r25-kd": 62.5, "kd": 340.75}
    assert total["teacher"] == 1434.62 and total["labels"] == 381.29
    assert total["teacher-l1-r50"] == pytest.approx(1434.62 + 119.16)
    assert total["kd"] == pytest.approx(1434.62 + 340.75)  # KD needs the trained teacher too
    # parent (pruned) + its parent (teacher, also the KD teacher): the teacher counted once
    assert total["teacher-l1-r50-l1-r25-kd"] == pytest.approx(1434.62 + 119.16 + 62.5)

    head = [c.strip() for c in report.table.splitlines()[0].strip("|").split("|")]
    assert head[-2:] == ["compute (s)", "total compute (s)"]
    kd = next(ln for ln in report.table.splitlines() if ln.startswith("| kd "))
    assert [c.strip() for c in kd.strip("|").split("|")][-2:] == ["341", "1,775"]
    assert "parent's training is not included" in report.markdown.read_text()


def test_total_compute_unknown_when_the_parent_is_gone(timed: Path, tmp_path: Path) -> None:
    import shutil

    shutil.rmtree(timed / "teacher")
    rows = {r.name: r for r in collect_rows(find_runs([timed]))}
    pruned = rows["teacher-l1-r50"]
    assert pruned.compute_s == 119.16 and pruned.total_compute_s is None  # not a partial sum
    assert rows["labels"].total_compute_s == 381.29
    report = write_report([timed], tmp_path / "report")
    line = next(ln for ln in report.table.splitlines() if ln.startswith("| teacher-l1-r50 "))
    assert line.rstrip().endswith("| 119 | - |")


def test_total_compute_known_from_the_parent_block_when_the_parent_is_gone(
        timed: Path, tmp_path: Path) -> None:
    """prune and distill now copy the parent's / teacher's train_seconds into their block."""
    import shutil

    for name in ("teacher-l1-r50", "kd"):
        m = json.loads((timed / name / "metrics.json").read_text())
        block = m["parent"] if "parent" in m else m["distill"]["teacher"]
        block["train_seconds"] = 1434.62
        write_json(timed / name / "metrics.json", m)
    shutil.rmtree(timed / "teacher")
    rows = {r.name: r for r in collect_rows(find_runs([timed]))}
    assert rows["teacher-l1-r50"].total_compute_s == pytest.approx(1434.62 + 119.16)
    assert rows["kd"].total_compute_s == pytest.approx(1434.62 + 340.75)
