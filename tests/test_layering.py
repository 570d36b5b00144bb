"""The package's imports run one way (DEVELOPERS.md, layout): the library (audio, data, models,
nn, pruning, measure, distill, train, report) never imports the run-directory layer (runs/), the
pipeline or the CLI; runs/ never imports the pipeline or the CLI; the pipeline never imports the
CLI. And no module imports, even for type hints only, a module that imports it back. Read from
the source with ast, so an import inside a function or under TYPE_CHECKING counts too."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = SRC / "audioprune"
LIBRARY = ("audio", "data", "models", "nn", "pruning", "measure", "distill", "train", "report")
ABOVE = {**{p: ("runs", "pipeline", "cli", "demo", "integrations") for p in LIBRARY},
         "runs": ("pipeline", "cli", "demo"), "pipeline": ("cli",)}


def _module(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, modules: set[str]) -> set[str]:
    """The modules of the package that `path` imports: `from pkg import sub` names pkg.sub
    (a submodule), `from pkg import name` names pkg."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            subs = {f"{node.module}.{a.name}" for a in node.names} & modules
            found |= subs
            if len(subs) < len(node.names):
                found.add(node.module)
    return found & modules


def _graph() -> dict[str, set[str]]:
    paths = {_module(p): p for p in PACKAGE.rglob("*.py")}
    return {name: _imports(path, set(paths)) - {name} for name, path in paths.items()}


def test_no_import_runs_from_a_lower_layer_up() -> None:
    wrong = []
    for name, targets in _graph().items():
        layer = name.split(".")[1] if "." in name else ""
        for target in targets:
            if "." not in target:  # the top package, which re-exports the library
                up = layer in LIBRARY
            else:
                up = target.split(".")[1] in ABOVE.get(layer, ())
            if up:
                wrong.append(f"{name} -> {target}")
    assert not wrong, "imports that run back up: " + ", ".join(sorted(wrong))


def test_no_two_modules_import_each_other_through_any_path() -> None:
    graph = _graph()
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycle: list[str] = []

    def visit(node: str, path: list[str]) -> bool:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle.extend(path[path.index(nxt):] + [node, nxt] if nxt in path else [node, nxt])
                return True
            if nxt not in state and visit(nxt, path + [node]):
                return True
        state[node] = 2
        return False

    for start in sorted(graph):
        if start not in state and visit(start, []):
            break
    assert not cycle, "import cycle: " + " -> ".join(cycle)


# bench/ is a layer on top (DEVELOPERS.md, bench/): the scripts that run and record accuracy
# benchmarks and render the tables use the public API, the pipeline, report and file helpers
# only. The speed and memory benchmarks (the other bench_*.py, gpu_check.py) time named internal
# modules side by side with the naive path or the peer, and so may import them.
BENCH = SRC.parent / "bench"
RECORDERS = ("benchmark.py", "claims.py", "claims_table.py", "bench_quaternion_modes.py",
             "ravdess_frontend.py", "write_benchmarks.py", "run_quick.py", "benchlib.py")
RECORDER_MAY_IMPORT = ("audioprune.pipeline", "audioprune.report", "audioprune.fileio")


def test_benchmark_recorders_import_only_the_api_the_pipeline_and_report() -> None:
    wrong = []
    for name in RECORDERS:
        for node in ast.walk(ast.parse((BENCH / name).read_text(encoding="utf-8"))):
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module] if isinstance(node, ast.ImportFrom) and node.module else []
            for module in modules:
                allowed = any(module == m or module.startswith(m + ".")
                              for m in RECORDER_MAY_IMPORT)
                if module.startswith("audioprune.") and not allowed:
                    wrong.append(f"{name}: {module}")
    assert not wrong, "bench recorders importing internals: " + ", ".join(wrong)
