"""Untrusted files never run code: a malicious pickle handed over as a model or as a checkpoint
is refused with a clear error and its payload never executes; no code path unpickles."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import pytest
import torch

from audioprune.cli import main
from audioprune.runs.data import DataSpec
from audioprune.runs.train import train_run
from audioprune.train.fit import TrainConfig

SRC = Path(__file__).resolve().parents[1] / "src" / "audioprune"


class Payload:
    """Unpickling this creates `marker`: proof that code from the file ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sec") / "run"
    train_run("dcase21net", {"width": 0.25}, DataSpec("synthetic", options={"split": "sizes:20,10,20"}),
              TrainConfig(epochs=1, batch_size=10, progress=False), out)
    return out


def _evil(path: Path, marker: Path) -> None:
    torch.save({"model.conv1.weight": torch.zeros(1), "x": Payload(marker)}, path)
    with pytest.raises(Exception):  # sanity: unpickling it WOULD run the payload...
        torch.load(path, weights_only=True)  # ...which weights_only refuses as well
    assert not marker.exists()


def test_malicious_pickle_as_model_is_refused(run: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture) -> None:
    evil, marker = tmp_path / "evil", tmp_path / "pwned"
    shutil.copytree(run, evil)
    _evil(evil / "model.safetensors", marker)
    assert main(["evaluate", str(evil), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "is not a readable safetensors file" in err and "never loads pickled" in err
    assert main(["prune", str(evil), "--criterion", "l1", "--ratio", "0.5", "--out",
                 str(tmp_path / "p"), "--no-progress"]) == 2
    assert "never loads pickled" in capsys.readouterr().err
    assert not marker.exists()


@pytest.mark.parametrize("matching_digest", [True, False])
def test_malicious_pickle_as_checkpoint_is_refused(run: Path, tmp_path: Path, matching_digest: bool,
                                                   capsys: pytest.CaptureFixture) -> None:
    evil, marker = tmp_path / "evil", tmp_path / "pwned"
    shutil.copytree(run, evil)
    ckpt = evil / "checkpoint"
    _evil(ckpt / "last.safetensors", marker)
    if matching_digest:  # the attacker also rewrites last.json so the pair looks whole
        meta = json.loads((ckpt / "last.json").read_text())
        meta["tensors_sha"] = hashlib.sha256((ckpt / "last.safetensors").read_bytes()).hexdigest()
        (ckpt / "last.json").write_text(json.dumps(meta))
    code = main(["train", "--resume", str(evil), "--epochs", "2"])
    err = capsys.readouterr().err
    assert not marker.exists()
    assert code == 2 and "Traceback" not in err
    if matching_digest:
        assert "last.safetensors is not a safetensors file" in err and "never unpickles" in err
    else:  # the pair does not belong together: treated as a torn write, and there is no other
        assert "no complete checkpoint" in err


def test_no_code_path_unpickles() -> None:
    """A static guard: loading goes through safetensors and JSON only."""
    risky = re.compile(r"torch\.load\((?![^)]*weights_only\s*=\s*True)|pickle\.loads?\(|"
                       r"allow_pickle\s*=\s*True|yaml\.load\((?![^)]*SafeLoader)|yaml\.unsafe_load|"
                       r"dill\.|joblib\.load\(|cloudpickle")
    hits = [f"{p.relative_to(SRC)}:{n}: {line.strip()}"
            for p in sorted(SRC.rglob("*.py"))
            for n, line in enumerate(p.read_text().splitlines(), 1) if risky.search(line)]
    assert hits == [], hits


@pytest.mark.parametrize("models, prune", [
    ("[{name: ../../escaped, arch: dcase21net}]", ""),
    ("[{name: /tmp/escaped, arch: dcase21net}]", ""),
    ("[{name: dcase21net}]", "prune: {criteria: [{name: l1, label: ../../../escaped}], ratios: [0.5]}"),
])
def test_recipe_names_cannot_write_outside_the_output(tmp_path: Path, models: str, prune: str) -> None:
    from audioprune.errors import UserError
    from audioprune.pipeline.recipe import resolve_recipe

    recipe = tmp_path / "evil.yaml"
    recipe.write_text(f"name: evil\ndataset: {{name: synthetic}}\nmodels: {models}\n{prune}\n")
    with pytest.raises(UserError, match="is not a plain name inside the output directory"):
        resolve_recipe(recipe)
