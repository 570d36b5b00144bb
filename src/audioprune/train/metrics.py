"""Task metrics: accuracy, unweighted average recall, macro-F1 and the confusion matrix
(single-label); mAP and AUC
(multi-label, as PANNs reports AudioSet: the mean over classes of sklearn's average precision)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, confusion_matrix, f1_score, roc_auc_score


def single_label_metrics(logits: np.ndarray, targets: np.ndarray, num_classes: int,
                         groups: list[str] | None = None) -> dict[str, Any]:
    pred = logits.argmax(axis=1)
    out: dict[str, Any] = {
        "accuracy": float((pred == targets).mean()) if len(targets) else float("nan"),
        "uar": unweighted_average_recall(pred, targets),
        "macro_f1": float(f1_score(targets, pred, labels=list(range(num_classes)), average="macro",
                                   zero_division=0)),
        "confusion_matrix": confusion_matrix(targets, pred, labels=list(range(num_classes))).tolist(),
        "num_examples": int(len(targets)),
    }
    if groups is not None and len(set(groups)) > 1:
        hits: dict[str, list[bool]] = defaultdict(list)
        for g, ok in zip(groups, pred == targets):
            hits[g].append(bool(ok))
        out["accuracy_per_group"] = {g: float(np.mean(v)) for g, v in sorted(hits.items())}
    return out


def unweighted_average_recall(pred: np.ndarray, targets: np.ndarray) -> float:
    """The mean over the classes present in `targets` of each one's recall (balanced accuracy):
    speech emotion's usual metric, as a classifier that always answers the largest class scores
    1/classes here however unbalanced the test set (RAVDESS: neutral has half the clips)."""
    present = np.unique(targets)
    if not len(present):
        return float("nan")
    return float(np.mean([(pred[targets == c] == c).mean() for c in present]))


def multi_label_metrics(logits: np.ndarray, targets: np.ndarray) -> dict[str, Any]:
    """mAP and AUC averaged over the classes that have at least one positive (AUC: and one
    negative) in the evaluation set; classes without positives are undefined and left out."""
    has_pos = targets.sum(axis=0) > 0
    has_both = has_pos & (targets.sum(axis=0) < len(targets))
    ap = average_precision_score(targets[:, has_pos], logits[:, has_pos], average=None) \
        if has_pos.any() else np.array([np.nan])
    auc = roc_auc_score(targets[:, has_both], logits[:, has_both], average=None) \
        if has_both.any() else np.array([np.nan])
    return {"mAP": float(np.mean(ap)), "AUC": float(np.mean(auc)),
            "classes_scored": int(has_pos.sum()), "num_examples": int(len(targets))}


def headline(metrics: dict[str, Any]) -> tuple[str, float]:
    """The one number a table shows: accuracy for single-label, mAP for multi-label."""
    return ("mAP", metrics["mAP"]) if "mAP" in metrics else ("accuracy", metrics["accuracy"])
