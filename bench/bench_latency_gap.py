"""Where the time of a pruned model goes, and what closes the gap between its MAC ratio and its
latency ratio (issue 16, item 5).

Four parts, all measured in one process, round-robin (bench/benchlib.py), at --threads (default 1):

  grid      one 7x7 convolution on dcase21net's 101 x 40 features at batch 32, input channels x
            output channels, in ONNX Runtime and PyTorch eager: does time follow the MACs, or the
            output channels rounded up to the CPU's SIMD lanes (measure/blocking.py)?
  per-op    ONNX Runtime's own profile (per node, median over runs) of dcase21net and its C1+C2
            50 % model at batch 32, beside each conv's MACs and blocked MACs.
  settings  the models below under every runtime setting worth trying: ONNX Runtime graph
            optimisation all / extended / basic (all = the NCHWc layout transformer), PyTorch
            eager plain, channels-last, and torch.compile (inductor) - batch 1 and 32.
  models    dcase21net and cnn6 (FSDD front end, random weights: latency does not depend on the
            values), each with pruned variants: the C1+C2 50 % model of the QCNN paper
            (dcase21net), a uniform plan at 50 % of the MACs, and the same budget with
            --round-to the SIMD lanes (widths on block boundaries). For every one: the MAC ratio,
            the blocked-MAC ratio, the latency ratio and the realised share
            (1 - latency ratio) / (1 - MAC ratio), also against blocked MACs.

    .venv/bin/python bench/bench_latency_gap.py          # writes bench/results/latency_gap.json
    .venv/bin/python bench/bench_latency_gap.py --quick  # 2 rounds, no torch.compile, quick/
"""

from __future__ import annotations

import argparse
import copy
import io
import json
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

import audioprune as ap
from audioprune.data.registry import get_dataset_info
from audioprune.measure.blocking import blocked_macs, simd_lanes
from audioprune.measure.onnx_export import export_onnx, inference_model
from audioprune.models.registry import create_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402

FE = get_dataset_info("fsdd").frontend
BATCHES = (1, 32)
ORT_LEVELS = ("all", "extended", "basic")


def ort_session(data: bytes, threads: int, level: str = "all", profile: str | None = None) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.log_severity_level = 3
    opts.graph_optimization_level = {
        "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC}[level]
    if profile:
        opts.enable_profiling = True
        opts.profile_file_prefix = profile
    return ort.InferenceSession(data, sess_options=opts, providers=["CPUExecutionProvider"])


# ------------------------------------------------------------------------------ grid


def conv_grid(threads: int, rounds: int, lanes: int) -> dict[str, Any]:
    """ms of one 7x7 conv (+ReLU) at batch 32 for input x output channel counts."""
    fns: dict[str, Callable[[], Any]] = {}
    cells = []
    for cin in (8, 16):
        for cout in (4, 8, 12, 16, 20, 24, 32):
            torch.manual_seed(0)
            conv = nn.Sequential(nn.Conv2d(cin, cout, 7, padding=3), nn.ReLU()).eval()
            x = torch.randn(32, cin, 101, 40)
            buf = io.BytesIO()
            torch.onnx.export(conv, (x,), buf, input_names=["x"], dynamo=False)
            session = ort_session(buf.getvalue(), threads)
            xn = x.numpy()
            fns[f"ort {cin}x{cout}"] = lambda s=session, xn=xn: s.run(None, {"x": xn})
            fns[f"eager {cin}x{cout}"] = lambda c=conv, x=x: c(x)
            cells.append((cin, cout))
    with torch.inference_mode():
        timed = benchlib.round_robin(fns, rounds=rounds, budget_s=0.15)
    out = []
    for cin, cout in cells:
        macs = 32 * cin * cout * 49 * 101 * 40
        blocked = 32 * cin * (-(-cout // lanes) * lanes) * 49 * 101 * 40
        out.append({"c_in": cin, "c_out": cout, "macs": macs, "blocked_macs": blocked,
                    "ort_ms": timed.ms(f"ort {cin}x{cout}", cpu=True),
                    "eager_ms": timed.ms(f"eager {cin}x{cout}", cpu=True)})
    return {"cells": out, "batch": 32, "kernel": "7x7", "features": [101, 40]}


# ------------------------------------------------------------------------------ models


def _widths(model: nn.Module, x: torch.Tensor) -> str:
    graph = ap.pruning.engine.PruningGraph(model, x, "classify")
    return "/".join(str(layer.width) for layer in graph.layers().values())


def variants(arch: str, lanes: int) -> dict[str, nn.Module]:
    torch.manual_seed(0)
    parent = create_model(arch, 10, frontend=FE).eval()
    x = parent.example_features()
    out: dict[str, nn.Module] = {"parent": parent}
    if arch == "dcase21net":
        m = copy.deepcopy(parent)
        ap.prune(m, x, "l1", ap.Plan(ratios={"C1": 0.5, "C2": 0.5}), forward_fn="classify")
        out["C1+C2 50%"] = m
    for label, kw in (("MACs 50%", {}), (f"MACs 50%, round to {lanes}", {"round_to": lanes})):
        m = copy.deepcopy(parent)
        try:
            ap.prune(m, x, "l1", ap.Plan(target_macs=0.5), forward_fn="classify", **kw)
        except ValueError as exc:  # a budget the aligned widths cannot reach
            print(f"{arch} {label}: {exc}")
            continue
        out[label] = m
    return out


def _compiled(deploy: nn.Module) -> Callable[[torch.Tensor], Any] | None:
    try:
        fn = torch.compile(deploy.classify, dynamic=False)
        return fn
    except Exception as exc:  # noqa: BLE001 - a toolchain problem is a result, not a crash
        print(f"torch.compile unavailable: {exc}")
        return None


def time_models(arch: str, models: dict[str, nn.Module], threads: int, rounds: int,
                lanes: int, compile_: bool) -> dict[str, Any]:
    x1 = models["parent"].example_features()
    info: dict[str, Any] = {}
    for name, m in models.items():
        info[name] = {"widths": _widths(m, x1), "macs": ap.count(m, x1, "classify").macs,
                      "blocked_macs": blocked_macs(m, x1, "classify", lanes).macs,
                      "params": ap.count(m, x1, "classify").params}
    timings: dict[str, dict[str, float]] = {name: {} for name in models}
    for batch in BATCHES:
        x = x1.repeat(batch, 1, 1, 1)
        xn = x.numpy()
        xcl = x.contiguous(memory_format=torch.channels_last)
        fns: dict[str, Callable[[], Any]] = {}
        for name, m in models.items():
            deploy = inference_model(m)
            data = export_onnx(m)
            fns[f"{name}|eager"] = lambda d=deploy: d.classify(x)
            cl = copy.deepcopy(deploy).to(memory_format=torch.channels_last)
            fns[f"{name}|eager channels-last"] = lambda d=cl: d.classify(xcl)
            if compile_:
                fn = _compiled(copy.deepcopy(deploy))
                if fn is not None:
                    try:
                        with torch.inference_mode():
                            fn(x)  # compile outside the timing
                        fns[f"{name}|eager torch.compile"] = lambda f=fn: f(x)
                    except Exception as exc:  # noqa: BLE001
                        print(f"torch.compile failed on {arch} {name}: {exc}")
            for level in ORT_LEVELS:
                s = ort_session(data, threads, level)
                fns[f"{name}|onnxruntime {level}"] = lambda s=s: s.run(None, {"features": xn})
        with torch.inference_mode():
            timed = benchlib.round_robin(fns, rounds=rounds, budget_s=0.15)
        for key in fns:
            name, setting = key.split("|")
            timings[name][f"{setting} b{batch}"] = timed.ms(key, cpu=True)
    parent = timings["parent"]
    rows = {}
    for name in models:
        mac_ratio = info[name]["macs"] / info["parent"]["macs"]
        blocked_ratio = info[name]["blocked_macs"] / info["parent"]["blocked_macs"]
        rows[name] = {**info[name], "mac_ratio": round(mac_ratio, 4),
                      "blocked_mac_ratio": round(blocked_ratio, 4), "ms": timings[name],
                      "latency_ratio": {k: round(v / parent[k], 4) for k, v in timings[name].items()},
                      "realised": {k: _realised(v / parent[k], mac_ratio)
                                   for k, v in timings[name].items()},
                      "realised_vs_blocked": {k: _realised(v / parent[k], blocked_ratio)
                                              for k, v in timings[name].items()}}
    return rows


def _realised(latency_ratio: float, cost_ratio: float) -> float | None:
    return None if cost_ratio >= 0.999 else round((1 - latency_ratio) / (1 - cost_ratio), 4)


# ------------------------------------------------------------------------------ per op


def per_op(models: dict[str, nn.Module], threads: int, lanes: int) -> dict[str, Any]:
    """ONNX Runtime's per-node kernel time (median of 20 runs after 5) at batch 32."""
    x1 = models["parent"].example_features()
    x = x1.repeat(32, 1, 1, 1).numpy()
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, m in models.items():
            s = ort_session(export_onnx(m), threads, "all", profile=str(Path(tmp) / "p"))
            for _ in range(25):
                s.run(None, {"features": x})
            events = json.loads(Path(s.end_profiling()).read_text())
            nodes: dict[str, dict[str, Any]] = {}
            for e in events:
                if e.get("cat") == "Node" and e["name"].endswith("_kernel_time"):
                    node = e["name"][: -len("_kernel_time")]
                    nodes.setdefault(node, {"op": e["args"].get("op_name"), "us": []})["us"].append(e["dur"])
            per_node = [{"node": n, "op": d["op"], "us": float(statistics.median(d["us"][5:]))}
                        for n, d in nodes.items()]
            counts = ap.count(m, x1, "classify")
            blocked = blocked_macs(m, x1, "classify", lanes)
            out[name] = {"nodes": per_node, "total_us": round(sum(n["us"] for n in per_node), 1),
                         "conv_macs": {k: v.macs for k, v in counts.layers.items() if v.macs},
                         "conv_blocked_macs": {k: v for k, v in blocked.layers.items() if v}}
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=7)
    p.add_argument("--archs", nargs="+", default=["dcase21net", "cnn6"])
    p.add_argument("--no-compile", action="store_true")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", type=Path)
    args = p.parse_args(argv)
    if args.quick:
        args.rounds, args.no_compile = 2, True
    out = args.out or (benchlib.QUICK_RESULTS if args.quick else benchlib.RESULTS) / "latency_gap.json"
    torch.set_num_threads(args.threads)
    lanes = simd_lanes()
    start = benchlib.machine()
    print(f"SIMD lanes (fp32): {lanes} ({torch.backends.cpu.get_cpu_capability()})")
    result: dict[str, Any] = {"lanes": lanes, "cpu_capability": torch.backends.cpu.get_cpu_capability(),
                              "threads": args.threads, "rounds": args.rounds}
    result["grid"] = conv_grid(args.threads, args.rounds, lanes)
    for c in result["grid"]["cells"]:
        print(f"conv {c['c_in']:2d} -> {c['c_out']:2d}: ORT {c['ort_ms']:7.2f} ms, eager "
              f"{c['eager_ms']:7.2f} ms (MACs x{c['macs'] / 1e9:.2f}G, blocked {c['blocked_macs'] / 1e9:.2f}G)")
    result["models"] = {}
    for arch in args.archs:
        models = variants(arch, lanes)
        rows = time_models(arch, models, args.threads, args.rounds, lanes, not args.no_compile)
        result["models"][arch] = rows
        for name, r in rows.items():
            print(f"{arch} {name:24s} {r['widths']:>22s} MACs {r['mac_ratio']:.3f} blocked "
                  f"{r['blocked_mac_ratio']:.3f} | " + "  ".join(
                      f"{k} {v:.3f}" for k, v in r["latency_ratio"].items()))
        if arch == "dcase21net":
            result["per_op"] = per_op({k: models[k] for k in ("parent", "C1+C2 50%")}, args.threads,
                                      lanes)
    end = benchlib.machine()
    result["machine"] = {**start, "load_average_1min_at_end": end["load_average_1min"]}
    benchlib.save(out, result)
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
