"""`make bench`: the quick peer benchmarks of issue 7, one after the other, in one command.

Each runs as its own process (`bench/<script>.py --quick ...`) so one failing does not stop the
rest; results go to bench/results/quick/ and never overwrite the full runs in bench/results/
(which BENCHMARKS.md is built from; `python bench/write_benchmarks.py` rebuilds its tables).
About 10 minutes on a quiet 2-core machine, most of it training the FSDD parent of the criteria
recipe's quick variant the first time (its runs in runs/fsdd-loso-quick are reused after).

The criteria recipe needs the real Free Spoken Digit Dataset at ../shared/datasets/fsdd (or
$FSDD_ROOT); without it that benchmark is skipped, and says so, and the others still run.

    .venv/bin/python bench/run_quick.py            # or: make bench
    .venv/bin/python bench/run_quick.py --only masks speedup
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402

Q = benchlib.QUICK_RESULTS
BENCHES: dict[str, tuple[list[str], bool]] = {  # name -> (arguments, needs FSDD)
    "centrality": (["bench_centrality.py", "--sizes", "64", "256", "--out", str(Q / "centrality.json")], False),
    "quaternion": (["bench_quaternion.py", "--quick", "--threads", "1", "--out",
                    str(Q / "quaternion.json")], False),
    "masks": (["bench_masks.py", "--quick"], False),
    "speedup": (["bench_speedup.py", "--quick"], False),
    "criteria": (["benchmark.py", "recipes/fsdd/criteria.yaml", "--variant", "quick", "--jobs", "1",
                  "--out", str(Q / "fsdd-criteria-quick.json")], True),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", nargs="+", choices=list(BENCHES), default=list(BENCHES))
    args = parser.parse_args(argv)
    here = Path(__file__).resolve().parent
    have_fsdd = benchlib.fsdd_available()
    if have_fsdd:
        print(f"FSDD found at {benchlib.FSDD}: the criteria recipe trains/uses a real parent on it")
    else:
        print(f"FSDD NOT FOUND at {benchlib.FSDD} (expected {benchlib.FSDD}/recordings): "
              f"the criteria recipe will be skipped; set FSDD_ROOT or put the dataset there")
    status: dict[str, str] = {}
    for name in args.only:
        argv_, needs_fsdd = BENCHES[name]
        if needs_fsdd and not have_fsdd:
            status[name] = "skipped (no FSDD)"
            continue
        print(f"\n=== {name}: {' '.join(argv_)}", flush=True)
        t0 = time.perf_counter()
        # from the repository root: the recipe's paths (data root, runs/) are relative to it
        rc = subprocess.run([sys.executable, str(here / argv_[0]), *argv_[1:]],
                            cwd=benchlib.ROOT).returncode
        took = time.perf_counter() - t0
        status[name] = f"ok ({took:.0f} s)" if rc == 0 else f"FAILED (exit {rc}, {took:.0f} s)"
    print("\nsummary")
    for name, s in status.items():
        print(f"  {name:<11} {s}")
    print(f"results: {Q}/ (JSON); the full runs behind "
          f"BENCHMARKS.md are in {benchlib.RESULTS}/")
    return 0 if all(not s.startswith("FAILED") for s in status.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
