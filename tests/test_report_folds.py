"""`audioprune report` over folds and seeds: methods grouped across their (fold, seed) units,
means with 95% intervals, paired differences to the parent / a criterion / a model, the
Markdown marks and summary.csv. Run directories are written by hand, as in test_report.py."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest

from audioprune.cli import main
from audioprune.fileio import write_json
from audioprune.report import write_report
from audioprune.report.aggregate import protocol_of
from audioprune.report.stats import mean_ci, paired_difference

PARENTS = {"dcase21net": [0.70, 0.66, 0.81, 0.75], "qdcase21net": [0.68, 0.60, 0.79, 0.71]}
PRUNED = {"wdc": [0.72, 0.64, 0.80, 0.74], "l1": [0.69, 0.60, 0.77, 0.70]}
FOLDS = [1, 2, 3, 4]


def _run(root: Path, name: str, metrics: dict, config: dict, arch: str) -> Path:
    run = root / name
    write_json(run / "metrics.json", metrics)
    write_json(run / "model.json", {"arch": arch, "kwargs": {}})
    write_json(run / "config.json", config)
    return run


def _write(root: Path) -> None:
    for arch, accs in PARENTS.items():
        for k, acc in zip(FOLDS, accs):
            m = {"task": "single-label", "accuracy": acc, "params": 46_118, "macs": 57_866_600,
                 "size_bytes": 184_000, "dataset": "fsdd", "split": f"fold:{k}/6", "fold": k,
                 "folds": 6}
            parent = _run(root, f"{arch}-fold{k}", m, {"train": {"seed": 0, "epochs": 20}}, arch)
            if arch != "dcase21net":
                continue
            for crit, paccs in PRUNED.items():
                pm = {**m, "accuracy": paccs[k - 1], "params": 23_726, "macs": 16_267_560,
                      "parent": {"run": str(parent.resolve()), "accuracy": acc, "params": 46_118,
                                 "macs": 57_866_600},
                      "pruning": {"criterion": crit, "options": {}, "plan": {"requested": {
                          "ratios": {"C1": 0.5, "C2": 0.5}}}, "schedule": {"rounds": 1}}}
                _run(root, f"{arch}-fold{k}-{crit}", pm, {"train": {"seed": 0, "epochs": 10}}, arch)


def test_methods_are_aggregated_over_folds_with_paired_differences(tmp_path: Path) -> None:
    _write(tmp_path / "runs")
    report = write_report([tmp_path / "runs"], tmp_path / "report")
    by_label = {s.label: s for s in report.summaries}
    wdc = by_label["dcase21net e20 / wdc @ C1=50%, C2=50% ft10"]
    assert sorted(wdc.values) == ["fold1-s0", "fold2-s0", "fold3-s0", "fold4-s0"]
    assert wdc.interval == mean_ci(PRUNED["wdc"])
    assert wdc.protocol == "fold:*/6" and protocol_of("fold:3/6") == "fold:*/6"
    units = [f"fold{k}-s0" for k in FOLDS]
    expect = paired_difference(dict(zip(units, PRUNED["wdc"])),
                               dict(zip(units, PARENTS["dcase21net"])))
    assert wdc.baseline == "parent" and wdc.difference == expect
    assert wdc.difference.interval.mean == pytest.approx(np.mean(
        np.subtract(PRUNED["wdc"], PARENTS["dcase21net"])))
    assert "dcase21net e20" in by_label and "qdcase21net e20" in by_label
    assert by_label["dcase21net e20"].difference is None  # unpruned: no parent to compare with
    md = (tmp_path / "report" / "report.md").read_text()
    assert "## Over folds and seeds" in md
    l1 = by_label["dcase21net e20 / l1 @ C1=50%, C2=50% ft10"]
    assert l1.difference.significant  # l1 loses on every fold: -1, -6, -4, -5 points
    l1_diff = paired_difference(dict(zip(units, PRUNED["l1"])), dict(zip(units, PARENTS["dcase21net"])))
    assert f"| {_points(l1_diff.interval, signed=True)} vs parent * |" in md
    assert f"| {_points(wdc.difference.interval, signed=True)} vs parent |" in md  # not significant
    rows = list(csv.DictReader(io.StringIO((tmp_path / "report" / "summary.csv").read_text())))
    row = next(r for r in rows if r["criterion"] == "l1")
    assert float(row["diff_mean"]) == pytest.approx(-0.04) and row["significant"] == "True"
    assert row["values"] == "fold1-s0=0.69 fold2-s0=0.6 fold3-s0=0.77 fold4-s0=0.7"
    assert any(p.name == "accuracy_vs_macs_mean_ci.png" for p in report.plots)


def test_baselines_a_criterion_and_a_model(tmp_path: Path) -> None:
    _write(tmp_path / "runs")
    report = write_report([tmp_path / "runs"], tmp_path / "r1", baseline="l1", ci="t")
    wdc = next(s for s in report.summaries if s.criterion == "wdc")
    assert wdc.baseline == "l1"
    diffs = np.subtract(PRUNED["wdc"], PRUNED["l1"])  # +3, +4, +3, +4 points
    assert wdc.difference.interval.mean == pytest.approx(diffs.mean())
    assert wdc.difference.interval.method == "t" and wdc.difference.significant
    report = write_report([tmp_path / "runs"], tmp_path / "r2", baseline="dcase21net")
    q = next(s for s in report.summaries if s.model == "qdcase21net e20")
    assert q.baseline == "dcase21net"
    assert q.difference.interval.mean == pytest.approx(
        np.mean(np.subtract(PARENTS["qdcase21net"], PARENTS["dcase21net"])))


def _points(iv, signed: bool = False) -> str:
    f = "{:+.1f}" if signed else "{:.1f}"
    return f"{f.format(100 * iv.mean)} [{f.format(100 * iv.low)}, {f.format(100 * iv.high)}]"


def _summary_line(label: str, values: list[float], parent: list[float] | None, ci: str,
                  params: str, macs: str, ratio: str = "") -> str:
    """The summary table's line of a method, worked out here from its per-fold values."""
    units = [f"fold{k}-s0" for k in FOLDS]
    cells = ["fsdd fold:*/6", label, str(len(values)), _points(mean_ci(values, method=ci))]
    if parent is None:
        cells += ["-", "-", "-"]
    else:
        d = paired_difference(dict(zip(units, values)), dict(zip(units, parent)), method=ci)
        star = " *" if d.interval.low > 0 or d.interval.high < 0 else ""
        cells += [f"{_points(d.interval, signed=True)} vs parent{star}", f"{d.wilcoxon_p:.3f}",
                  f"{d.sign_p:.3f}"]
    return "| " + " | ".join(cells + [params, macs, ratio]) + " |"


def test_report_command_prints_the_summary(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """Each method's line: its mean over the 4 folds with Student's t interval (--ci t), the
    paired difference to its parent with its interval, * where that excludes 0, the p-values."""
    _write(tmp_path / "runs")
    assert main(["report", str(tmp_path / "runs"), "--out", str(tmp_path / "r"), "--ci", "t"]) == 0
    lines = capsys.readouterr().out.splitlines()
    start = lines.index("over folds and seeds (mean [95% CI]; * = interval of the difference "
                        "excludes 0):")
    plan = "C1=50%, C2=50% ft10"
    assert lines[start + 3:start + 7] == [
        _summary_line("dcase21net e20", PARENTS["dcase21net"], None, "t", "46.1", "57.87"),
        _summary_line(f"dcase21net e20 / l1 @ {plan}", PRUNED["l1"], PARENTS["dcase21net"], "t",
                      "23.7", "16.27", "0.281"),
        _summary_line(f"dcase21net e20 / wdc @ {plan}", PRUNED["wdc"], PARENTS["dcase21net"], "t",
                      "23.7", "16.27", "0.281"),
        _summary_line("qdcase21net e20", PARENTS["qdcase21net"], None, "t", "46.1", "57.87")]
    assert "-4.0 [-7.4, -0.6] vs parent *" in lines[start + 4]  # l1: the 4 folds all lose
    assert "vs parent |" in lines[start + 5]  # wdc: -0.5 [-3.3, +2.3], not significant
    assert lines[start + 7] == f"summary: {tmp_path / 'r' / 'summary.csv'}"
    rows = list(csv.DictReader(io.StringIO((tmp_path / "r" / "summary.csv").read_text())))
    assert [r["ci_method"] for r in rows] == ["t"] * 4


def test_a_narrower_twin_is_its_own_method(tmp_path: Path) -> None:
    """A model trained with explicit widths (a student's size, trained from labels) shares its
    architecture and kwargs with the full-width model: it must not be averaged with it."""
    root = tmp_path / "runs"
    for k, (full, small) in zip(FOLDS, [(0.70, 0.40), (0.66, 0.50), (0.81, 0.60), (0.75, 0.45)]):
        m = {"task": "single-label", "params": 73_674, "macs": 44_369_664, "size_bytes": 1,
             "dataset": "fsdd", "split": f"fold:{k}/6", "fold": k, "folds": 6}
        train = {"seed": 0, "epochs": 20}
        _run(root, f"qcnn6-fold{k}", {**m, "accuracy": full},
             {"train": train, "model_kwargs": {"width": 0.25}}, "qcnn6")
        _run(root, f"qcnn6-small-fold{k}", {**m, "accuracy": small, "params": 26_634},
             {"train": train, "model_kwargs": {"width": 0.25, "widths": {"block4.conv1": 64,
                                                                          "block3.conv1": 32}}},
             "qcnn6")
    report = write_report([root], tmp_path / "report")
    means = {s.model: s.interval.mean for s in report.summaries}
    assert means == {"qcnn6(width=0.25) e20": pytest.approx(0.73),
                     "qcnn6(width=0.25,widths=block3.conv1:32/block4.conv1:64) e20":
                         pytest.approx(0.4875)}


def test_kd_fine_tunes_that_differ_in_their_weights_are_two_methods(tmp_path: Path) -> None:
    """A prune fine-tuned with KD at the recipe's defaults and one at alpha = 0.5 share the
    criterion and plan: averaged together, each fold would keep one of them silently."""
    root = tmp_path / "runs"
    _write(root)
    kd = {"loss": "hinton", "temperature": 4.0, "alpha": 0.9, "teacher": {"run": "x"}}
    for k in FOLDS:
        m = json.loads((root / f"dcase21net-fold{k}-l1" / "metrics.json").read_text())
        for name, alpha, acc in (("kd", 0.9, 0.5), ("kda05", 0.5, 0.6)):
            _run(root, f"dcase21net-fold{k}-l1-{name}",
                 {**m, "accuracy": acc + k / 100, "distill": {**kd, "alpha": alpha}},
                 {"train": {"seed": 0, "epochs": 10}}, "dcase21net")
    report = write_report([root], tmp_path / "report")
    means = {s.criterion: s.interval.mean for s in report.summaries if s.kind == "pruned"}
    assert means["l1+kd"] == pytest.approx(0.525)  # the defaults keep the short label
    assert means["l1+kd(alpha=0.5)"] == pytest.approx(0.625)
    assert "l1" in means and "wdc" in means
