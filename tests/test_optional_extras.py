"""A core install (`pip install audioprune`, no extras) prunes, trains and counts; what needs an
optional extra (ONNX export, ONNX Runtime timing, plots) says in one line which extra to install,
instead of a ModuleNotFoundError traceback. The extras are hidden from a subprocess by making
their import fail, as on a machine that does not have them."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MEASURE = ("onnx", "onnxruntime", "onnxscript", "matplotlib")


def _run(args: list[str], hidden: tuple[str, ...] = MEASURE, code: str | None = None,
         cwd: Path | None = None) -> subprocess.CompletedProcess:
    hide = "import sys\nfor m in %r: sys.modules[m] = None\n" % (hidden,)
    body = code or "from audioprune.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    return subprocess.run([sys.executable, "-c", hide + body, *args], capture_output=True,
                          text=True, cwd=cwd, timeout=600)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("extras") / "run"
    done = _run(["train", "--model", "dcase21net", "--width", "0.25", "--dataset", "synthetic",
                 "--split", "sizes:40,10,20", "--epochs", "1", "--no-progress", "--out", str(out)])
    assert done.returncode == 0, done.stderr
    return out


# Run first in a child: no module of an installed distribution outside the closure of `core` (the
# requirements given as JSON in argv[1], with their own requirements, extras left out) is found,
# as on a machine where `pip install audioprune` installed only those.
ONLY_CORE = """
import importlib.metadata as md, json, re, sys
def key(name): return re.sub(r"[-_.]+", "-", name).lower()
keep, todo = set(), [key(re.split(r"[ ;<>=!~\\[(]", r, 1)[0]) for r in json.loads(sys.argv.pop(1))]
while todo:
    name = todo.pop()
    if name in keep:
        continue
    keep.add(name)
    try:
        todo += [key(re.split(r"[ ;<>=!~\\[(]", r, 1)[0]) for r in md.requires(name) or []
                 if "extra ==" not in r]
    except md.PackageNotFoundError:
        pass
blocked = {top for top, dists in md.packages_distributions().items()
           if top != "audioprune" and not any(key(d) in keep for d in dists)}
from importlib.machinery import PathFinder
class CoreOnly(PathFinder):  # finds what PathFinder finds, except the blocked distributions
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        return None if name.split(".")[0] in blocked else PathFinder.find_spec(name, path, target)
sys.meta_path = [CoreOnly if f is PathFinder else f for f in sys.meta_path]
assert CoreOnly in sys.meta_path
"""


def test_pruning_is_in_the_core_install() -> None:
    """ap.prune with a graph criterion, through Torch-Pruning, on a machine holding only the
    core requirements: nothing else is imported, and the core does not hold the measure
    extra."""
    core = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert not any(m in " ".join(core) for m in MEASURE)
    code = ("import torch, audioprune as ap\n"
            "m = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3), torch.nn.ReLU(),"
            " torch.nn.Conv2d(8, 8, 3), torch.nn.Flatten(), torch.nn.Linear(128, 3))\n"
            "x = torch.randn(2, 1, 8, 8)\n"
            "r = ap.prune(m, x, 'betweenness', ap.Plan(ratio=0.5)); print(r.summary())\n"
            "print(m(x).shape, 'torch_pruning' in sys.modules, 'igraph' in sys.modules)\n")
    done = subprocess.run([sys.executable, "-c", ONLY_CORE + code, json.dumps(core)],
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "betweenness: params 1,051 -> 383 (63.6% fewer), MACs 12,192 -> 3,792 (68.9% fewer); "
        "0 8->4, 2 8->4", "torch.Size([2, 3]) True True"]


def test_prune_and_the_api_work_without_the_measure_extra(run_dir: Path, tmp_path: Path) -> None:
    done = _run(["prune", str(run_dir), "--criterion", "wdc", "--ratio", "0.25",
                 "--finetune-epochs", "0", "--no-progress", "--out", str(tmp_path / "pruned")])
    assert done.returncode == 0, done.stderr
    code = ("import torch, audioprune as ap\n"
            "m = torch.nn.Sequential(torch.nn.Conv2d(1, 8, 3), torch.nn.ReLU(),"
            " torch.nn.Conv2d(8, 8, 3), torch.nn.Flatten(), torch.nn.LazyLinear(3))\n"
            "x = torch.randn(2, 1, 8, 8); m(x)\n"
            "r = ap.prune(m, x, 'l1', ratio=0.5); print(r.summary())\n")
    done = _run([], code=code)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ("l1: params 1,051 -> 383 (63.6% fewer), MACs 12,192 -> 3,792 "
                                   "(68.9% fewer); 0 8->4, 2 8->4")
    metrics = json.loads((tmp_path / "pruned" / "metrics.json").read_text())
    parent = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["pruning"]["criterion"] == "wdc" and metrics["params"] < parent["params"]


def test_export_names_the_extra_in_one_line(run_dir: Path, tmp_path: Path) -> None:
    done = _run(["export", str(run_dir), "--onnx", str(tmp_path / "m.onnx")])
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.strip() == ("audioprune export: error: ONNX export needs onnx, which is "
                                   "not installed: pip install 'audioprune[measure]'")
    assert not (tmp_path / "m.onnx").exists()


def test_report_without_matplotlib_writes_the_table_and_says_how_to_get_plots(
        run_dir: Path, tmp_path: Path) -> None:
    done = _run(["report", str(run_dir), "--out", str(tmp_path / "report")])
    assert done.returncode == 0, done.stderr
    text = (tmp_path / "report" / "report.md").read_text()
    assert "| run | dcase21net | unpruned |" in text  # the table row of the run
    assert "No plots: plotting a report needs matplotlib, which is not installed: " \
           "pip install 'audioprune[measure]'." in text
    assert not list((tmp_path / "report").glob("*.png"))


def test_profile_without_onnx_keeps_counts_and_eager_timing(run_dir: Path) -> None:
    done = _run(["profile", str(run_dir), "--json", "--batch-sizes", "1", "--threads", "1"])
    assert done.returncode == 0, done.stderr
    assert "pip install 'audioprune[measure]'" in done.stderr
    assert '"eager"' in done.stdout and '"onnxruntime": null' in done.stdout


def test_the_ray_executor_names_its_extra(tmp_path: Path) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text("name: r\ndataset: synthetic\nmodels: [{name: dcase21net}]\nprofile: false\n")
    done = _run(["run", str(recipe), "--executor", "ray", "--out", str(tmp_path / "out")],
                hidden=("ray",))
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().endswith("the Ray executor needs ray, which is not installed: "
                                        "pip install 'audioprune[ray]'")
