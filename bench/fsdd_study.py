"""The FSDD studies behind the closing notes of the quaternion and pruning issues, run by the
real `audioprune` command and summarised from the run directories' metrics.json.

    python bench/fsdd_study.py qcnn    # dcase21net vs qdcase21net, 3 seeds, official split
    python bench/fsdd_study.py prune   # C1+C2 50% pruning, 5 criteria x 3 seeds x 3 splits
    python bench/fsdd_study.py all --workers 2
    python bench/fsdd_study.py summary # tables only, from whatever runs exist

Runs go under --runs (default runs/fsdd-study); a finished run (metrics.json present) is skipped,
so the script is resumable. With --workers 2 each run uses one torch thread: on 2 cores two
small-model runs side by side finish sooner than one after the other with two threads each.
Results (means, spreads, per seed) are written to bench/results/fsdd_<study>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from audioprune.fileio import read_json, write_json

ROOT = Path(__file__).resolve().parents[1]
FSDD = Path(os.environ.get("FSDD_ROOT", ROOT.parent / "shared" / "datasets" / "fsdd"))
SEEDS = (0, 1, 2)
ALL_SEEDS = tuple(range(10))  # the summary takes every seed that was run (--seeds)
CRITERIA = ("wdc", "betweenness", "l1", "fpgm", "random")
# criterion variants: how `audioprune prune` is asked for them (any other name: --criterion NAME)
VARIANTS = {
    # betweenness with ties in index order (what "betweenness" did before its degree tie-break)
    "betweenness-index": ["--criterion", "betweenness", "--criterion-arg", "tie_break=index"],
    # betweenness with the authors' edge weights (the raw signed cosine as networkx weight)
    "betweenness-compat": ["--criterion", "betweenness", "--paper-compat"],
}
WITH_INDEX_TIES = CRITERIA + ("betweenness-index",)
# (model, split, parent training epochs, fine-tuning epochs, criteria). The 5-epoch studies came
# first. On "speaker:nicolas" the validation clips come from the training speakers, so the best
# epoch is picked blind to speaker generalisation; "speaker:nicolas,val:theo" holds out a
# validation speaker (theo) as well, so that choice measures what the test measures. The 10-epoch
# studies use the prune default of 10 fine-tuning epochs; the 30-epoch ones ask whether the gaps
# between criteria close with longer fine-tuning.
STUDIES = [
    ("dcase21net", "official", 40, 5, WITH_INDEX_TIES),
    ("dcase21net", "speaker:nicolas", 20, 5, WITH_INDEX_TIES),
    ("qdcase21net", "official", 40, 5, ("wdc", "l1")),
    ("dcase21net", "speaker:nicolas,val:theo", 20, 10,
     WITH_INDEX_TIES + ("betweenness-compat",)),
    ("dcase21net", "official", 40, 10, WITH_INDEX_TIES),
    ("qdcase21net", "official", 40, 10, ("wdc", "l1")),
    # longer fine-tuning (the paper fine-tunes far longer than 10 epochs), on the same parents
    ("dcase21net", "speaker:nicolas,val:theo", 20, 30, ("wdc", "betweenness", "random")),
    ("dcase21net", "official", 40, 30, ("wdc", "betweenness", "random")),
]


@dataclass
class Job:
    out: Path
    argv: list[str]
    needs: list[Path] = field(default_factory=list)

    def done(self) -> bool:
        return (self.out / "metrics.json").exists()


def train_job(runs: Path, model: str, split: str, epochs: int, seed: int) -> Job:
    tag = split.replace(":", "-").replace(",", "-")
    out = runs / f"{model}-{tag}-e{epochs}-s{seed}"
    return Job(out, ["train", "--model", model, "--dataset", "fsdd", "--data-root", str(FSDD),
                     "--split", split, "--epochs", str(epochs), "--seed", str(seed),
                     "--out", str(out), "--no-progress"])


FINETUNE_EPOCHS = 5  # lr = parent's / 10 (the prune default); short, as CPU time is scarce here


def prune_job(parent: Path, criterion: str, seed: int, ratios: str = "C1=0.5,C2=0.5",
              epochs: int = FINETUNE_EPOCHS) -> Job:
    suffix = "" if epochs == 5 else f"-ft{epochs}"  # the 5-epoch runs came first, unsuffixed
    out = parent.parent / f"{parent.name}-{criterion}-{ratios.replace(',', '_').replace('=', '')}{suffix}"
    how = VARIANTS.get(criterion, ["--criterion", criterion])
    return Job(out, ["prune", str(parent), *how, "--ratios", ratios,
                     "--finetune-epochs", str(epochs), "--seed", str(seed), "--out", str(out),
                     "--no-progress"], needs=[parent])


def qcnn_jobs(runs: Path) -> list[Job]:
    return [train_job(runs, m, "official", 40, s) for m in ("dcase21net", "qdcase21net")
            for s in SEEDS]


def study_name(model: str, split: str, ft_epochs: int) -> str:
    return f"{model} {split}" + (f" ft{ft_epochs}" if ft_epochs != 5 else "")


def prune_jobs(runs: Path, seeds: tuple[int, ...] = SEEDS, only: str | None = None,
               criteria_only: tuple[str, ...] | None = None) -> list[Job]:
    """Every study's parents and prunes (the QCNN twin: whole quaternions, mean aggregate);
    with `only`, the studies whose name matches that regular expression; with `criteria_only`,
    those criteria."""
    jobs: list[Job] = []
    for model, split, epochs, ft_epochs, criteria in STUDIES:
        if only and not re.search(only, study_name(model, split, ft_epochs)):
            continue
        for s in seeds:
            parent = train_job(runs, model, split, epochs, s)
            jobs += [parent] if parent.out not in {j.out for j in jobs} else []
            jobs += [prune_job(parent.out, c, s, epochs=ft_epochs) for c in criteria
                     if not criteria_only or c in criteria_only]
    return jobs


def _running_elsewhere(out: Path) -> bool:
    """A run of this directory started by an earlier invocation of this script is still going."""
    found = subprocess.run(["pgrep", "-f", "--", f"--out {out}( |$)"], capture_output=True, text=True)
    return bool(found.stdout.strip())


def run_job(job: Job, log_dir: Path, threads: int) -> str:
    if job.done():
        return f"skip {job.out.name}"
    while _running_elsewhere(job.out):
        time.sleep(10)
    if job.done():
        return f"finished elsewhere {job.out.name}"
    while not all((p / "metrics.json").exists() for p in job.needs):
        time.sleep(10)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    log = log_dir / f"{job.out.name}.log"
    start = time.perf_counter()
    cmd = [sys.executable, "-m", "audioprune", *job.argv]
    if job.out.exists() and not job.done():  # an interrupted run: continue it
        verb = job.argv[0]
        cmd = [sys.executable, "-m", "audioprune", verb, "--resume", str(job.out), "--no-progress"]
    with open(log, "a") as fh:
        rc = subprocess.call(cmd, stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    return f"{'done' if rc == 0 else f'FAILED rc={rc}'} {job.out.name} {time.perf_counter() - start:.0f}s"


def priority(job: Job) -> tuple:
    """Speaker-independent runs first (where criteria differ), then dcase21net's official-split
    pruning, then the quaternion twin; within each, seed order, parents before their prunes."""
    name = job.out.name
    group = 0 if "speaker" in name else (1 if name.startswith("dcase21net") else 2)
    seed = int(name.split("-s")[-1].split("-")[0]) if "-s" in name else 0
    return (group, seed, bool(job.needs))


class JobQueue:
    """Workers take the highest-priority job whose parent run is finished, so a pruning run
    starts as soon as its parent exists instead of behind every other parent."""

    def __init__(self, jobs: list[Job]) -> None:
        self.jobs = sorted(jobs, key=priority)
        self.claimed: set[Path] = set()
        self.lock = threading.Lock()

    def _next(self) -> Job | None:
        with self.lock:
            pending = [j for j in self.jobs if j.out not in self.claimed]
            if not pending:
                return None
            ready = [j for j in pending if all((p / "metrics.json").exists() for p in j.needs)]
            # another invocation of this script on the same runs: take what it is not running
            free = [j for j in ready if j.done() or not _running_elsewhere(j.out)]
            job = (free or ready or pending)[0]  # nothing ready: wait on the first (run_job polls)
            self.claimed.add(job.out)
            return job

    def work(self, log_dir: Path, threads: int) -> None:
        while (job := self._next()) is not None:
            print(run_job(job, log_dir, threads), flush=True)


def mean_sd(values: list[float]) -> dict[str, float]:
    return {"mean": statistics.fmean(values), "sd": statistics.stdev(values) if len(values) > 1
            else 0.0, "n": len(values), "values": values}


def load(path: Path) -> dict | None:
    p = path / "metrics.json"
    return json.loads(p.read_text()) if p.exists() else None


def summarise_qcnn(runs: Path) -> dict:
    out: dict = {}
    for model in ("dcase21net", "qdcase21net"):
        ms = [m for s in SEEDS if (m := load(train_job(runs, model, "official", 40, s).out))]
        if ms:
            out[model] = {"accuracy": mean_sd([m["accuracy"] for m in ms]),
                          "params": ms[0]["params"], "macs": ms[0]["macs"]}
    return out


def summarise_prune(runs: Path) -> dict:
    out: dict = {}
    for model, split, epochs, ft_epochs, criteria in STUDIES:
        parents = {s: train_job(runs, model, split, epochs, s).out for s in ALL_SEEDS}
        parent_ms = [m for p in parents.values() if (m := load(p))]
        if not parent_ms:
            continue
        block: dict = {"finetune_epochs": ft_epochs,
                       "parent": {"accuracy": mean_sd([m["accuracy"] for m in parent_ms]),
                                  "params": parent_ms[0]["params"], "macs": parent_ms[0]["macs"]}}
        for c in criteria:
            ms = [m for s, p in parents.items()
                  if (m := load(prune_job(p, c, s, epochs=ft_epochs).out))]
            if not ms:
                continue
            block[c] = {
                "before_finetune": mean_sd([m["before_finetune"]["accuracy"] for m in ms]),
                "after_finetune": mean_sd([m["accuracy"] for m in ms]),
                "drop_points": mean_sd([100 * (m["parent"]["accuracy"] - m["accuracy"]) for m in ms]),
                "params": ms[0]["params"], "macs": ms[0]["macs"],
                "params_reduction": ms[0]["reduction"]["params"],
                "macs_reduction": ms[0]["reduction"]["macs"],
            }
        if any(c in block for c in criteria):  # a study not run yet stays out
            out[study_name(model, split, ft_epochs)] = block
    return out


def _runs_in(block: dict) -> int:
    """How many runs a summary entry rests on (every accuracy mean_sd in it)."""
    if isinstance(block, dict):
        if "n" in block and "values" in block:
            return int(block["n"])
        return sum(_runs_in(v) for v in block.values())
    return 0


def keep_saved(saved: dict, fresh: dict, depth: int = 1, where: str = "") -> dict:
    """`fresh` over `saved`, entry by entry (`depth` levels down: study, then criterion), except
    where `fresh` rests on fewer runs: a summary made in a checkout whose runs/ is gone, or where
    only some criteria were re-run, must not erase what was measured before (runs/ is not kept in
    git, the JSON is)."""
    out = dict(saved)
    for name, block in fresh.items():
        old = saved.get(name)
        if depth > 1 and isinstance(old, dict) and isinstance(block, dict):
            out[name] = keep_saved(old, block, depth - 1, f"{where}{name} / ")
        elif old is not None and _runs_in(block) < _runs_in(old):
            print(f"kept the saved {where}{name}: it rests on {_runs_in(old)} runs, the runs "
                  f"here on {_runs_in(block)}", file=sys.stderr)
        else:
            out[name] = block
    return out


def pct(d: dict) -> str:
    return f"{100 * d['mean']:.2f} ± {100 * d['sd']:.2f} (n={d['n']})"


def print_tables(qcnn: dict, prune: dict) -> None:
    for model, r in qcnn.items():
        print(f"{model:12s} test accuracy {pct(r['accuracy'])}  params {r['params']:,}  "
              f"MACs {r['macs']:,}")
    for study, block in prune.items():
        p = block["parent"]
        print(f"\n{study} ({block['finetune_epochs']} fine-tuning epochs): parent accuracy {pct(p['accuracy'])}, params {p['params']:,}, "
              f"MACs {p['macs']:,}")
        for c, r in block.items():
            if c in ("parent", "finetune_epochs"):
                continue
            print(f"  {c:12s} before FT {pct(r['before_finetune'])}  after FT "
                  f"{pct(r['after_finetune'])}  drop {r['drop_points']['mean']:.2f} pts  "
                  f"params -{100 * r['params_reduction']:.1f}%  MACs -{100 * r['macs_reduction']:.1f}%")


def markdown(prune: dict) -> str:
    """The pruning studies as Markdown tables (what README.md shows)."""
    out = []
    for study, block in prune.items():
        p = block["parent"]
        seeds = p["accuracy"]["n"]
        out.append(f"**{study}** ({block['finetune_epochs']} fine-tuning epochs; parent "
                   f"{100 * p['accuracy']['mean']:.1f} ± {100 * p['accuracy']['sd']:.1f} %, "
                   f"{seeds} seeds)\n")
        out.append("| criterion | before fine-tuning % | after fine-tuning % | drop (points), mean | "
                   "drop per seed | params | MACs |")
        out.append("|---|---|---|---|---|---|---|")
        for c, r in block.items():
            if c in ("parent", "finetune_epochs"):
                continue
            b, a, d = r["before_finetune"], r["after_finetune"], r["drop_points"]
            out.append(f"| {c} | {100 * b['mean']:.1f} ± {100 * b['sd']:.1f} | {100 * a['mean']:.1f} ± "
                       f"{100 * a['sd']:.1f} | {d['mean']:.2f} | "
                       f"{', '.join(f'{v:+.1f}' for v in d['values'])} | "
                       f"-{100 * r['params_reduction']:.1f}% | -{100 * r['macs_reduction']:.1f}% |")
        out.append("")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("study", choices=["qcnn", "prune", "all", "summary"])
    ap.add_argument("--runs", type=Path, default=ROOT / "runs" / "fsdd-study")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--markdown", action="store_true", help="also print the pruning tables as "
                    "Markdown")
    ap.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    ap.add_argument("--only", help="prune: only the studies whose name matches this regular "
                    "expression, e.g. 'val:theo ft10' or '^dcase21net official ft10'")
    ap.add_argument("--criteria", nargs="+", help="prune: only these criteria (the summary "
                    "keeps the saved results of the others)")
    ap.add_argument("--threads", type=int, default=None,
                    help="torch threads per run (default: cores / workers)")
    args = ap.parse_args()
    if not FSDD.exists():
        sys.exit(f"FSDD not found at {FSDD}: set FSDD_ROOT to the free-spoken-digit-dataset folder")
    args.runs.mkdir(parents=True, exist_ok=True)
    if args.study != "summary":
        jobs = {"qcnn": lambda runs: qcnn_jobs(runs),
                "prune": lambda runs: prune_jobs(runs, tuple(args.seeds), args.only,
                                                 tuple(args.criteria or ()))}
        todo: list[Job] = []
        for name in (("qcnn", "prune") if args.study == "all" else (args.study,)):
            todo += [j for j in jobs[name](args.runs) if j.out not in {t.out for t in todo}]
        threads = args.threads or max(1, (os.cpu_count() or 2) // args.workers)
        queue = JobQueue(todo)
        with ThreadPoolExecutor(args.workers) as pool:
            for _ in range(args.workers):
                pool.submit(queue.work, args.runs, threads)
    qcnn, prune = summarise_qcnn(args.runs), summarise_prune(args.runs)
    results = ROOT / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    merged = []
    for name, data, depth in (("fsdd_qcnn", qcnn, 1), ("fsdd_prune", prune, 2)):
        path = results / f"{name}.json"
        data = keep_saved(read_json(path) if path.is_file() else {}, data, depth)
        if data:
            write_json(path, data)
        merged.append(data)
    qcnn, prune = merged
    print_tables(qcnn, prune)
    if args.markdown:
        print("\n" + markdown(prune))


if __name__ == "__main__":
    main()
