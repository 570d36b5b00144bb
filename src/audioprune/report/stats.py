"""How sure a comparison is: means with 95% confidence intervals and paired differences.

The units are the (fold, seed) pairs a method was run on; a difference between two methods is
taken unit by unit (the same test speaker, the same seed), which removes the fold-to-fold and
seed-to-seed spread both methods share - usually the largest part of the variance.

  mean_ci            the mean over units with a confidence interval:
                     "bootstrap" (default): the percentile bootstrap of the mean, resampling the
                     units with replacement (scipy.stats.bootstrap, 10,000 resamples, seeded);
                     "t": Student's t interval, mean +- t(0.975, n-1) * sd / sqrt(n).
                     With few units (6 folds) the percentile bootstrap is too narrow - it has no
                     small-sample correction - so read its intervals as optimistic; "t" is the
                     conservative choice there (`audioprune report --ci t`).
  paired_difference  mean of (a - b) over the units both have, its interval (as above, of the
                     differences), and two paired tests: Wilcoxon's signed-rank test (exact for
                     n <= 25 without ties, zero differences dropped: "wilcox") and the sign test
                     (binomial, zero differences dropped). A difference is called significant
                     here only when its interval excludes 0.

Everything is deterministic (a fixed bootstrap seed) and tested against hand-computed cases.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

__all__ = ["CI_METHODS", "Interval", "PairedDifference", "mean_ci", "paired_difference"]

CI_METHODS = ("bootstrap", "t")
N_RESAMPLES = 10_000
LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    """A mean over `n` units and its confidence interval [low, high]."""

    mean: float
    low: float
    high: float
    n: int
    method: str

    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    def format(self, scale: float = 1.0, digits: int = 1) -> str:
        if self.n == 0:
            return "-"
        if self.n == 1:
            return f"{scale * self.mean:.{digits}f}"
        return (f"{scale * self.mean:.{digits}f} [{scale * self.low:.{digits}f}, "
                f"{scale * self.high:.{digits}f}]")


@dataclass(frozen=True)
class PairedDifference:
    """mean(a - b) over the paired units with its interval and paired-test p-values."""

    interval: Interval
    wilcoxon_p: float | None
    sign_p: float | None
    units: tuple[str, ...]

    @property
    def significant(self) -> bool:
        return self.interval.n >= 2 and self.interval.excludes_zero()


def mean_ci(values: Sequence[float], level: float = LEVEL, method: str = "bootstrap",
            n_resamples: int = N_RESAMPLES, seed: int = 0) -> Interval:
    """The mean of `values` with a `level` confidence interval (see the module docs)."""
    if method not in CI_METHODS:
        raise ValueError(f"unknown confidence-interval method {method!r}; choose from "
                         f"{', '.join(CI_METHODS)}")
    x = np.asarray(values, dtype=np.float64)
    n = int(x.size)
    if n == 0:
        return Interval(math.nan, math.nan, math.nan, 0, method)
    mean = float(x.mean())
    if n == 1 or np.all(x == x[0]):
        return Interval(mean, mean, mean, n, method)
    if method == "t":
        half = stats.t.ppf(0.5 + level / 2, n - 1) * x.std(ddof=1) / math.sqrt(n)
        return Interval(mean, mean - half, mean + half, n, method)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy's small-sample notes; the docs say it
        res = stats.bootstrap((x,), np.mean, confidence_level=level, n_resamples=n_resamples,
                              method="percentile", random_state=np.random.default_rng(seed),
                              vectorized=True)
    return Interval(mean, float(res.confidence_interval.low), float(res.confidence_interval.high),
                    n, method)


def paired_difference(a: Mapping[str, float], b: Mapping[str, float], level: float = LEVEL,
                      method: str = "bootstrap", seed: int = 0) -> PairedDifference:
    """a - b over the units (keys) both have: mean, interval and paired tests."""
    units = tuple(sorted(set(a) & set(b)))
    d = np.array([a[u] - b[u] for u in units], dtype=np.float64)
    interval = mean_ci(d, level, method, seed=seed)
    nonzero = d[d != 0]
    wilcoxon_p = sign_p = None
    if nonzero.size >= 1:
        sign_p = float(stats.binomtest(int((nonzero > 0).sum()), int(nonzero.size), 0.5).pvalue)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            wilcoxon_p = float(stats.wilcoxon(nonzero, zero_method="wilcox",
                                              alternative="two-sided").pvalue)
    elif d.size:
        sign_p = wilcoxon_p = 1.0  # every unit tied
    return PairedDifference(interval, wilcoxon_p, sign_p, units)
