"""One smoke test of the peer benchmarks (bench/): the masks-vs-structural --quick path.

Not a timed test: it checks what the benchmark claims structurally (masks keep every stored
parameter and every MAC, structural pruning removes both; the unstructured masks reach the same
per-layer weight sparsity as the structural pruning), and that its JSON has the timings.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from audioprune.fileio import read_json

BENCH = Path(__file__).resolve().parents[1] / "bench"


@pytest.mark.slow  # ~7 s of CPU, most of it first-time imports (meta-device model rebuilds)
def test_bench_masks_quick(tmp_path: Path) -> None:
    sys.path.insert(0, str(BENCH))
    try:
        import bench_masks
    finally:
        sys.path.remove(str(BENCH))
    out = tmp_path / "masks.json"
    assert bench_masks.main(["--quick", "--rounds", "1", "--budget", "0.001", "--batches", "1",
                             "--out", str(out)]) == 0
    res = read_json(out)["results"][0]
    v = res["variants"]
    dense, ours = v["dense"], v["ours (structural)"]
    for name in ("l1_unstructured (mask)", "ln_structured (mask)", "ln_structured (mask baked)"):
        assert v[name]["macs"] == dense["macs"] == res["macs"]  # masks change no MAC
        assert v[name]["params_stored"] == dense["params_stored"]
        assert v[name]["nonzero_weights"] < dense["nonzero_weights"]
        assert v[name]["latency_b1"]["ms"] > 0
    assert ours["macs"] < 0.5 * dense["macs"] and ours["params_stored"] < 0.5 * dense["params_stored"]
    assert ours["widths"]["conv1"] == dense["widths"]["conv1"] // 2  # ratio 0.5 of 16 filters
    assert v["ln_structured (mask)"]["nonzero_weights"] == v["ln_structured (mask baked)"]["nonzero_weights"]
    # the unstructured masks zero as many conv/linear weights as structural pruning removed
    # (BN and bias entries differ: structural pruning removes those too)
    gap = v["l1_unstructured (mask)"]["nonzero_weights"] - ours["nonzero_weights"]
    assert 0 < gap < 0.05 * dense["params_stored"]
    assert v["dense"]["latency_b1"]["ratio"] == 1.0
