"""fp32 against int8 on real recordings: accuracy, file size and ONNX Runtime latency (issue 16).

For every unit - FSDD's official split x --seeds, and leave-one-speaker-out folds x --loso-seeds -
the fp32 dcase21net parent (trained by the recipe runner, 20 epochs, when missing) is quantized
with `audioprune quantize`'s library call (runs.quantize), for each --methods
(static: QDQ per-channel, 8 calibration batches of training clips; dynamic). Accuracy is what
each run's metrics.json says: the int8 model's own accuracy measured by ONNX Runtime on the test
split, beside the fp32 ONNX model's on the same clips. Latency: the fp32 and int8 ONNX files
timed round-robin in this process (bench/benchlib.py) at batch 1 and 32, --threads threads.
Summary: mean and 95% interval over units of the paired change int8 - fp32 (accuracy points),
the size ratio and the latency ratios (audioprune.report.stats).

    .venv/bin/python bench/bench_quantize.py          # writes bench/results/quantize_fsdd.json
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np

from audioprune.fileio import read_json
from audioprune.measure.latency import ort_session
from audioprune.measure.quantize import FP32_ONNX, INT8_ONNX
from audioprune.report.stats import mean_ci, paired_difference

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402

EPOCHS = 20


def parent(workdir: Path, split: str, seed: int, data_root: Path) -> Path:
    """The fp32 parent of a unit; trained by the recipe runner when missing."""
    if split.startswith("fold"):
        fold = int(split[4:])
        run = benchlib.ROOT / "runs" / "bench-criteria" / f"dcase21net-fold{fold}-e{EPOCHS}-s{seed}"
        return benchlib.train_parent(run, "dcase21net", f"fold:{fold}", EPOCHS, seed, data_root)
    run = workdir / f"dcase21net-official-e{EPOCHS}-s{seed}"
    return benchlib.train_parent(run, "dcase21net", "official", EPOCHS, seed, data_root)


def quantized(run: Path, method: str, workdir: Path) -> Path:
    """`audioprune quantize RUN --out RUN-int8-METHOD --method METHOD` (the library call)."""
    from audioprune.runs.quantize import quantize_run

    out = workdir / f"{run.name}-int8-{method}"
    if not (out / "metrics.json").is_file():
        if out.exists():  # an interrupted one: quantizing takes seconds, do it again
            shutil.rmtree(out)
        print(f"quantizing {run} ({method}) -> {out}", flush=True)
        quantize_run(run, out, method=method)
    return out


def latency(runs: dict[str, Path], model_run: Path, threads: int,
            rounds: int) -> dict[str, dict[str, float]]:
    """ms per call of each ONNX file at batch 1 and 32, round-robin, on features shaped as
    `model_run`'s; {label: {"b1": ms, ...}}."""
    import torch

    from audioprune.runs.run_dir import load_model

    model, _ = load_model(model_run)
    x1 = model.example_features().numpy()
    out: dict[str, dict[str, float]] = {k: {} for k in runs}
    for batch in (1, 32):
        x = np.ascontiguousarray(np.repeat(x1, batch, axis=0))
        fns = {}
        for label, path in runs.items():
            s = ort_session(path.read_bytes(), threads)
            fns[label] = lambda s=s: s.run(None, {s.get_inputs()[0].name: x})
        with torch.inference_mode():
            timed = benchlib.round_robin(fns, rounds=rounds, budget_s=0.1)
        for label in runs:
            out[label][f"b{batch}"] = timed.ms(label, cpu=True)
    return out


def _ci(values: list[float]) -> dict[str, Any]:
    iv = mean_ci(values)
    return {"mean": iv.mean, "ci": [iv.low, iv.high], "n": iv.n}


def _paired(a: dict[str, float], b: dict[str, float]) -> dict[str, Any]:
    d = paired_difference(a, b)
    return {"mean": d.interval.mean, "ci": [d.interval.low, d.interval.high], "n": d.interval.n,
            "wilcoxon_p": d.wilcoxon_p, "sign_p": d.sign_p, "significant": d.significant}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--folds", type=int, nargs="*", default=[1, 2, 3, 4, 5, 6])
    p.add_argument("--loso-seeds", type=int, nargs="+", default=[0])
    p.add_argument("--methods", nargs="+", default=["static", "dynamic"])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--data-root", type=Path, default=benchlib.FSDD)
    p.add_argument("--workdir", type=Path, default=benchlib.ROOT / "runs" / "bench-quantize")
    p.add_argument("--out", type=Path, default=benchlib.RESULTS / "quantize_fsdd.json")
    args = p.parse_args(argv)
    args.workdir.mkdir(parents=True, exist_ok=True)
    start = benchlib.machine()
    units = [("official", s) for s in args.seeds] + \
        [(f"fold{k}", s) for k in args.folds for s in args.loso_seeds]
    records = []
    for split, seed in units:
        fp32 = parent(args.workdir, split, seed, args.data_root)
        fp32_metrics = read_json(fp32 / "metrics.json")
        qruns = {m: quantized(fp32, m, args.workdir) for m in args.methods}
        files = {"fp32": qruns[args.methods[0]] / FP32_ONNX}
        files.update({m: q / INT8_ONNX for m, q in qruns.items()})
        ms = latency(files, fp32, args.threads, args.rounds)
        rec: dict[str, Any] = {"unit": f"{split}-s{seed}", "split": split, "seed": seed,
                               "parent": str(fp32.relative_to(benchlib.ROOT)),
                               "fp32_accuracy": fp32_metrics["accuracy"],
                               "fp32_onnx_bytes": files["fp32"].stat().st_size,
                               "fp32_ms": ms["fp32"], "int8": {}}
        for m, q in qruns.items():
            qm = read_json(q / "metrics.json")
            rec["int8"][m] = {
                "run": str(q.relative_to(benchlib.ROOT)), "accuracy": qm["accuracy"],
                "fp32_onnx_accuracy": qm["fp32_onnx"]["accuracy"], "bytes": qm["size_bytes"],
                "size_ratio": qm["size_ratio"], "ms": ms[m],
                "latency_ratio": {b: round(ms[m][b] / ms["fp32"][b], 4) for b in ms[m]}}
            print(f"{rec['unit']:16s} {m:7s} fp32 {100 * qm['fp32_onnx']['accuracy']:.1f}% -> int8 "
                  f"{100 * qm['accuracy']:.1f}%  size {qm['size_ratio']:.3f}  latency b1 "
                  f"{rec['int8'][m]['latency_ratio']['b1']:.2f} b32 "
                  f"{rec['int8'][m]['latency_ratio']['b32']:.2f}", flush=True)
        records.append(rec)
    summary = {}
    for protocol in ("official", "loso"):
        recs = [r for r in records if (r["split"] == "official") == (protocol == "official")]
        if not recs:
            continue
        for m in args.methods:
            fp32 = {r["unit"]: r["int8"][m]["fp32_onnx_accuracy"] for r in recs}
            int8 = {r["unit"]: r["int8"][m]["accuracy"] for r in recs}
            summary[f"{protocol} {m}"] = {
                "units": len(recs), "fp32": _ci(list(fp32.values())),
                "int8": _ci(list(int8.values())), "int8_minus_fp32": _paired(int8, fp32),
                "size_ratio": _ci([r["int8"][m]["size_ratio"] for r in recs]),
                "latency_ratio_b1": _ci([r["int8"][m]["latency_ratio"]["b1"] for r in recs]),
                "latency_ratio_b32": _ci([r["int8"][m]["latency_ratio"]["b32"] for r in recs])}
    end = benchlib.machine()
    benchlib.save(args.out, {"model": "dcase21net", "epochs": EPOCHS, "threads": args.threads,
                             "methods": args.methods, "units": records, "summary": summary,
                             "machine": {**start, "load_average_1min_at_end": end["load_average_1min"]}})
    for key, s in summary.items():
        d = s["int8_minus_fp32"]
        print(f"{key:18s} n={s['units']} int8 - fp32 {100 * d['mean']:+.2f} pts "
              f"[{100 * d['ci'][0]:+.2f}, {100 * d['ci'][1]:+.2f}]  size {s['size_ratio']['mean']:.3f}"
              f"  latency b1 {s['latency_ratio_b1']['mean']:.2f} b32 {s['latency_ratio_b32']['mean']:.2f}")
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
