"""Knowledge distillation on real FSDD, speaker-independent: does a small student learn more from
a trained teacher than from the labels alone? Run by the real `audioprune` command and summarised
from the run directories' metrics.json.

    python bench/kd_study.py                 # 3 seeds x (teacher, labels and KD students)
    python bench/kd_study.py --epochs 10     # students trained for 10 epochs (teacher: 20)
    python bench/kd_study.py --summary --epochs 10   # the table only, from existing runs

Split `speaker:nicolas` (his 500 recordings are the test set; the official split puts every
speaker in train and test and is nearly saturated). The study is a recipe with seeds 0, 1, 2 as
its matrix; per seed: a teacher `cnn6 --width 0.25` (--teacher-epochs, 20), and a student
`cnn6 --width 0.125` (--epochs, 20) trained twice with identical settings - from the labels and
distilled from that seed's teacher (hinton, T = 4, alpha = 0.9; teacher mode auto) - so the pair
of seed s starts from the same weights and sees the same batches. (Before 2026-11-25 one teacher,
seed 0, taught every seed's student.) The recipe runner runs it (--runs/kd-e<T>-<S>, default
runs/kd-study): finished steps are skipped and interrupted ones resumed.
Results (mean, sample standard deviation, per seed, paired differences) go to
bench/results/kd_fsdd.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
from pathlib import Path
from typing import Any

from audioprune.fileio import read_json, write_json
from audioprune.pipeline.recipe import Recipe, parse_recipe
from audioprune.pipeline.runner import run_recipe

ROOT = Path(__file__).resolve().parents[1]
FSDD = Path(os.environ.get("FSDD_ROOT", ROOT.parent / "shared" / "datasets" / "fsdd"))
RESULTS = ROOT / "bench" / "results" / "kd_fsdd.json"
SPLIT = "speaker:nicolas"
MODEL = "cnn6"
TEACHER_WIDTH, STUDENT_WIDTH = 0.25, 0.125
SEEDS = (0, 1, 2)


def study_recipe(teacher_epochs: int, epochs: int) -> Recipe:
    """The study as a recipe: per seed a teacher, a labels-only student and a KD student."""
    student = {"arch": MODEL, "kwargs": {"width": STUDENT_WIDTH}, "train": {"epochs": epochs}}
    return parse_recipe({
        "name": f"kd-e{teacher_epochs}-{epochs}",
        "dataset": {"name": "fsdd", "root": str(FSDD), "split": SPLIT},
        "seeds": list(SEEDS),
        "models": [{"name": "teacher", "arch": MODEL, "kwargs": {"width": TEACHER_WIDTH},
                    "train": {"epochs": teacher_epochs}},
                   {"name": "student-labels", **student}],
        "distill": {"teacher": "teacher", "loss": "hinton",
                    "students": [{"name": "student-kd", **student}]},
        "profile": False})


def run_dir(runs: Path, teacher_epochs: int, epochs: int, name: str, seed: int) -> Path:
    return runs / study_recipe(teacher_epochs, epochs).name / f"{name}-s{seed}"


def mean_sd(values: list[float]) -> dict[str, Any]:
    return {"mean": statistics.fmean(values),
            "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
            "n": len(values), "values": values}


def load(run: Path) -> dict[str, Any] | None:
    return read_json(run / "metrics.json") if (run / "metrics.json").is_file() else None


def summarise(runs: Path, teacher_epochs: int, epochs: int) -> dict[str, Any]:
    teachers = {s: m for s in SEEDS
                if (m := load(run_dir(runs, teacher_epochs, epochs, "teacher", s)))}
    if not teachers:
        return {}
    out: dict[str, Any] = {
        "setup": {"dataset": "fsdd", "split": SPLIT, "teacher_epochs": teacher_epochs,
                  "student_epochs": epochs, "seeds": list(SEEDS),
                  "teacher": f"{MODEL} --width {TEACHER_WIDTH} (one per seed)",
                  "student": f"{MODEL} --width {STUDENT_WIDTH}"},
        "teacher": {"accuracy": mean_sd([m["accuracy"] for m in teachers.values()]),
                    "macro_f1": mean_sd([m["macro_f1"] for m in teachers.values()]),
                    **{k: next(iter(teachers.values()))[k] for k in ("params", "macs")},
                    "train_seconds": mean_sd([m["train_seconds"] for m in teachers.values()])},
    }
    arms: dict[str, dict[int, dict[str, Any]]] = {"labels": {}, "kd": {}}
    for seed in SEEDS:
        for arm, name in (("labels", "student-labels"), ("kd", "student-kd")):
            if (m := load(run_dir(runs, teacher_epochs, epochs, name, seed))) is not None:
                arms[arm][seed] = m
    for arm, by_seed in arms.items():
        if not by_seed:
            continue
        ms = list(by_seed.values())
        block = {"seeds": sorted(by_seed), "accuracy": mean_sd([m["accuracy"] for m in ms]),
                 "macro_f1": mean_sd([m["macro_f1"] for m in ms]),
                 "params": ms[0]["params"], "macs": ms[0]["macs"],
                 "train_seconds": mean_sd([m["train_seconds"] for m in ms])}
        if arm == "kd":
            d = ms[0]["distill"]
            block["distill"] = {k: d[k] for k in ("loss", "temperature", "alpha", "teacher_mode",
                                                  "teacher_mode_reason")}
            block["teacher_seconds"] = mean_sd([m["distill"]["teacher_seconds"] for m in ms])
        out[arm] = block
    paired = sorted(set(arms["labels"]) & set(arms["kd"]))
    if paired:
        out["kd_minus_labels_points"] = mean_sd(
            [100 * (arms["kd"][s]["accuracy"] - arms["labels"][s]["accuracy"]) for s in paired])
    return out


def print_table(r: dict[str, Any]) -> None:
    if not r:
        print("no finished teacher run yet")
        return
    t = r["teacher"]
    print(f"FSDD [{SPLIT}]; teacher {r['setup']['teacher_epochs']} epochs, students "
          f"{r['setup']['student_epochs']}")
    print(f"teacher {r['setup']['teacher']}: accuracy {100 * t['accuracy']['mean']:.2f} ± "
          f"{100 * t['accuracy']['sd']:.2f}%  params {t['params']:,}  MACs {t['macs']:,}  train "
          f"{t['train_seconds']['mean']:.0f}s")
    for arm, name in (("labels", "labels only"), ("kd", "distilled")):
        if arm in r:
            b = r[arm]
            acc = b["accuracy"]
            print(f"student {name:11s}: accuracy {100 * acc['mean']:.2f} ± {100 * acc['sd']:.2f}% "
                  f"(n={acc['n']}; {', '.join(f'{100 * v:.1f}' for v in acc['values'])})  params "
                  f"{b['params']:,}  MACs {b['macs']:,}  train {b['train_seconds']['mean']:.0f}s")
    if "kd_minus_labels_points" in r:
        d = r["kd_minus_labels_points"]
        print(f"distilled minus labels only, paired by seed: {d['mean']:+.2f} ± {d['sd']:.2f} "
              f"points ({', '.join(f'{v:+.1f}' for v in d['values'])})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--runs", type=Path, default=ROOT / "runs" / "kd-study")
    ap.add_argument("--teacher-epochs", type=int, default=20, help="the teacher's epochs")
    ap.add_argument("--epochs", type=int, default=20, help="each student's epochs")
    ap.add_argument("--workers", type=int, default=2, help="steps run at once (1 thread each "
                    "on 2 cores)")
    ap.add_argument("--summary", action="store_true", help="only summarise existing runs")
    args = ap.parse_args()
    if not FSDD.exists():
        sys.exit(f"FSDD not found at {FSDD}: set FSDD_ROOT to the free-spoken-digit-dataset folder")
    if not args.summary:
        recipe = study_recipe(args.teacher_epochs, args.epochs)
        run_recipe(recipe, args.runs / recipe.name, progress=False,
                   executor="local" if args.workers > 1 else "sequential", jobs=args.workers)
    results = summarise(args.runs, args.teacher_epochs, args.epochs)
    if results:
        write_json(RESULTS, results)
    print_table(results)


if __name__ == "__main__":
    main()
