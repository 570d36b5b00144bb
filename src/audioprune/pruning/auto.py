"""`criterion="auto"`: the criterion our cross-validated measurements support at a given budget.

The rule is read off two benchmarks, each with every method at the same MACs and the same 5
fine-tuning epochs, dcase21net pruned to 50, 30 and 15% of its MACs, 95% Student's t intervals
over 6 folds (`python bench/benchmark.py RECIPE --no-run --vs tp-magnitude tp-taylor`):

- FSDD, leave one speaker out (BENCHMARKS section 1, bench/results/fsdd-criteria.json);
- RAVDESS, 6 folds of 4 actors (section 15, bench/results/ravdess-criteria.json).

Torch-Pruning's group magnitude (`tp-magnitude`) is not behind any method by a resolved
difference at any budget on either dataset: it leads both at 30% (FSDD 77.7%, RAVDESS 36.3%)
and FSDD at 15%; where another leads (tp-taylor at 50% on FSDD, +1.4 [-3.6, +6.4] points; l1 at
50% and 15% on RAVDESS, +0.1 [-1.6, +1.9] and +2.2 [-5.9, +10.2]) the interval includes 0. So it
is the choice at every budget, and it needs no calibration data. Nor does `auto` add what is
not a criterion: on both datasets, at 5 and 15 fine-tuning epochs (BENCHMARKS sections 14 and
16), neither the searched resolution nor progressive pruning inside KD (at alpha 0.9 or 0.5),
alone or together, is resolved ahead of tp-magnitude at 50, 30 or 15% of the MACs, and the same
widths trained from scratch are behind it.

Until 2026-12 `auto` chose Torch-Pruning's Taylor importance (`tp-taylor`) when the plan kept at
least 40% of the MACs, on the FSDD comparison of an earlier script (+2.8 [0.5, 5.5] points over
tp-magnitude at 50%, a percentile-bootstrap interval). Neither re-measurement resolves that lead
(RAVDESS at 50%: 0.0 [-3.5, +3.5]), and on RAVDESS at 15% tp-taylor is resolved BEHIND our
betweenness (-4.4 [-7.9, -0.9]): a default chosen on one dataset stands only where the other
agrees, and here it did not. Quaternion layers have no measured choice (Torch-Pruning's
importances cannot score them), so `auto` refuses them and says what to pick instead.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from audioprune.errors import ArgumentError
from audioprune.pruning.engine import PruningGraph
from audioprune.pruning.plan import Plan, resolve_plan

AUTO = "auto"
CHOICE = "tp-magnitude"  # at every measured budget (see the module doc)
log = logging.getLogger("audioprune.prune")
# The records the rule rests on (bench/results/): the criteria at equal MACs, and the heavier
# compressions that are not criteria (the searched resolution, progressive pruning inside KD,
# the widths from scratch) at 5 and 15 fine-tuning epochs, none resolved ahead of tp-magnitude
EVIDENCE_FILES = ("fsdd-criteria.json", "ravdess-criteria.json", "fsdd-heavy-ft5.json",
                  "fsdd-heavy-ft15.json", "ravdess-heavy-ft5.json", "ravdess-heavy-ft15.json",
                  "fsdd-heavy-ft15-kd05.json", "ravdess-heavy-ft15-kd05.json",
                  "fsdd-heavy-ft15-scratch.json", "fsdd-heavy-ft15-half.json")
EVIDENCE = ("BENCHMARKS.md sections 1 and 15 (criteria) and 14 and 16 (resolution, progressive "
            "pruning with KD, from scratch): dcase21net at 50/30/15% of the MACs, FSDD "
            "leave-one-speaker-out and RAVDESS actor folds (bench/results/"
            + ", ".join(EVIDENCE_FILES) + ")")


@dataclass(frozen=True)
class AutoChoice:
    """What `auto` chose, and from what: kept_macs is the fraction of the MACs a uniform plan
    of the same request keeps."""

    criterion: str
    kept_macs: float
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"asked": AUTO, "chosen": self.criterion, "kept_macs": self.kept_macs,
                "reason": self.reason, "evidence": EVIDENCE}


def rule(kept_macs: float, calibration: bool) -> tuple[str, str]:
    """The criterion for a plan keeping `kept_macs` of the MACs, and why. `calibration` (whether
    training batches were given) no longer changes the choice: the measured one needs none."""
    return CHOICE, (f"keeps {kept_macs:.2f} of the MACs: tp-magnitude is behind no method by a "
                    f"resolved difference at 50/30/15% on FSDD or RAVDESS")


def check_no_options(options: Mapping[str, Any] | None) -> None:
    """`auto` picks a criterion with its defaults: options meant for one criterion would reach
    another, so they are refused (by ap.prune, prune runs and recipes alike)."""
    if options:
        raise ArgumentError(f"`criterion` auto takes no criterion options, got "
                            f"{', '.join(sorted(options))}")


def choose_criterion(graph: PruningGraph, plan: Plan, *, calibration: bool) -> AutoChoice:
    """Resolve `auto` for pruning the model behind `graph` (already traced, by the Pruner) by
    `plan`. The budget is read from the uniform plan of the same request (global ranking and
    sensitivity allocation need a criterion to plan, and land on the same MACs by construction
    when a budget is given)."""
    quaternion = sorted(n for n, layer in graph.layers().items() if layer.quaternion)
    if quaternion:
        raise ArgumentError(f"`criterion` auto: no measurement supports a choice for quaternion "
                            f"layers ({', '.join(quaternion)}); name one, e.g. l1 (the "
                            f"QCNN paper's) or taylor")
    uniform = plan.replace(allocation="uniform", global_ranking=False)
    resolved = resolve_plan(uniform, graph)
    base = resolved.base.get("macs", 0)
    kept = resolved.predicted["macs"] / base if base else 1.0
    criterion, reason = rule(kept, calibration)
    log.info("criterion auto -> %s (%s)", criterion, reason)
    return AutoChoice(criterion, round(float(kept), 4), reason)
