"""`audioprune demo`: the main job, end to end on data that needs no download.

It is the built-in recipe `demo` (src/audioprune/pipeline/recipes/demo.yaml) run through the same
pipeline as `audioprune run`: train dcase21net and its quaternion twin qdcase21net on the
synthetic dataset, prune each with wdc (graph centrality) and l1 (norm baseline) at 25% and 50%
of C1-C2, fine-tune, evaluate, profile, and print the report table and where the report and
plots are. A second call skips what is done; `--dataset NAME --data-root DIR` runs the same
experiment on real data.
"""

from __future__ import annotations

from pathlib import Path

from audioprune.pipeline.recipe import resolve_recipe
from audioprune.pipeline.runner import PipelineResult, run_recipe, summary, with_overrides


def run_demo(out: Path | None = None, dataset: str = "synthetic", data_root: str | None = None,
             epochs: int | None = None, progress: bool = True) -> PipelineResult:
    """Run the demo recipe into `out` (default runs/demo, runs/demo-DATASET on other data)."""
    recipe = with_overrides(resolve_recipe("demo"), dataset=dataset, data_root=data_root,
                            epochs=epochs)
    if out is None:
        out = Path("runs") / ("demo" if dataset == "synthetic" else f"demo-{dataset}")
    result = run_recipe(recipe, Path(out), progress=progress)
    print(summary(result))
    return result
