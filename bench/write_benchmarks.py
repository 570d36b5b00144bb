"""Fill the tables of BENCHMARKS.md, README.md and docs/**/*.md from bench/results/.

Only the text between `<!-- BEGIN name -->` and `<!-- END name -->` markers is replaced; the
prose around the tables is written by people and left alone. A table whose JSON is missing says
which command produces it. Nothing here measures anything: every number comes from a JSON that a
benchmark script wrote.

    .venv/bin/python bench/write_benchmarks.py            # rewrites the documents in place
    .venv/bin/python bench/write_benchmarks.py --check    # exit 1 when it would change anything
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from audioprune.fileio import atomic_write, read_json

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402
import claims_table  # noqa: E402
from benchlib import table  # noqa: E402

# The documentation pages hold the same markers (docs/explanations/*.md, docs/benchmarks.md).
DOCS = [benchlib.ROOT / "BENCHMARKS.md", benchlib.ROOT / "README.md",
        *sorted((benchlib.ROOT / "docs").rglob("*.md"))]
R = benchlib.RESULTS


def _load(path: Path) -> dict[str, Any] | None:
    return read_json(path) if path.is_file() else None


def _missing(path: Path, command: str) -> str:
    shown = path.relative_to(benchlib.ROOT) if path.is_relative_to(benchlib.ROOT) else path
    return f"_No results yet ({shown} missing): run `{command}`._"


def _when(meta: dict[str, Any]) -> str:
    load = meta.get("load_average_1min") or meta.get("load_average_1min_at_start")
    end = meta.get("load_average_1min_at_end")
    parts = [f"measured {meta.get('date', '?')[:16].replace('T', ' ')} UTC"]
    if "threads" in meta:
        parts.append(f"{meta['threads']} thread(s)")
    if load is not None or end is not None:
        parts.append("1-min load average " + " -> ".join(f"{x:.1f}" for x in (load, end) if x is not None)
                     + f" on {meta.get('cpu_count', '?')} cores")
    return "_" + ", ".join(parts) + "._"


def _pct(x: float | None, sd: float | None = None) -> str:
    if x is None:
        return "-"
    return f"{100 * x:.1f}" + (f" ± {100 * sd:.1f}" if sd is not None else "")


# ------------------------------------------------------------------------------ sections


def _pct_ci(d: dict[str, Any] | None, mean_key: str = "mean", ci_key: str = "ci",
            signed: bool = True) -> str:
    if not d or d.get("n") == 0 or d.get(mean_key) is None:
        return "-"
    f = "+.1f" if signed else ".1f"
    lo, hi = d.get(ci_key) or [None, None]
    text = format(100 * d[mean_key], f)
    if lo is not None and hi is not None and lo != hi:
        text += f" [{100 * lo:{f}}, {100 * hi:{f}}]"
    return text + (" *" if d.get("significant") else "")


def speedup(path: Path, command: str) -> str:
    data = _load(path)
    if not data:
        return _missing(path, command)
    rts = [rt for rt in ("eager", "onnxruntime") if f"{rt}_b1" in next(iter(data["models"].values()))]
    headers = ["model", "widths", "params", "MACs / parent"]
    for rt in rts:
        headers += [f"{rt} b1", f"{rt} b32"]
    headers.append("realised saving, b32 (eager / ORT)")
    body = []
    for name, r in data["models"].items():
        row = [name, "/".join(str(w) for w in r["widths"].values()), f"{r['params']:,}",
               f"{r['macs_ratio']:.3f}"]
        for rt in rts:
            for b in (1, 32):
                t = r[f"{rt}_b{b}"]
                row.append(f"{t['ms']:.2f} ms, **{t['ratio']:.2f}** (cpu {t['cpu_ratio']:.2f})")
        real = [r[f"{rt}_b32"].get("realised") for rt in rts]
        row.append(" / ".join("-" if x is None else f"{100 * x:.0f} %" for x in real))
        body.append(row)
    meta = data["meta"]
    return "\n".join([table(headers, body), "",
                      f"Latency: median ms per call over {meta['rounds']} round-robin rounds; "
                      "bold: wall-time ratio to the parent (median of per-round ratios); cpu: the "
                      "same with process CPU time. Timed: " + meta.get("timed", "") + ".",
                      _when(meta)])


def masks(path: Path, command: str) -> str:
    data = _load(path)
    if not data:
        return _missing(path, command)
    out = []
    for res in data["results"]:
        kwargs = "".join(f" {k} {v}" for k, v in (res["kwargs"] or {}).items())
        out.append(f"**{res['model']}**{kwargs} ({res['weights']} weights), filter ratio "
                   f"{res['ratio']}, features {res['features']}\n")
        body = []
        for v, r in res["variants"].items():
            body.append([v, f"{r['params_stored']:,}", f"{r['nonzero_weights']:,}",
                         f"{r['macs']:,} ({r['macs_ratio']:.2f})"]
                        + [f"{r[f'latency_b{b}']['ms']:.2f} ms, **{r[f'latency_b{b}']['ratio']:.2f}** "
                           f"(cpu {r[f'latency_b{b}']['cpu_ratio']:.2f})" for b in (1, 32)])
        out.append(table(["variant", "stored params", "non-zero weights", "MACs (/ dense)",
                          "eager b1 (/ dense)", "eager b32 (/ dense)"], body))
        out.append("")
    out.append(_when(data["meta"]))
    return "\n".join(out)


def quaternion(path: Path, command: str) -> str:
    data = _load(path)
    if not data:
        return _missing(path, command)
    rows = data["rows"]
    train = [[f"{r['channels']}->{r['channels']}", "x".join(map(str, r["input"])),
              f"{r['qconv_ms']:.1f}", f"{r['conv_ms']:.1f}", f"**{r['ratio_q_over_real']:.2f}x**",
              f"{r['cpu_ratio_q_over_real']:.2f}x",
              *((f"{r['counts'][v]['params']:,}" for v in ("qconv", "conv")) if "counts" in r
                else ("-", "-")),
              f"{r['counts']['qconv']['macs']:,}" if "counts" in r else "-"]
             for r in rows if r["kind"] == "train"]
    infer = [[f"{r['channels']}->{r['channels']}", "x".join(map(str, r["input"])),
              f"{r['unfused_ms']:.2f}", f"{r['fused_ms']:.2f}", f"{r['real_ms']:.2f}",
              f"{r['unfused_over_real']:.2f}x", f"**{r['fused_over_real']:.2f}x**",
              f"{r['cpu_fused_over_real']:.2f}x",
              " / ".join(f"{r['counts'][v]['params']:,}" for v in ("unfused", "fused", "real"))
              if "counts" in r else "-"]
             for r in rows if r["kind"] == "infer"]
    out = ["Training step (forward + backward, one layer, batch 32), median ms\n",
           table(["layer", "input", "QConv2d", "Conv2d", "Q / real", "Q / real (cpu)",
                  "params Q", "params real", "MACs per example (both)"], train), "",
           "Inference, one CNN14 conv block (conv-BN-ReLU x2), median ms\n",
           table(["block", "input", "unfused Q", "fused Q", "real", "unfused / real",
                  "fused / real", "fused / real (cpu)", "params unfused / fused / real"], infer)]
    if data.get("models"):
        out += ["", "Whole models on the PANNs AudioSet front end (10 s at 32 kHz), counted on the "
                "meta device\n",
                table(["model", "classes", "params (learned)", "params (deployed, fused)",
                       "MACs per example"],
                      [[m["model"], m["classes"], f"{m['params']:,}", f"{m['params_deployed']:,}",
                        f"{m['macs']:,}"] for m in data["models"]])]
    out += ["", _when({**data["meta"], "load_average_1min": data["meta"].get("load_average_1min_at_start")})]
    return "\n".join(out)


def centrality(path: Path, command: str) -> str:
    data = _load(path)
    if not data:
        return _missing(path, command)

    def s(x: Any, spec: str = ".3f") -> str:
        return "skipped" if isinstance(x, str) else format(x, spec)

    def ratio(slow: Any, fast: Any) -> str:
        return f"{slow / fast:.0f}x" if not isinstance(slow, str) and fast else "-"

    rows = data["rows"]
    wdc = [[r["n"], "x".join(map(str, r["shape"])), s(r["wdc_s"]), s(r["networkx_wdc_s"]),
            ratio(r["networkx_wdc_s"], r["wdc_s"]), str(r.get("wdc_same_selection", "-"))]
           for r in rows]
    btw = [[r["n"], s(r["betweenness_exact_s"], ".2f"), s(r["networkx_betweenness_s"], ".2f"),
            ratio(r["networkx_betweenness_s"], r["betweenness_exact_s"]),
            str(r.get("betweenness_same_selection", "-")), s(r["betweenness_knn16_s"], ".2f"),
            f"{r['knn16_overlap_25']:.2f} / {r['knn16_overlap_50']:.2f}",
            s(r["compat_betweenness_s"], ".2f"), s(r["networkx_compat_betweenness_s"], ".2f"),
            str(r.get("compat_same_selection", "-"))] for r in rows]
    meta = data["meta"]
    return "\n".join([
        "Weighted degree (wdc), weights -> scores, seconds\n",
        table(["filters", "layer", "ours", "networkx (authors' code)", "speed-up", "same prune set"], wdc),
        "", "Betweenness, seconds (principled lengths 1 - |cos|; paper_compat: the raw signed cosine)\n",
        table(["filters", "ours exact", "networkx", "speed-up", "same prune set", "ours knn16",
               "knn16 overlap 25 % / 50 %", "ours paper_compat", "networkx paper_compat",
               "same prune set (compat)"], btw),
        "", "_" + ", ".join(f"{k} {v}" for k, v in meta.items()) + "._"])


def api_prune(path: Path, command: str) -> str:
    data = _load(path)
    if not data:
        return _missing(path, command)
    labels = {"tp-magnitude": "Torch-Pruning BasePruner + GroupMagnitudeImportance",
              "ap-l1": "audioprune.prune(model, feats, \"l1\", ratio=0.5)",
              "ap-wdc": "audioprune.prune(model, feats, \"wdc\", ratio=0.5)"}
    rows = [[labels.get(n, n), f"{r['wall_s']:.2f}", f"{r['cpu_s']:.2f}",
             f"**{r['ratio_to_tp']:.2f}**", ", ".join(f"{v:.2f}" for v in r["wall_all_s"]),
             f"{r['macs_ratio']:.4f}", f"{r['params_ratio']:.4f}"]
            for n, r in data["methods"].items()]
    meta = {**data["machine"], "threads": data["threads"]}
    return "\n".join([
        f"**{data['model']}**, {data['classes']} classes, {data['clip_seconds']} s clip, features "
        f"{data['features']}: {data['params']:,} parameters, {data['macs']:,} MACs; every prunable "
        f"layer at ratio {data['ratio']}, {data['rounds']} rounds round-robin\n",
        table(["method", "wall s (median)", "CPU s", "wall / Torch-Pruning", "wall s per round",
               "MACs after / before", "params after / before"], rows),
        "", _when(meta)])


def latency_gap(path: Path, command: str) -> str:
    data = _load(path)
    if not data:
        return _missing(path, command)
    lanes = data["lanes"]
    cells = data["grid"]["cells"]
    outs = sorted({c["c_out"] for c in cells})
    grid = []
    for cin in sorted({c["c_in"] for c in cells}):
        for runtime in ("ort", "eager"):
            row = {c["c_out"]: c for c in cells if c["c_in"] == cin}
            grid.append([f"{cin}", "ONNX Runtime" if runtime == "ort" else "PyTorch eager"] +
                        [f"{row[o][runtime + '_ms']:.1f}" for o in outs])
    settings = ["onnxruntime all", "onnxruntime extended", "eager", "eager channels-last",
                "eager torch.compile"]
    models = []
    for arch, rows in data["models"].items():
        for name, r in rows.items():
            if name == "parent":
                continue
            cells_ = []
            for s in settings:
                parts = []
                for b in ("b1", "b32"):
                    key = f"{s} {b}"
                    if key in r["latency_ratio"]:
                        real = r["realised"].get(key)
                        parts.append(f"{r['latency_ratio'][key]:.2f} ({_pct(real)} %)")
                cells_.append(" / ".join(parts) or "-")
            models.append([f"{arch} {name}", r["widths"], f"{r['mac_ratio']:.3f}",
                           f"{r['blocked_mac_ratio']:.3f}"] + cells_)
    parents = []
    for arch, rows in data["models"].items():
        ms = rows["parent"]["ms"]
        parents.append([arch, rows["parent"]["widths"]] + [
            " / ".join(f"{ms[f'{s} {b}']:.2f}" for b in ("b1", "b32") if f"{s} {b}" in ms) or "-"
            for s in settings])
    ops = []
    per_op = data.get("per_op") or {}
    if len(per_op) == 2:
        (pa, p), (ca, c) = list(per_op.items())
        def key(name: str) -> str:  # ORT renames a node when it leaves the NCHWc layout
            return name.removeprefix("node_").removesuffix("_nchwc")

        conv_nodes = {key(n["node"]): n for n in p["nodes"]}
        for node in c["nodes"]:
            if node["us"] < 100:
                continue
            before = conv_nodes.get(key(node["node"]))
            ops.append([node["op"], node["node"], f"{before['us']:.0f}" if before else "-",
                        f"{node['us']:.0f}", f"{node['us'] / before['us']:.2f}" if before else "new"])
        ops.append(["all nodes", "", f"{p['total_us']:.0f}", f"{c['total_us']:.0f}",
                    f"{c['total_us'] / p['total_us']:.2f}"])
        layer_rows = [[k, f"{p['conv_macs'][k]:,}", f"{c['conv_macs'][k]:,}",
                       f"{c['conv_macs'][k] / p['conv_macs'][k]:.2f}",
                       f"{c['conv_blocked_macs'][k] / p['conv_blocked_macs'][k]:.2f}"]
                      for k in p["conv_macs"] if k.startswith("conv")]
    meta = {**data["machine"], "threads": data["threads"]}
    out = [f"**One 7x7 convolution**, batch 32 on 101 x 40 features, ms (CPU time), by input "
           f"channels (rows) and output channels (columns); {data['cpu_capability']}: "
           f"{lanes} fp32 lanes\n",
           table(["in", "runtime"] + [f"out {o}" for o in outs], grid), "",
           f"**Pruned models against their parent**: latency ratio (realised share of the MAC "
           f"saving) at batch 1 / batch 32; blocked MACs = output widths rounded up to {lanes} "
           f"(measure/blocking.py)\n",
           table(["model", "widths", "MACs / parent", "blocked MACs / parent"] + settings, models),
           "", "Parents, ms at batch 1 / batch 32\n",
           table(["model", "widths"] + settings, parents)]
    if ops:
        out += ["", "**ONNX Runtime per node** (all optimisations: NCHWc), dcase21net -> its C1+C2 "
                "50 % model, batch 32, median µs per run\n",
                table(["op", "node", "parent µs", "pruned µs", "ratio"], ops), "",
                table(["layer", "parent MACs", "pruned MACs", "MAC ratio", "blocked-MAC ratio"],
                      layer_rows)]
    out += ["", _when(meta)]
    return "\n".join(out)


def _kb(n: float | None) -> str:
    return "-" if n is None else f"{n / 1e3:,.0f}"


def quantize(path: Path, command: str) -> str:
    """benchmark.py's record of a recipe with a `quantize:` section: each int8 copy against the
    fp32 run it came from, paired unit by unit, with the files' sizes."""
    data = _load(path)
    if not data or not any(m["kind"] == "quantized" for m in data.get("methods", [])):
        return _missing(path, command)
    by_label = {m["label"]: m for m in data["methods"]}
    units = sorted({u for m in data["methods"] for u in m["values"]})
    body = []
    for m in data["methods"]:
        if m["kind"] != "quantized":
            continue
        fp32 = by_label.get(m.get("parent_label") or "")
        body.append([m.get("parent_label") or m["parent_method"], m["criterion"], m["mean_ci_t"]["n"],
                     _iv(fp32["mean_ci_t"]) if fp32 else "-", _iv(m["mean_ci_t"]),
                     _iv(m.get("vs_parent_t"), signed=True),
                     _iv(fp32.get("uar_ci_t")) if fp32 else "-", _iv(m.get("uar_ci_t")),
                     _kb(m.get("size_bytes")), _kb(m.get("fp32_onnx_bytes")),
                     _kb(fp32.get("size_bytes")) if fp32 else "-"])
    return "\n".join([
        f"`{data['recipe']}` ({data['finished']} of {data['steps']} runs finished): "
        f"{len(units)} units ({', '.join(units)}). Test accuracy and unweighted average recall of "
        f"each int8 model run by ONNX Runtime, against the fp32 model it was quantized from in "
        f"PyTorch, mean [95% Student's t interval] over the units; int8 - fp32 paired on the same "
        f"units (points; * = the interval excludes 0); sizes in kB: the int8 ONNX file, the "
        f"fp32 ONNX file it was quantized from (the inference graph: batch norm folded, "
        f"quaternion layers fused into real convs) and the fp32 model.safetensors checkpoint.\n",
        table(["fp32 model", "int8", "units", "fp32 acc. %", "int8 acc. %",
               "int8 - fp32 (points)", "fp32 UAR %", "int8 UAR %", "int8 ONNX kB",
               "fp32 ONNX kB", "fp32 checkpoint kB"], body),
        "", _when(data["machine"])])


def sweeps(path: Path, command: str) -> str:
    data = _load(path)
    if not data:
        return _missing(path, command)
    first = next(iter(data["summary"]))
    rows = [[e, f"{s['wall_s']:.1f}", f"{s['speed_up']:.2f}",
             "yes" if s[f"identical_to_{first}"] else "**no**"] for e, s in data["summary"].items()]
    meta = {**data["machine"], "threads": data["threads_per_job"]}
    return "\n".join([
        f"{data['recipe']}: {len(next(iter(data['runs'].values())))} runs, parents "
        f"{data['epochs']} epochs, fine-tuning {data['finetune_epochs']} epochs; parallel executors "
        f"with {data['jobs']} jobs of {data['threads_per_job']} torch thread each\n",
        table(["executor", "wall s", f"speed-up vs {first}", f"metrics identical to {first}"],
              rows), "", _when(meta)])


def claims(path: Path, command: str) -> str:
    return claims_table.render(path)


# README's headline: the criteria benchmark of each dataset (bench/benchmark.py records).
HEADLINE = (("FSDD", R / "fsdd-criteria.json", "leave-one-speaker-out"),
            ("RAVDESS", R / "ravdess-criteria.json", "actor folds"))


def _tool(m: dict[str, Any]) -> str:
    return "Torch-Pruning" if m["criterion"].startswith("tp-") else "audioprune"


def headline(path: Path, command: str) -> str:
    """README's one table: per dataset and MAC budget, the best method of the criteria benchmark
    (every method at the same MACs and fine-tuning) with its interval, the runner-up, our best
    criterion and its paired difference to Torch-Pruning's best; then each claim of the papers
    with its verdict (bench/claims_table.py)."""
    body, sources = [], []
    for dataset, record_path, folds in HEADLINE:
        data = _load(record_path)
        if not data or not data.get("methods"):
            continue
        sources.append(f"`{record_path.relative_to(benchlib.ROOT)}` (`{data['command']}`, "
                       f"{data['finished']} of {data['steps']} runs)")
        # a method more than 2% under its MAC budget on some fold is not at the budget: left out
        plain = [m for m in data["methods"] if m["kind"] == "pruned" and not m["variant"]
                 and not m["missed_budget"]]
        for budget in sorted({m["budget"] for m in plain}, reverse=True):
            at = [m for m in plain if m["budget"] == budget]
            full = max(m["mean_ci_t"]["n"] for m in at)
            ranked = sorted((m for m in at if m["mean_ci_t"]["n"] == full),
                            key=lambda m: -m["mean_ci_t"]["mean"])
            ours = next((m for m in ranked if _tool(m) == "audioprune"), None)
            theirs = next((m for m in ranked if _tool(m) == "Torch-Pruning"), None)
            gap = None
            if ours is not None and theirs is not None:
                gap = (ours["vs"].get(theirs["label"]) or {}).get("t")

            def cell(m: dict[str, Any] | None) -> str:
                return "-" if m is None else f"`{m['criterion']}` {_iv(m['mean_ci_t'])}"
            best = ranked[0]
            body.append([f"{dataset} ({folds})", f"{budget:.0%}",
                         f"{full} of {len(data['folds'] or [])}", cell(best),
                         _iv(best.get("vs_parent_t"), signed=True),
                         cell(ranked[1]) if len(ranked) > 1 else "-", cell(ours),
                         "-" if gap is None else _iv(gap, signed=True)])
    if not body:
        return _missing(path, command)
    out = ["The criteria benchmark, `dcase21net` pruned to each MAC budget by every method and "
           "fine-tuned the same 5 epochs; test accuracy %, mean [95% Student's t interval] over "
           "the folds; the differences are paired over the same folds, in points (* = the "
           "interval excludes 0); a method that missed its budget on a fold is left out. From " + "; ".join(sources) + ":", "",
           table(["data", "MACs kept", "folds", "best method", "vs parent", "runner-up",
                  "best audioprune criterion", "it vs Torch-Pruning's best"], body), ""]
    claim_rows = claims_table.rows(R / "claims")
    out += ["The papers' claims, re-measured (`bench/results/claims/*.json`, from "
            f"`python bench/claims.py RECIPE`; {claims_table.DATA}):", "",
            table(["claim", "data", "paper", "verdict"], [[r[0], r[1], r[2], r[4]]
                                                         for r in claim_rows])]
    return "\n".join(out)


# ----------------------------------------------------------- recipe benchmarks (bench/benchmark.py)


def _iv(d: dict[str, Any] | None, signed: bool = False) -> str:
    """A mean [low, high] in points (x100) from benchmark.py's interval shape, * if significant."""
    if not d or not d.get("n") or d.get("mean") is None:
        return "-"
    f = "+.1f" if signed else ".1f"
    text = format(100 * d["mean"], f)
    if d.get("low") is not None and d["low"] != d["high"]:
        text += f" [{100 * d['low']:{f}}, {100 * d['high']:{f}}]"
    return text + (" *" if d.get("significant") else "")


def method_name(m: dict[str, Any]) -> str:
    """How a benchmark table names a method: its criterion (+KD) and variant, or what it is."""
    if m["scratch_of"]:
        return "from scratch" + (" + KD" if m["kind"] == "distilled" else "") + \
            " (the tp-magnitude widths)"
    if m["kind"] == "unpruned":
        return m["model"]
    return " ".join(x for x in (m["criterion"], m["variant"]) if x)


def _trained_on(counts: dict[str, int] | None) -> str:
    """The CPUs the runs were trained on, when any run recorded its CPU: the same seed trains
    to other weights on another CPU, so two records from different CPUs differ fold by fold."""
    if not counts or set(counts) == {"not recorded"}:
        return ""
    return " Trained on " + ", ".join(f"{cpu} ({n} runs)" for cpu, n in counts.items()) + "."


def recipe_benchmark(path: Path, command: str) -> str:
    """A benchmark.py record: per budget, every method's mean [95% CI] over the units, its
    paired difference to its parent and to the reference, costs and time."""
    data = _load(path)
    if not data or not data.get("methods"):
        return _missing(path, command)
    methods = data["methods"]
    refs = data.get("references") or []
    parents = [m for m in methods if m["kind"] == "unpruned" and not m["scratch_of"]]
    units = sorted({u for m in methods for u in m["values"]})
    spent = data.get("train_seconds_total")
    lines = [f"`{data['recipe']}` ({data['finished']} of {data['steps']} runs finished"
             + (f"; {spent / 3600:.1f} core-hours in the training loops" if spent else "") + "): "
             f"{len(units)} units ({', '.join(units)}). Per method: the mean over the units with "
             f"its 95% interval (Student's t), and paired differences on the same units (points; "
             f"* = the interval excludes 0) to its own parent and to "
             f"{' / '.join(refs) or 'the reference'} at the same budget and fine-tuning. Methods "
             f"more than 2% under their MAC budget on a unit are flagged, not hidden."
             + _trained_on(data.get("trained_on")), ""]
    if parents:
        lines.append(table(["parent", "units", "accuracy % [95% CI]", "UAR % [95% CI]",
                            "accuracy % per unit", "params", "MACs", "train s / run"],
                           [[m["model"], m["mean_ci_t"]["n"], _iv(m["mean_ci_t"]),
                             _iv(m.get("uar_ci_t")),
                             " / ".join(f"{100 * m['values'][u]:.1f}" for u in units
                                        if u in m["values"]),
                             f"{m['params']:,.0f}", f"{m['macs']:,.0f}",
                             f"{m['seconds_per_run']:.0f}"] for m in parents]))
        lines.append("")
    budgets = sorted({m["budget"] for m in methods if m.get("budget")}, reverse=True)
    for budget in budgets:
        rows = [m for m in methods if m.get("budget") == budget]
        for epochs in sorted({m["base_plan"] for m in rows}):
            group = [m for m in rows if m["base_plan"] == epochs]
            lines.append(f"**{epochs}** (MAC budget {budget:.0%} of the parent's)\n")
            body = []
            for m in sorted(group, key=lambda m: -m["mean_ci_t"]["mean"]):
                ref_cells = []
                for ref in refs:
                    pair = next((v["t"] for k, v in m["vs"].items()
                                 if k.split(" / ")[-1].startswith(ref + " @") or
                                 k.split(" / ")[-1].startswith(ref + "+kd @")), None)
                    ref_cells.append("-" if pair is None else _iv(pair, signed=True))
                src = m["vs"].get(m["scratch_of"] or "", {}).get("t") if m["scratch_of"] else None
                body.append([method_name(m), m["mean_ci_t"]["n"], _iv(m["mean_ci_t"]),
                             _iv(m.get("uar_ci_t")), _iv(m.get("vs_parent_t"), signed=True),
                             *ref_cells, "-" if src is None else _iv(src, signed=True),
                             f"{m['macs_ratio']:.3f}" if m.get("macs_ratio") else "-",
                             f"{m['params_ratio']:.3f}" if m.get("params_ratio") else "-",
                             f"{m['seconds_per_run']:.0f}" if m.get("seconds_per_run") else "-",
                             ", ".join(m["missed_budget"]) or "-"])
            lines.append(table(["method", "units", "accuracy % [95% CI]", "UAR % [95% CI]",
                                "vs parent (points)", *[f"vs {r} (points)" for r in refs],
                                "vs the pruned run it copies", "MACs / parent", "params / parent",
                                "s / run", "missed budget"], body))
            lines.append("")
    return "\n".join(lines).rstrip() + "\n\n" + _when(data["machine"])


# Issue 26's target, read off the heavy-budget records: (data, fine-tuning epochs, the records
# measured on one set of parents at those epochs)
HEAVY_TARGET = (("FSDD", 5, ("fsdd-heavy-ft5.json",)),
                ("FSDD", 15, ("fsdd-heavy-ft15.json", "fsdd-heavy-ft15-kd05.json")),
                ("RAVDESS", 5, ("ravdess-heavy-ft5.json",)),
                ("RAVDESS", 15, ("ravdess-heavy-ft15.json", "ravdess-heavy-ft15-kd05.json")))
TARGET_BUDGETS = (0.3, 0.15)
TARGET_LEAD, TARGET_PARENT_GAP = 0.01, 0.03  # ahead by 1 point; within 3 of the parent at 15 %


def _is_torch_pruning(m: dict[str, Any], refs: list[str]) -> bool:
    """Torch-Pruning's own method: one of the record's reference importances, one-shot, with
    plain fine-tuning (no KD, no resolution, no schedule)."""
    return m["criterion"] in refs and not m["variant"]


def _target_verdict(gap: dict[str, Any] | None, vs_parent: dict[str, Any] | None,
                    budget: float) -> str:
    if not gap or gap.get("low") is None:
        return "no interval"
    reasons = []
    if not (gap["mean"] >= TARGET_LEAD and gap["low"] > 0):
        reasons.append("not ahead by 1 point with the interval above 0")
    if budget == min(TARGET_BUDGETS) and (not vs_parent or vs_parent["mean"] < -TARGET_PARENT_GAP):
        reasons.append("more than 3 points under the parent")
    return "met" if not reasons else "not met: " + "; ".join(reasons)


def heavy_target(path: Path, command: str) -> str:
    """Issue 26's target at 30 % and 15 % of the MACs, record by record: Torch-Pruning's best
    (the reference importance with the higher mean), audioprune's best (the higher mean among
    every other pruning method of the records on the same parents: searched resolution,
    progressive pruning inside KD, KD fine-tuning), their paired difference as the record
    computed it, and the best method's distance to the parent."""
    body, sources = [], []
    for dataset, epochs, names in HEAVY_TARGET:
        records = [(n, _load(path / n)) for n in names]
        if any(data is None or not data.get("methods") for _, data in records):
            continue
        sources += [f"`{n}` ({data['finished']} of {data['steps']} runs)" for n, data in records]
        parents = {tuple(sorted(m["values"].items())) for _, data in records
                   for m in data["methods"] if m["kind"] == "unpruned" and not m["scratch_of"]}
        for budget in TARGET_BUDGETS:
            theirs, ours = [], []
            for _, data in records:
                refs = data.get("references") or []
                for m in data["methods"]:
                    if (m["kind"] != "pruned" or m["scratch_of"] or m.get("budget") != budget
                            or m["missed_budget"]):  # a miss is not at the budget: left out
                        continue
                    (theirs if _is_torch_pruning(m, refs) else ours).append(m)
            if not theirs or not ours:
                continue
            best_tp = max(theirs, key=lambda m: m["mean_ci_t"]["mean"])
            best = max(ours, key=lambda m: m["mean_ci_t"]["mean"])
            gap = (best["vs"].get(best_tp["label"]) or {}).get("t")
            verdict = ("records on different parents: not paired" if len(parents) != 1
                       else _target_verdict(gap, best.get("vs_parent_t"), budget))
            body.append([dataset, str(epochs), f"{budget:.0%}",
                         f"`{method_name(best_tp)}` {_iv(best_tp['mean_ci_t'])}",
                         f"`{method_name(best)}` {_iv(best['mean_ci_t'])}",
                         _iv(gap, signed=True), _iv(best.get("vs_parent_t"), signed=True),
                         verdict])
    if not body:
        return _missing(path / HEAVY_TARGET[0][2][0], command)
    return "\n".join([
        "Issue 26's target: at 30 % and at 15 % of the MACs, audioprune's best method ahead of "
        "Torch-Pruning's best by at least 1 point with the 95% interval above 0, on both datasets, "
        "at equal epochs; at 15 %, within 3 points of the parent (its mean). Per record: the "
        "best mean of each side, the paired difference (points, Student's t over the same "
        "folds, * = the interval excludes 0) and the audioprune method's distance to the parent. "
        "From " + ", ".join(sources) + " in bench/results/, written by `" + command + "`:", "",
        table(["data", "fine-tuning epochs", "MACs kept", "Torch-Pruning's best",
               "audioprune's best", "it vs Torch-Pruning's best", "it vs parent", "target"],
              body)])


def quaternion_modes(path: Path, command: str) -> str:
    """bench/bench_quaternion_modes.py's record: each criterion's accuracy in both quaternion
    modes right after pruning, their paired difference and the quaternions they share."""
    data = _load(path)
    if not data or not data.get("criteria") or data.get("benchmark") != "quaternion-modes":
        return _missing(path, command)
    parents = list(data["parents"].values())
    body = []
    for crit, c in sorted(data["criteria"].items(),
                          key=lambda kv: -(kv[1]["aggregate"]["mean_ci_t"]["mean"] or 0)):
        proof = c.get("same_by_proof_holds")
        body.append([crit, c["aggregate"]["mean_ci_t"]["n"], _iv(c["aggregate"]["mean_ci_t"]),
                     _iv(c["concat"]["mean_ci_t"]), _iv(c["concat_minus_aggregate"], signed=True),
                     "-" if c["shared_fraction_mean"] is None
                     else f"{100 * c['shared_fraction_mean']:.0f}%",
                     "-" if proof is None else ("yes" if proof else "**no**")])
    head = (f"`{data['recipe']}` ({data['finished']} of {data['steps']} runs finished); "
            f"qdcase21net parents {100 * min(parents):.1f}-{100 * max(parents):.1f}% test "
            f"accuracy. Test accuracy % right after pruning C1+C2 by 50% (no fine-tuning), mean "
            f"[95% Student's t interval] over the folds; concat - aggregate paired over the same "
            f"folds (* = the interval excludes 0):" if parents else "")
    return "\n".join([head, "", table(
        ["criterion", "folds", "aggregate % [95% CI]", "concat % [95% CI]",
         "concat - aggregate (points)", "removed quaternions in common",
         "same set, as proved (wdc, l1)"], body), "", _when(data["machine"])])


def frontend_study(path: Path, command: str) -> str:
    """bench/ravdess_frontend.py's record: each front end's cost and its validation / test scores
    over the folds it ran, the paired difference to the best, and the variant the rule chose."""
    data = _load(path)
    if not data or not data.get("variants"):
        return _missing(path, command)
    rows, choice = [], data["choice"]
    for v in data["variants"]:
        fe = v["frontend"]
        rows.append([v["variant"], f"{fe['sample_rate'] // 1000} kHz, hop {fe['hop_length']}, "
                     f"{fe['n_mels']} mels, {fe['clip_seconds']} s", len(v["per_fold"]),
                     f"{v['macs'] / 1e6:.1f} M", _iv(v["val_uar"]), _iv(v["val_accuracy"]),
                     "best" if v["variant"] == choice["best_val_uar"] else
                     _iv({**v["val_uar_vs_best"], "n": len(v["per_fold"])}, signed=True),
                     _iv(v["test_uar"]),
                     f"{v['train_seconds']['mean']:.0f}"])
    return "\n".join([
        f"`{data['recipe']}`, {data['model']}, {data['variants'][0]['epochs']} epochs per run, "
        f"selected on the {data['selection']}. Rule: {choice['rule']}. Chosen: "
        f"**{choice['chosen']}** (ties: {', '.join(choice['ties'])}).", "",
        table(["variant", "front end", "folds", "MACs / clip", "val UAR % [95% CI]",
               "val accuracy %", "val UAR vs best (points)", "test UAR %", "train s / run"], rows),
        "", f"Dataset: RAVDESS, {data['dataset_citation']}, CC BY-NC-SA 4.0. " + _when(data["machine"])])


def _ratio(row: dict[str, Any] | None) -> str:
    """A benchlib timing row as 'ms (ratio x)': median ms, and the median per-round ratio."""
    if not row:
        return "-"
    return f"{row['ms']:.2f} ms ({row['ratio']:.2f}x)"


def resolution_latency(path: Path, command: str) -> str:
    """bench/bench_resolution_latency.py: MAC ratio against ONNX Runtime time ratio for narrower
    layers and for a coarser front end, and the share of the MAC saving realised as time."""
    data = _load(path)
    if not data or not data.get("results"):
        return _missing(path, command)
    rows = []
    for case, variants in data["results"].items():
        for name, v in variants.items():
            if name == "parent":
                continue
            fe = v["frontend"]
            share = lambda x: "-" if x is None else f"{100 * x:.0f}%"  # noqa: E731
            rows.append([case, name, f"hop {fe['hop_length']}, {fe['n_mels']} mels",
                         f"{v['macs_ratio']:.3f}", f"{v['ort_b1']['ratio']:.3f}",
                         share(v["realised_b1"]), f"{v['ort_b32']['ratio']:.3f}",
                         share(v["realised_b32"])])
    return "\n".join([table(["model at budget", "variant", "front end", "MACs / parent",
                             "ORT time b1 / parent", "saving realised b1", "ORT time b32 / parent",
                             "saving realised b32"], rows), "",
                      f"Random weights (seeded), ONNX Runtime, {data['threads']} thread, "
                      f"round-robin medians of per-round ratios. " + _when(data["machine"])])


def precision_speed(path: Path, command: str) -> str:
    """bench/bench_precision.py: bf16 (and fp16) autocast against fp32 on this CPU."""
    data = _load(path)
    if not data or not data.get("models"):
        return _missing(path, command)
    rows = []
    for name, m in data["models"].items():
        for prec in data["precisions"]:
            step, inf = m["train_step"].get(prec), m["inference"].get(prec)
            rows.append([name, prec, _ratio(step), _ratio(inf),
                         f"{step['loss_first']:.3f} -> {step['loss_last']:.3f}" if step else "-"])
    return "\n".join([table(["model (batch 16, 2 s clips)", "precision", "training step",
                             "inference", "loss first -> last step"], rows), "",
                      f"CPU flags: {', '.join(data['cpu_flags'])}; {data['threads']} thread, "
                      f"{data['rounds']} rounds. " + _when(data["machine"])])


def memory_format(path: Path, command: str) -> str:
    """bench/bench_memory_format.py: channels_last and torch.compile against eager training."""
    data = _load(path)
    if not data or not data.get("models"):
        return _missing(path, command)
    rows = [[name, variant, _ratio(v), f"{v['first_two_steps_s']:.2f}"]
            for name, m in data["models"].items() for variant, v in m["variants"].items()]
    return "\n".join([table(["model (batch 16, 2 s clips)", "variant", "training step",
                             "first two steps, s (compile time)"], rows), "",
                      f"{data['threads']} thread, {data['rounds']} rounds; first losses agree "
                      f"to {max(m['max_first_loss_gap'] for m in data['models'].values()):.0e}. "
                      + _when(data["machine"])])


def loader_speed(path: Path, command: str) -> str:
    """bench/bench_loader.py: index and cache cost per 10,000 clips at 200,000 entries, and the
    loader's clips/s beside the model's."""
    data = _load(path)
    if not data or not data.get("scaling"):
        return _missing(path, command)
    s = data["scaling"]
    rows = [[f"index of {r['n']:,} entries", f"{r['seconds_per_10k']:.3f}",
             f"{r['peak_mb_per_10k']:.2f}"] for r in s["index"]]
    rows += [[f"cache build ({s['cache_build']['n']:,} clips)",
              f"{s['cache_build']['seconds_per_10k']:.3f}",
              f"{s['cache_build']['peak_mb_per_10k']:.2f}"],
             [f"cache open ({s['cache_open']['n']:,} clips, memory-mapped)",
              f"{s['cache_open']['seconds_per_10k']:.3f}", f"{s['cache_open']['peak_mb_per_10k']:.2f}"]]
    rows += [[f"read 10,000 random clips ({where})", f"{r['seconds_per_10k']:.3f}",
              f"{r['peak_mb_per_10k']:.3f}"] for where, r in s["read"].items()]
    lv = data["loader_vs_model"]
    models = [[name, ", ".join(f"{k.replace('_', ' ')}: {v:,.0f}" for k, v in
                               m["loader_clips_per_s"].items()), f"{m['model_clips_per_s']:,.1f}",
               f"{m['loader_over_model']:.1f}", m["limits"]] for name, m in lv["models"].items()]
    return "\n".join([table(["operation", "s per 10,000", "peak MB per 10,000"], rows), "",
                      f"{s['entries']:,} entries of {s['samples_per_clip']} samples "
                      f"({s['cache_bytes'] / 1e6:.0f} MB cache in a temporary folder).", "",
                      table([f"model ({lv['clip_seconds']} s clips, batch {lv['batch']})",
                             "loader clips/s", "model training clips/s", "loader / model",
                             "limits training"], models), "", _when(data["machine"])])


def quantize_families(path: Path, command: str) -> str:
    """bench/bench_quantize.py: fp32 against int8 ONNX Runtime time per family."""
    data = _load(path)
    if not data or not data.get("families"):
        return _missing(path, command)
    rows = []
    for name, f in data["families"].items():
        for batch, lat in f["latency"].items():
            rows.append([name, f"{f['macs'] / 1e6:.1f} M", batch, f"{lat['fp32']['ms']:.2f}",
                         _ratio(lat.get("int8 static")), _ratio(lat.get("int8 static 8-bit")),
                         _ratio(lat.get("int8 dynamic")),
                         f"{f['bytes']['int8 static'] / f['bytes']['fp32']:.2f}"])
    return "\n".join([table(["family", "MACs", "batch", "fp32 ms", "int8 static (ratio)",
                             "int8 static, 8-bit weights (ratio)", "int8 dynamic (ratio)",
                             "int8 / fp32 size"], rows), "",
                      f"{data['threads']} thread, {data['rounds']} rounds, {data['clip_seconds']} s "
                      f"clips, ratio = int8 / fp32 (< 1: int8 faster). " + _when(data["machine"])])


def budget_planning(path: Path, command: str) -> str:
    """bench/bench_budget_planning.py: a MAC-budget prune against a ratio prune of the same
    model, and against the exact search (every candidate plan recounted)."""
    data = _load(path)
    if not data or not data.get("models"):
        return _missing(path, command)
    rows = [[name, f"{m['seconds']['ratio']:.2f}", f"{m['seconds']['budget']:.2f}",
             f"{m['budget_over_ratio']:.2f}", f"{m['seconds']['budget-exact']:.1f}",
             f"{m['exact_over_budget']:.1f}", "yes" if m["same_plan"] else "NO",
             f"{m['macs_ratio']['budget']:.4f}"] for name, m in data["models"].items()]
    return "\n".join([table(["model", "ratio 0.3, s", "target_macs 0.5, s", "budget / ratio",
                             "exact search, s", "exact / budget", "same plan as exact",
                             "MACs reached"], rows), "",
                      f"Medians over {data['rounds']} round-robin rounds ({data['exact_rounds']} "
                      f"for the exact search), {data['threads']} thread. " + _when(data["machine"])])


SECTIONS: dict[str, tuple[Callable[[Path, str], str], Path, str]] = {
    "budget-planning": (budget_planning, R / "budget_planning.json",
                        "python bench/bench_budget_planning.py"),
    "resolution-latency": (resolution_latency, R / "resolution_latency.json",
                           "python bench/bench_resolution_latency.py"),
    "precision": (precision_speed, R / "precision.json",
                  "python bench/bench_precision.py --quick --precisions fp32 bf16"),
    "memory-format": (memory_format, R / "memory_format.json", "python bench/bench_memory_format.py"),
    "loader": (loader_speed, R / "loader.json", "python bench/bench_loader.py --quick"),
    "quantize-families": (quantize_families, R / "quantize_latency.json",
                          "python bench/bench_quantize.py"),
    "ravdess-frontend": (frontend_study, R / "ravdess_frontend.json",
                         "python bench/ravdess_frontend.py"),
    "fsdd-heavy-ft15": (recipe_benchmark, R / "fsdd-heavy-ft15.json",
                        "python bench/benchmark.py recipes/fsdd/heavy.yaml --variant ft15 "
                        "--no-run --vs tp-magnitude tp-taylor"),
    "fsdd-heavy-ft5": (recipe_benchmark, R / "fsdd-heavy-ft5.json",
                       "python bench/benchmark.py recipes/fsdd/heavy.yaml --variant ft5 --no-run "
                       "--vs tp-magnitude tp-taylor"),
    "fsdd-heavy-ft15-kd05": (recipe_benchmark, R / "fsdd-heavy-ft15-kd05.json",
                             "python bench/benchmark.py recipes/fsdd/heavy.yaml --variant "
                             "ft15-kd05 --no-run --vs tp-magnitude tp-taylor"),
    "fsdd-heavy-ft15-scratch": (recipe_benchmark, R / "fsdd-heavy-ft15-scratch.json",
                                "python bench/benchmark.py recipes/fsdd/heavy.yaml --variant "
                                "ft15-scratch --no-run --vs tp-magnitude"),
    "fsdd-heavy-ft15-half": (recipe_benchmark, R / "fsdd-heavy-ft15-half.json",
                             "python bench/benchmark.py recipes/fsdd/heavy.yaml --variant "
                             "ft15-half --no-run --vs tp-magnitude tp-taylor"),
    "heavy-target": (heavy_target, R, "python bench/benchmark.py recipes/DATASET/heavy.yaml "
                     "--variant VARIANT --no-run --vs tp-magnitude tp-taylor"),
    "quaternion-modes": (quaternion_modes, R / "quaternion_modes.json",
                         "python bench/bench_quaternion_modes.py"),
    "ravdess-heavy-ft15": (recipe_benchmark, R / "ravdess-heavy-ft15.json",
                           "python bench/benchmark.py recipes/ravdess/heavy.yaml --variant "
                           "ft15 --no-run --vs tp-magnitude tp-taylor"),
    "ravdess-heavy-ft5": (recipe_benchmark, R / "ravdess-heavy-ft5.json",
                          "python bench/benchmark.py recipes/ravdess/heavy.yaml --variant "
                          "ft5 --no-run --vs tp-magnitude tp-taylor"),
    "ravdess-heavy-ft15-kd05": (recipe_benchmark, R / "ravdess-heavy-ft15-kd05.json",
                                "python bench/benchmark.py recipes/ravdess/heavy.yaml --variant "
                                "ft15-kd05 --no-run --vs tp-magnitude tp-taylor"),
    "ravdess-parents": (recipe_benchmark, R / "ravdess-parents.json",
                        "python bench/benchmark.py recipes/ravdess/parents.yaml --no-run"),
    "claims": (claims, R / "claims", "python bench/claims.py RECIPE"),
    "headline": (headline, R / "fsdd-criteria.json",
                 "python bench/benchmark.py recipes/fsdd/criteria.yaml --vs tp-magnitude "
                 "tp-taylor"),
    "sweeps": (sweeps, R / "sweeps.json", "python bench/bench_sweeps.py"),
    "quantize": (quantize, R / "ravdess-quantize.json",
                 "python bench/benchmark.py recipes/ravdess/quantize.yaml --no-run --vs"),
    "criteria-loso": (recipe_benchmark, R / "fsdd-criteria.json",
                      "python bench/benchmark.py recipes/fsdd/criteria.yaml --vs tp-magnitude "
                      "tp-taylor"),
    "criteria-ravdess": (recipe_benchmark, R / "ravdess-criteria.json",
                         "python bench/benchmark.py recipes/ravdess/criteria.yaml --vs "
                         "tp-magnitude tp-taylor"),
    "criteria-quick": (recipe_benchmark, R / "quick" / "fsdd-criteria-quick.json",
                       "python bench/benchmark.py recipes/fsdd/criteria.yaml --variant quick "
                       "--out bench/results/quick/fsdd-criteria-quick.json"),
    "speedup": (speedup, R / "speedup.json", "python bench/bench_speedup.py"),
    "masks": (masks, R / "masks.json", "python bench/bench_masks.py"),
    "quaternion": (quaternion, R / "quaternion.json", "python bench/bench_quaternion.py --threads 1"),
    "centrality": (centrality, R / "centrality.json", "python bench/bench_centrality.py"),
    "api-prune": (api_prune, R / "api_prune_cnn14.json", "python bench/bench_api_prune.py"),
    "latency-gap": (latency_gap, R / "latency_gap.json", "python bench/bench_latency_gap.py"),
}


def render(text: str) -> str:
    for name, (fn, path, command) in SECTIONS.items():
        pattern = re.compile(rf"(<!-- BEGIN {re.escape(name)} -->\n).*?(<!-- END {re.escape(name)} -->)",
                             re.DOTALL)
        if pattern.search(text):
            body = fn(path, command)
            text = pattern.sub(lambda m: m.group(1) + body + "\n" + m.group(2), text)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--doc", type=Path, action="append",
                        help="the document to fill (default BENCHMARKS.md, README.md, docs/**/*.md)")
    parser.add_argument("--check", action="store_true", help="only report whether it is up to date")
    args = parser.parse_args(argv)
    stale = 0
    for doc in args.doc or DOCS:
        if not doc.is_file():
            print(f"{doc} not found", file=sys.stderr)
            return 2
        old = doc.read_text()
        new = render(old)
        if args.check:
            print("up to date" if new == old else f"{doc} tables differ from bench/results/")
            stale += new != old
            continue
        if new != old:
            atomic_write(doc, lambda p, text=new: p.write_text(text))
        print(f"{'updated' if new != old else 'unchanged'}: {doc}")
    return 1 if stale else 0


if __name__ == "__main__":
    raise SystemExit(main())
