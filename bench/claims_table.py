"""README's table "The papers' claims, re-measured", from bench/results/claims/*.json.

One row per claim: the paper's figure, ours with its 95% interval over the recipe's units
(folds x seeds), a verdict and the command behind it. The verdict follows the intervals only:
"holds" when the whole interval is on the claim's side, "does not hold" when the whole interval
is on the other side, "inconclusive" otherwise; a recipe not (fully) run says so. Nothing here
measures anything: bench/claims.py writes the JSONs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from audioprune.fileio import read_json

from benchlib import table

CLAIM1 = "claim-dcase21-c1c2-loso"
CLAIM3 = "claim-qcnn-pruned-vs-cnn-loso"
CLAIM4 = "claim-qcnn-prune-vs-kd-loso"
RECIPES = {CLAIM1: "recipes/claims/dcase21_c1c2_loso.yaml",
           CLAIM3: "recipes/claims/qcnn_pruned_vs_cnn_loso.yaml",
           CLAIM4: "recipes/claims/qcnn_prune_vs_kd_loso.yaml"}
TOLERANCE = 0.02  # claim 1: "less than 2 points lost"


def _pts(d: dict[str, Any] | None) -> str:
    if not d or d.get("mean") is None:
        return "-"
    text = f"{100 * d['mean']:+.1f}"
    if d.get("low") is not None and d.get("high") is not None and d["n"] > 1:
        text += f" [{100 * d['low']:+.1f}, {100 * d['high']:+.1f}]"
    return text


def _side(d: dict[str, Any] | None, threshold: float) -> str:
    """Is the interval above `threshold` (holds), below it (does not hold), or across it?"""
    if not d or d.get("low") is None or d.get("n", 0) < 2:
        return "inconclusive"
    if d["low"] > threshold:
        return "holds"
    if d["high"] < threshold:
        return "does not hold"
    return "inconclusive"


def _command(name: str) -> str:
    return f"`python bench/claims.py {RECIPES[name]}`"


def _coverage(data: dict[str, Any]) -> str:
    done, steps = data.get("finished", 0), data.get("steps", 0)
    return "" if done >= steps else f" (partial: {done} of {steps} runs finished)"


def _pruned(data: dict[str, Any]) -> list[dict[str, Any]]:
    return [m for m in data["methods"] if m["kind"] == "pruned"]


def claim1(data: dict[str, Any] | None) -> list[str]:
    paper = "C1+C2 of the DCASE21 baseline pruned by 50%: -71% MACs, -50% params, < 2 points lost; " \
            "centrality criteria at least as good as norm and similarity ones"
    if data is None:
        return ["1", paper, "not measured yet", "cannot say yet", _command(CLAIM1)]
    pruned = sorted(_pruned(data), key=lambda m: m["criterion"])
    verdicts = [_side(m.get("vs_parent_bootstrap"), -TOLERANCE) for m in pruned]
    parts = [f"{m['criterion']} {_pts(m.get('vs_parent_bootstrap'))} ({len(m['values'])} units)"
             for m in pruned]
    first = pruned[0] if pruned else None  # one plan: every criterion has the same counts
    counts = (f"MACs {-100 * (1 - first['macs_ratio']):.1f}%, params "
              f"{-100 * (1 - first['params_ratio']):.1f}%; " if first and first["macs_ratio"] else "")
    vs_l1 = [f"{m['criterion']} - l1 {_pts(m.get('vs_l1_bootstrap'))}" for m in pruned
             if m["criterion"] in ("wdc", "betweenness")]
    verdict = ("holds" if verdicts and all(v == "holds" for v in verdicts) else
               "does not hold" if verdicts and all(v == "does not hold" for v in verdicts) else
               "mixed: " + ", ".join(f"{m['criterion']} {v}" for m, v in zip(pruned, verdicts)))
    ours = (f"{counts}points vs the parent: " + "; ".join(parts) +
            (f"; vs l1: {'; '.join(vs_l1)}" if vs_l1 else "") + _coverage(data))
    provisional = "provisional, " if _coverage(data) else ""
    return ["1", paper, ours, f"< 2 points ({provisional}per criterion): {verdict}",
            _command(CLAIM1)]


def claim2(data: dict[str, Any] | None) -> list[str]:
    paper = "CNN14 pruned: -24% MACs, -41% params, slight gain in AudioSet mAP"
    if data is None:
        return ["2", paper, "not counted yet", "cannot say yet",
                "`python bench/claims.py --cnn14-counts`"]
    rows = [f"{name}: MACs {-100 * s['macs_reduction']:.1f}%, params "
            f"{-100 * s['params_reduction']:.1f}%" for name, s in data["settings"].items()]
    return ["2", paper, "by arithmetic (527 classes, 10 s at 32 kHz): " + "; ".join(rows),
            "counts: reproduced by C6 at 12.5% + C7-C12 at 25%; mAP: cannot be tested here "
            "(needs AudioSet and a GPU: `audioprune run recipes/panns_transfer.yaml`)",
            "`python bench/claims.py --cnn14-counts`"]


def claim3(data: dict[str, Any] | None) -> list[str]:
    paper = "pruned QCNN vs the real CNN: about -50% computation and -80% parameters at " \
            "comparable performance"
    if data is None:
        return ["3", paper, "not measured yet", "cannot say yet", _command(CLAIM3)]
    cnn = next((m for m in data["methods"] if m["kind"] == "unpruned" and m["model"] and
                m["model"].startswith("cnn")), None)
    parts = []
    for m in sorted(_pruned(data), key=lambda m: m["label"]):
        if cnn is None or not cnn.get("params"):
            continue
        diff = m.get(f"vs_{cnn['model'].split()[0]}_bootstrap")
        parts.append(f"{m['plan']}: MACs {-100 * (1 - m['macs'] / cnn['macs']):.0f}%, params "
                     f"{-100 * (1 - m['params'] / cnn['params']):.0f}%, accuracy vs CNN "
                     f"{_pts(diff)} ({len(m['values'])} units)")
    return ["3", paper, "; ".join(parts) + _coverage(data) if parts else "no pruned run yet",
            "see the figures (comparable = interval of the difference including 0)",
            _command(CLAIM3)]


def claim4(data: dict[str, Any] | None) -> list[str]:
    paper = "pruning a QCNN matches or beats distilling a QCNN of the same size, at a lower " \
            "training cost"
    if data is None:
        return ["4", paper, "not measured yet", "cannot say yet", _command(CLAIM4)]
    parts = []
    for m in data["methods"]:
        if m["kind"] in ("pruned", "distilled") or "labels" in m["label"]:
            iv = m.get("mean_ci_bootstrap") or {}
            parts.append(f"{m['label']}: {100 * iv.get('mean', float('nan')):.1f}% "
                         f"[{100 * iv.get('low', float('nan')):.1f}, "
                         f"{100 * iv.get('high', float('nan')):.1f}], {m['train_seconds']:.0f} s")
    return ["4", paper, "; ".join(parts) + _coverage(data), "see the figures", _command(CLAIM4)]


def render(results: Path) -> str:
    def load(name: str) -> dict[str, Any] | None:
        path = results / f"{name}.json"
        return read_json(path) if path.is_file() else None

    rows = [claim1(load(CLAIM1)), claim2(load("cnn14_counts")), claim3(load(CLAIM3)),
            claim4(load(CLAIM4))]
    return "\n".join([
        table(["claim", "paper", "ours (points: mean [95% CI] over FSDD leave-one-speaker-out "
                                 "folds)", "verdict", "command"], rows), "",
        "Verdicts follow the intervals: holds = the whole 95% interval on the claim's side, does "
        "not hold = the whole interval on the other side, inconclusive otherwise."])
