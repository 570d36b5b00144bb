"""README's table "The papers' claims, re-measured", from bench/results/claims/*.json.

One row per claim: the paper's figure, ours with its 95% interval over the recipe's units
(folds x seeds), a verdict and the command behind it. The verdict follows the intervals only:
"holds" when the whole interval is on the claim's side, "does not hold" when the whole interval
is on the other side, "inconclusive" otherwise; a recipe not (fully) run says so. Nothing here
measures anything: bench/claims.py writes the JSONs.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from audioprune.fileio import read_json

from benchlib import table

CLAIM1 = "claim-dcase21-c1c2-loso"
CLAIM3 = "claim-qcnn-pruned-vs-cnn-loso"
CLAIM4 = "claim-qcnn-prune-vs-kd-loso"
# the same claims on RAVDESS's 6 actor folds (issue 25)
RAVDESS1 = "claim-ravdess-dcase21-c1c2"
RAVDESS3 = "claim-ravdess-qcnn-pruned-vs-cnn"
RAVDESS4 = "claim-ravdess-qcnn-prune-vs-kd"
RECIPES = {CLAIM1: "recipes/claims/dcase21_c1c2_loso.yaml",
           CLAIM3: "recipes/claims/qcnn_pruned_vs_cnn_loso.yaml",
           CLAIM4: "recipes/claims/qcnn_prune_vs_kd_loso.yaml",
           RAVDESS1: "recipes/claims/ravdess_dcase21_c1c2.yaml",
           RAVDESS3: "recipes/claims/ravdess_qcnn_pruned_vs_cnn.yaml",
           RAVDESS4: "recipes/claims/ravdess_qcnn_prune_vs_kd.yaml"}
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


def claim1(data: dict[str, Any] | None, result: str = CLAIM1) -> list[str]:
    paper = "C1+C2 of the DCASE21 baseline pruned by 50%: -71% MACs, -50% params, < 2 points lost; " \
            "centrality criteria at least as good as norm and similarity ones"
    if data is None:
        return ["1", paper, "not measured yet", "cannot say yet", _command(result)]
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
            _command(result)]


def claim2(data: dict[str, Any] | None) -> list[str]:
    paper = "CNN14 pruned: -24% MACs, -41% params, slight gain in AudioSet mAP"
    if data is None:
        return ["2", paper, "not counted yet", "cannot say yet",
                "`python bench/claims.py --cnn14-counts`"]
    rows = [f"{name}: MACs {-100 * s['macs_reduction']:.1f}%, params "
            f"{-100 * s['params_reduction']:.1f}%" for name, s in data["settings"].items()]
    return ["2", paper, "by arithmetic (527 classes, 10 s at 32 kHz): " + "; ".join(rows),
            "counts: reproduced by C6 at 12.5% + C7-C12 at 25%; accuracy: cannot be tested here "
            "(needs the PANNs checkpoint: `audioprune run recipes/claims/cnn14_fsdd_loso.yaml`, "
            "its `full` variant on AudioSet with a GPU)",
            "`python bench/claims.py --cnn14-counts`"]


# claim 3's "about -50% computation, about -80% parameters", read as at most these fractions of
# the CNN's (5 points of slack each way on "about")
CLAIM3_MACS, CLAIM3_PARAMS = 0.55, 0.25


def _against(m: dict[str, Any], reference: dict[str, Any]) -> dict[str, Any] | None:
    """m - reference over the units both have (claims.py's cross-kind pairing)."""
    return (m.get("vs_methods", {}).get(reference["label"]) or {}).get("bootstrap")


def claim3(data: dict[str, Any] | None, result: str = CLAIM3) -> list[str]:
    paper = "pruned QCNN vs the real CNN: about -50% computation and -80% parameters at " \
            "comparable performance"
    if data is None:
        return ["3", paper, "not measured yet", "cannot say yet", _command(result)]
    cnn = next((m for m in data["methods"] if m["kind"] == "unpruned" and m["model"] and
                m["model"].startswith("cnn")), None)
    if cnn is None or not cnn.get("params"):
        return ["3", paper, "no CNN run yet" + _coverage(data), "cannot say yet", _command(result)]
    parts = []
    levels: list[tuple[str, bool, str]] = []  # pruned: (plan, cost met, accuracy verdict)
    for m in [x for x in data["methods"] if x is not cnn and x["model"] != cnn["model"]]:
        diff = _against(m, cnn)
        macs, params = m["macs"] / cnn["macs"], m["params"] / cnn["params"]
        name = m["plan"] or "unpruned"
        parts.append(f"{name}: MACs {-100 * (1 - macs):+.0f}%, params {-100 * (1 - params):+.0f}%, "
                     f"accuracy vs CNN {_pts(diff)} ({len(m['values'])} units)")
        if m["kind"] == "pruned":
            levels.append((name, macs <= CLAIM3_MACS and params <= CLAIM3_PARAMS,
                           _side(diff, -TOLERANCE)))
    provisional = "provisional, " if _coverage(data) else ""
    at_cost = [accuracy for _, cost, accuracy in levels if cost]
    overall = ("holds" if "holds" in at_cost else
               "does not hold" if at_cost and all(a == "does not hold" for a in at_cost) else
               "inconclusive")
    per_level = [f"{name}: cost {'met' if cost else 'not met'}, accuracy {accuracy}"
                 for name, cost, accuracy in levels]
    verdict = (f"{overall} ({provisional}it needs one level at most {CLAIM3_MACS:.2f} of the "
               f"CNN's MACs and {CLAIM3_PARAMS:.2f} of its params whose accuracy is within 2 "
               f"points by the interval): " +
               ("; ".join(per_level) if per_level else "no pruned run yet"))
    return ["3", paper, "; ".join(parts) + _coverage(data), verdict, _command(result)]


def _roles(methods: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Claim 4's methods by role: the pruned teacher, its KD student, the teacher itself (the
    unpruned model the pruned one is cut from) and the student trained from labels alone."""
    roles: dict[str, dict[str, Any]] = {}
    for m in methods:
        if m["kind"] == "pruned":
            roles.setdefault("pruned", m)
        elif m["kind"] == "distilled":
            roles.setdefault("KD student", m)
    pruned = roles.get("pruned")
    for m in methods:
        if m["kind"] == "unpruned":
            teacher = pruned is not None and pruned["label"].startswith(m["label"] + " /")
            roles.setdefault("teacher" if teacher else "labels-only student", m)
    return roles


def claim4(data: dict[str, Any] | None, result: str = CLAIM4) -> list[str]:
    paper = "pruning a QCNN matches or beats distilling a QCNN of the same size, at a lower " \
            "training cost"
    if data is None:
        return ["4", paper, "not measured yet", "cannot say yet", _command(result)]
    roles = _roles(data["methods"])
    parts = []
    for role in ("teacher", "pruned", "KD student", "labels-only student"):
        m = roles.get(role)
        if m is None:
            continue
        iv = m.get("mean_ci_bootstrap") or {}
        cost = f"{m['train_seconds']:.0f} s" + (
            f", {m['total_seconds']:.0f} s with the teacher"
            if m["total_seconds"] > m["train_seconds"] else "")
        parts.append(f"{role} ({m['params']:,.0f} params) {100 * iv.get('mean', float('nan')):.1f}% "
                     f"[{100 * iv.get('low', float('nan')):.1f}, "
                     f"{100 * iv.get('high', float('nan')):.1f}] ({cost})")
    pruned, kd = roles.get("pruned"), roles.get("KD student")
    if pruned is None or kd is None:
        return ["4", paper, "; ".join(parts) + _coverage(data), "cannot say yet",
                _command(result)]
    diff = _against(pruned, kd)
    parts.append(f"pruned - KD student {_pts(diff)} points")
    accuracy = _side(diff, -TOLERANCE)
    cheaper = pruned["train_seconds"] < kd["train_seconds"]
    provisional = "provisional, " if _coverage(data) else ""
    verdict = (f"matches (within 2 points) or beats: {provisional}{accuracy}; lower training "
               f"cost: {'holds' if cheaper else 'does not hold'} ({pruned['train_seconds']:.0f} "
               f"vs {kd['train_seconds']:.0f} s over the units, the shared teacher aside)")
    return ["4", paper, "; ".join(parts) + _coverage(data), verdict, _command(result)]


# (claim function, results name, data) in the order of the table; claim 2 is arithmetic
ROWS: list[tuple[Callable[..., list[str]], str, str]] = [
    (claim1, CLAIM1, "FSDD"), (claim1, RAVDESS1, "RAVDESS"),
    (lambda data, result: claim2(data), "cnn14_counts", "-"),
    (claim3, CLAIM3, "FSDD"), (claim3, RAVDESS3, "RAVDESS"),
    (claim4, CLAIM4, "FSDD"), (claim4, RAVDESS4, "RAVDESS")]
DATA = ("FSDD: 6 leave-one-speaker-out folds; RAVDESS: 6 actor folds (Livingstone & Russo 2018, "
        "PLoS ONE 13(5): e0196391, CC BY-NC-SA 4.0)")


def rows(results: Path) -> list[list[str]]:
    """[claim, data, paper, ours, verdict, command] for every row of ROWS."""
    out = []
    for fn, name, data in ROWS:
        path = results / f"{name}.json"
        row = fn(read_json(path) if path.is_file() else None, name)
        out.append([row[0], data, *row[1:]])
    return out


def render(results: Path) -> str:
    return "\n".join([
        table(["claim", "data", "paper", "ours (points: mean [95% CI] over the folds)", "verdict",
               "command"], rows(results)), "",
        f"{DATA}. Verdicts follow the intervals: holds = the whole 95% interval on the claim's "
        "side, does not hold = the whole interval on the other side, inconclusive otherwise."])
