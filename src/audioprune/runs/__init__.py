"""The run-directory layer: every operation that reads or writes a run directory (train, prune,
distill, quantize, export, profile, predict, evaluate, import) and the directory's format
(run_dir.py: model.safetensors, model.json, metrics.json, config.json, log.txt).

It sits above the library (audio, data, models, nn, measure, pruning, distill, train's fit loop),
which never imports it; the pipeline and the CLI sit above it. Import the submodule you need:
``from audioprune.runs.prune import prune_run``.
"""
