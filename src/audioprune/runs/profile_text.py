"""The readable form of a profile.json (`audioprune profile RUN` without --json)."""

from __future__ import annotations

from typing import Any


def _stats(s: dict[str, Any] | None) -> str:
    if not s:
        return "-"
    return f"{s['median']:.3g} [{s['p10']:.3g}-{s['p90']:.3g}] n={s['repeats']}"


def layer_table(prof: dict[str, Any]) -> list[str]:
    """One line per module that holds parameters or does MACs, in model order."""
    params, macs = prof["params"]["per_layer"], prof["macs"]["per_layer"]
    names = list(params) + [n for n in macs if n not in params]
    total = max(prof["macs"]["model"], 1)
    width = max([len(n) for n in names] + [5])
    lines = [f"{'layer':{width}s} {'params':>12s} {'MACs':>15s} {'MACs %':>7s}"]
    for n in names:
        m = macs.get(n, 0)
        share = f"{100 * m / total:7.1f}" if m else ""
        lines.append(f"{n:{width}s} {params.get(n, 0):12,d} {m:15,d} {share}".rstrip())
    return lines


def complexity_lines(prof: dict[str, Any]) -> list[str]:
    """The DCASE-rule complexity and, when a budget was given, its pass/fail lines."""
    c = prof.get("complexity")
    if not c:
        return []
    lines = [f"complexity   {c['params_bytes']:,} B of {c['precision']} parameters "
             f"({c['params']:,}, zeros counted); {c['macs_per_second']:,} MACs per second of "
             f"audio ({c['clip_seconds']:g} s examples)"]
    if prof.get("onnx_int8"):
        lines.append(f"int8 model   {prof['onnx_int8']['size_bytes']:,} B (model.int8.onnx)")
    b = prof.get("budget")
    if b:
        lines.append(f"budget       {b['name']}: {'PASS' if b['pass'] else 'FAIL'}")
        lines += [f"             {line}" for line in b["lines"]]
    return lines


def profile_summary(prof: dict[str, Any]) -> str:
    """Headline counts, the per-layer table and the latency table of a profile."""
    inp, p, m, size = prof["input"], prof["params"], prof["macs"], prof["size_bytes"]
    seconds = inp["samples"] / inp["sample_rate"]
    shape = " x ".join(map(str, inp["features"]))
    lines = [
        f"{prof['run']}: {prof['arch']}{' (quaternion)' if prof['quaternion'] else ''}, "
        f"{seconds:g} s at {inp['sample_rate']} Hz -> features {shape}",
        f"params       {p['total']:,} (trainable {p['trainable']:,}; {p['deployed']:,} in the "
        f"deployed form)",
        f"MACs         {m['model']:,} per example; front end {m['frontend']:,} (STFT not "
        f"counted)",
        *([f"blocked MACs {m['blocked']['model']:,} with output widths in blocks of "
           f"{m['blocked']['lanes']} (this CPU's fp32 SIMD lanes: what the time follows)"]
          if m.get("blocked") else []),
        f"size         fp32 {size['fp32']:,} B, fp16 {size['fp16']:,} B, int8 {size['int8']:,} B",
        f"activations  {prof['peak_activation_bytes']:,} B (largest layer input + output, "
        f"batch 1, fp32)",
        *complexity_lines(prof),
        "",
        *layer_table(prof),
        "",
    ]
    lat = prof["latency_ms"]
    batches = list(lat["eager"])
    lines.append(f"latency in ms, {prof['threads']} thread(s): median [p10-p90] n=repeats "
                 f"({prof['timed'].split(';')[0]})")
    lines.append(f"{'':18s}" + "".join(f"{b:>32s}" for b in batches))
    rows = [("eager", lat["eager"]), ("onnxruntime", lat.get("onnxruntime"))]
    if lat.get("onnxruntime-int8"):
        rows.append(("onnxruntime int8", lat["onnxruntime-int8"]))
    rows.append(("front end (eager)", prof["frontend_latency_ms"]["eager"]))
    for label, by_batch in rows:
        lines.append(f"{label:18s}" + "".join(f"{_stats((by_batch or {}).get(b)):>32s}"
                                             for b in batches))
    onnx = prof.get("onnx")
    kept = prof.get("onnx_kept")
    if kept:
        lines.append(f"ONNX Runtime: not timed now ({kept['why']}); the ONNX Runtime rows are "
                     f"those of the earlier {kept['from']} (same model and threads)")
    if onnx is None:
        lines.append("ONNX Runtime: skipped (--no-onnx)")
    elif "error" in onnx:
        lines.append(f"ONNX Runtime: no timing ({onnx['error']})")
    else:
        lines.append(f"ONNX: opset {onnx['opset']}, {onnx['size_bytes']:,} bytes, max |ONNX "
                     f"Runtime - PyTorch| {onnx['max_abs_diff']:.1e}")
    return "\n".join(lines)
