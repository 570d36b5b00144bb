"""Confidence intervals and paired tests against hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from audioprune.report.stats import mean_ci, paired_difference


def test_t_interval_by_hand() -> None:
    ci = mean_ci([1, 2, 3, 4, 5, 6], method="t")
    sd = math.sqrt(sum((x - 3.5) ** 2 for x in range(1, 7)) / 5)  # 1.8708
    half = 2.570581835636314 * sd / math.sqrt(6)  # t(0.975, 5)
    assert ci.mean == 3.5 and ci.n == 6
    assert ci.low == pytest.approx(3.5 - half, abs=1e-9) and ci.high == pytest.approx(3.5 + half, abs=1e-9)
    assert (round(ci.low, 4), round(ci.high, 4)) == (1.5367, 5.4633)


def test_bootstrap_interval_is_scipys_percentile_bootstrap_seeded() -> None:
    x = [0.71, 0.66, 0.81, 0.75, 0.62, 0.78]
    ci = mean_ci(x)
    ref = stats.bootstrap((np.array(x),), np.mean, n_resamples=10_000, method="percentile",
                          random_state=np.random.default_rng(0)).confidence_interval
    assert (ci.low, ci.high) == pytest.approx((ref.low, ref.high), abs=1e-12)
    assert ci.low < ci.mean < ci.high and mean_ci(x) == ci  # deterministic
    t = mean_ci(x, method="t")
    assert t.low < ci.low and ci.high < t.high  # with n = 6 the bootstrap is the narrower
    assert mean_ci([0.5] * 4) .low == 0.5 and mean_ci([0.5]).n == 1
    with pytest.raises(ValueError, match="unknown confidence-interval method"):
        mean_ci(x, method="magic")


def test_paired_tests_by_hand() -> None:
    units = [f"f{k}" for k in range(1, 7)]
    base = dict(zip(units, [0.5] * 6))
    better = dict(zip(units, [0.51, 0.52, 0.53, 0.54, 0.55, 0.56]))
    d = paired_difference(better, base)
    assert d.interval.mean == pytest.approx(0.035)
    # all 6 differences positive: exact two-sided p = 2 / 2^6 for both tests
    assert d.wilcoxon_p == pytest.approx(2 / 64) and d.sign_p == pytest.approx(2 / 64)
    assert d.significant
    mixed = dict(zip(units, [0.51, 0.52, 0.53, 0.54, 0.55, 0.44]))  # +1..+5, -6 (ranks)
    d = paired_difference(mixed, base)
    # sign test: 5 of 6 positive -> 2 * (1 + 6) / 64; Wilcoxon: W- = 6, and 14 of the 64 sign
    # patterns have W <= 6 -> p = 2 * 14 / 64
    assert d.sign_p == pytest.approx(14 / 64) and d.wilcoxon_p == pytest.approx(28 / 64)
    # only the units both have are paired; an all-tied comparison is no difference at all
    partial = paired_difference({"f1": 0.6, "f2": 0.7, "x": 0.9}, base)
    assert partial.units == ("f1", "f2") and partial.interval.n == 2
    same = paired_difference(base, base)
    assert same.interval.mean == 0 and not same.significant and same.wilcoxon_p == 1.0
