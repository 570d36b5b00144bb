"""Knowledge distillation on real FSDD, speaker-independent: does a small student learn more from
a trained teacher than from the labels alone? Run by the real `audioprune` command and summarised
from the run directories' metrics.json.

    python bench/kd_study.py                 # teacher, then 3 seeds x (labels, KD) students
    python bench/kd_study.py --epochs 10     # students trained for 10 epochs (teacher: 20)
    python bench/kd_study.py --summary --epochs 10   # the table only, from existing runs

Split `speaker:nicolas` (his 500 recordings are the test set; the official split puts every
speaker in train and test and is nearly saturated). Teacher: `cnn6 --width 0.25`, seed 0,
--teacher-epochs (20). Students, --epochs each (20): `cnn6 --width 0.125`, seeds 0, 1, 2, each trained twice with identical settings --
`audioprune train` (labels only) and `audioprune distill --teacher` (default loss: hinton,
T = 4, alpha = 0.9; teacher mode auto) -- so the pair of seed s starts from the same weights and
sees the same batches. Runs go under --runs (default runs/kd-study); a finished run
(metrics.json present) is skipped and an interrupted one resumed, so the script is resumable.
Results (mean, sample standard deviation, per seed, paired differences) go to
bench/results/kd_fsdd.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from audioprune.fileio import read_json, write_json

ROOT = Path(__file__).resolve().parents[1]
FSDD = Path(os.environ.get("FSDD_ROOT", ROOT.parent / "shared" / "datasets" / "fsdd"))
RESULTS = ROOT / "bench" / "results" / "kd_fsdd.json"
SPLIT = "speaker:nicolas"
MODEL = "cnn6"
TEACHER_WIDTH, STUDENT_WIDTH = 0.25, 0.125
SEEDS = (0, 1, 2)


@dataclass
class Job:
    out: Path
    argv: list[str]
    needs: list[Path] = field(default_factory=list)

    def done(self) -> bool:
        return (self.out / "metrics.json").exists()


def common(epochs: int, seed: int) -> list[str]:
    return ["--epochs", str(epochs), "--seed", str(seed), "--no-progress"]


def teacher_job(runs: Path, epochs: int) -> Job:
    out = runs / f"teacher-{MODEL}-w{TEACHER_WIDTH}-e{epochs}-s0"
    return Job(out, ["train", "--model", MODEL, "--width", str(TEACHER_WIDTH), "--dataset", "fsdd",
                     "--data-root", str(FSDD), "--split", SPLIT, *common(epochs, 0),
                     "--out", str(out)])


def student_jobs(runs: Path, teacher: Path, epochs: int, seed: int) -> dict[str, Job]:
    stem = f"student-{MODEL}-w{STUDENT_WIDTH}-e{epochs}-s{seed}"
    labels, kd = runs / f"{stem}-labels", runs / f"{stem}-kd"
    return {
        "labels": Job(labels, ["train", "--model", MODEL, "--width", str(STUDENT_WIDTH),
                               "--dataset", "fsdd", "--data-root", str(FSDD), "--split", SPLIT,
                               *common(epochs, seed), "--out", str(labels)]),
        "kd": Job(kd, ["distill", "--teacher", str(teacher), "--model", MODEL, "--width",
                       str(STUDENT_WIDTH), *common(epochs, seed), "--out", str(kd)],
                  needs=[teacher]),
    }


def run_job(job: Job, threads: int) -> str:
    if job.done():
        return f"skip {job.out.name}"
    while not all((p / "metrics.json").exists() for p in job.needs):
        time.sleep(10)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    cmd = [sys.executable, "-m", "audioprune", *job.argv]
    if (job.out / "config.json").exists():  # an interrupted run: continue it
        cmd = [sys.executable, "-m", "audioprune", job.argv[0], "--resume", str(job.out),
               "--no-progress"]
    start = time.perf_counter()
    with open(job.out.parent / f"{job.out.name}.log", "a") as fh:
        rc = subprocess.call(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    return f"{'done' if rc == 0 else f'FAILED rc={rc}'} {job.out.name} {time.perf_counter() - start:.0f}s"


def mean_sd(values: list[float]) -> dict[str, Any]:
    return {"mean": statistics.fmean(values),
            "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
            "n": len(values), "values": values}


def load(job: Job) -> dict[str, Any] | None:
    return read_json(job.out / "metrics.json") if job.done() else None


def summarise(runs: Path, teacher_epochs: int, epochs: int) -> dict[str, Any]:
    teacher = load(teacher_job(runs, teacher_epochs))
    if teacher is None:
        return {}
    out: dict[str, Any] = {
        "setup": {"dataset": "fsdd", "split": SPLIT, "teacher_epochs": teacher_epochs,
                  "student_epochs": epochs, "seeds": list(SEEDS),
                  "teacher": f"{MODEL} --width {TEACHER_WIDTH} (seed 0)",
                  "student": f"{MODEL} --width {STUDENT_WIDTH}"},
        "teacher": {k: teacher[k] for k in ("accuracy", "macro_f1", "params", "macs",
                                            "train_seconds")},
    }
    arms: dict[str, dict[int, dict[str, Any]]] = {"labels": {}, "kd": {}}
    for seed in SEEDS:
        for arm, job in student_jobs(runs, teacher_job(runs, teacher_epochs).out, epochs,
                                     seed).items():
            if (m := load(job)) is not None:
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
    print(f"teacher {r['setup']['teacher']}: accuracy {100 * t['accuracy']:.2f}%  params "
          f"{t['params']:,}  MACs {t['macs']:,}  train {t['train_seconds']:.0f}s")
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
    ap.add_argument("--workers", type=int, default=2, help="runs side by side (1 thread each "
                    "on 2 cores)")
    ap.add_argument("--summary", action="store_true", help="only summarise existing runs")
    args = ap.parse_args()
    if not FSDD.exists():
        sys.exit(f"FSDD not found at {FSDD}: set FSDD_ROOT to the free-spoken-digit-dataset folder")
    args.runs.mkdir(parents=True, exist_ok=True)
    if not args.summary:
        teacher = teacher_job(args.runs, args.teacher_epochs)
        todo = [teacher]
        for seed in SEEDS:
            todo += list(student_jobs(args.runs, teacher.out, args.epochs, seed).values())
        todo.sort(key=lambda j: bool(j.needs))  # label-only students run while the teacher trains
        threads = max(1, (os.cpu_count() or 2) // args.workers)
        with ThreadPoolExecutor(args.workers) as pool:
            for line in pool.map(lambda j: run_job(j, threads), todo):
                print(line, flush=True)
    results = summarise(args.runs, args.teacher_epochs, args.epochs)
    if results:
        write_json(RESULTS, results)
    print_table(results)


if __name__ == "__main__":
    main()
