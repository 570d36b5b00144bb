"""The Pareto front of (cost, score) points: the models no other model beats on both at once."""

from __future__ import annotations

from collections.abc import Sequence


def pareto_front(costs: Sequence[float], scores: Sequence[float]) -> list[int]:
    """Indices of the non-dominated points, cheapest first.

    Lower cost and higher score are better. A point is dominated when another costs no more and
    scores no less, and is strictly better in one of the two. Of exact duplicates the first is kept.
    """
    if len(costs) != len(scores):
        raise ValueError(f"{len(costs)} costs but {len(scores)} scores")
    # cheapest first; at equal cost the best score first, so it shadows the others
    order = sorted(range(len(costs)), key=lambda i: (costs[i], -scores[i], i))
    front: list[int] = []
    best = float("-inf")
    for i in order:
        if scores[i] > best:
            front.append(i)
            best = scores[i]
    return front
