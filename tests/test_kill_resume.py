"""Nothing lost on kill -9: a real `audioprune train` process is SIGKILLed after its second
epoch checkpoint, every file it left is whole, and `--resume` finishes with exactly the metrics
and weights of an uninterrupted run with the same seed.

The kill is sent once the run has logged epoch 2 (read from its output as it prints it), so it
lands somewhere in epoch 3 or 4 - mid-epoch or mid-checkpoint. The killed process is the CLI with
one test hook: it waits before writing epoch 4's checkpoint, so however slowly the test gets to
the kill, the run can never finish first."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from audioprune.fileio import read_tensors
from waiting import read_until

EPOCHS = 6
TRAIN = ["--model", "dcase21net", "--width", "0.25", "--dataset", "synthetic", "--split",
         "sizes:60,20,20", "--epochs", str(EPOCHS), "--batch-size", "10", "--seed", "3",
         "--no-progress"]
# what may differ between two runs of the same settings: wall-clock times only
TIMES = {"train_seconds", "seconds"}


# `audioprune train` (what `python -m audioprune train` runs) that waits, forever, before it
# writes the checkpoint of epoch 4: only a kill ends it
HELD_AFTER_EPOCH_3 = """
import sys, threading
import audioprune.train.fit as fit
save = fit.save_checkpoint
def held(run_dir, model, optimizer, scheduler, state):
    if state["epoch"] >= 4:
        threading.Event().wait()
    save(run_dir, model, optimizer, scheduler, state)
fit.save_checkpoint = held
from audioprune.cli import main
sys.exit(main(["train", *sys.argv[1:]]))
"""


def _cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "audioprune", "train", *args]


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
            "AUDIOPRUNE_CACHE": str(tmp_path / "cache")}


def _run(args: list[str], tmp_path: Path, log: str) -> None:
    with open(tmp_path / log, "w") as fh:
        code = subprocess.run(_cmd(*args), env=_env(tmp_path), stdout=fh, stderr=subprocess.STDOUT,
                              timeout=600).returncode
    assert code == 0, (tmp_path / log).read_text()[-3000:]


def _epoch_of(ckpt: Path) -> int:
    try:
        return int(json.loads((ckpt / "last.json").read_text())["epoch"])
    except (OSError, ValueError, KeyError):
        return 0  # not there yet (the rename is atomic: never half a file)


def _without_times(obj: object) -> object:
    if isinstance(obj, dict):
        return {k: _without_times(v) for k, v in obj.items() if k not in TIMES}
    if isinstance(obj, list):
        return [_without_times(v) for v in obj]
    return obj


@pytest.mark.slow
def test_sigkill_then_resume_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    full, cut = tmp_path / "full", tmp_path / "cut"
    _run([*TRAIN, "--out", str(full)], tmp_path, "full.log")  # also fills the audio cache

    proc = subprocess.Popen([sys.executable, "-c", HELD_AFTER_EPOCH_3, *TRAIN, "--out", str(cut)],
                            env=_env(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:  # "epoch 2/6  loss ..." is logged once epoch 2's checkpoint is written
        read_until(proc, lambda lines: any(f"epoch 2/{EPOCHS} " in x for x in lines), timeout=300)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    assert not (cut / "metrics.json").exists()
    killed_at = _epoch_of(cut / "checkpoint")
    assert killed_at in (2, 3)  # epoch 2's checkpoint was written; epoch 4's is held back

    # every file the kill left behind is whole; half-written temp files are only ever .*.tmp
    left = [p for p in cut.rglob("*") if p.is_file()]
    temps = [p for p in left if p.name.startswith(".") and p.name.endswith(".tmp")]
    for path in set(left) - set(temps):
        if path.suffix == ".json":
            json.loads(path.read_text())
        elif path.suffix == ".safetensors":
            assert read_tensors(path)
    assert {"config.json", "model.safetensors", "last.json", "last.safetensors", "prev.json",
            "prev.safetensors"} <= {p.name for p in left}

    _run(["--resume", str(cut)], tmp_path, "resume.log")
    assert f"resumed from epoch {killed_at}" in (cut / "log.txt").read_text()
    assert not [p for p in cut.rglob(".*.tmp")]  # the resumed run cleared the leftovers
    a = json.loads((full / "metrics.json").read_text())
    b = json.loads((cut / "metrics.json").read_text())
    assert len(b["history"]) == EPOCHS
    assert _without_times(a) == _without_times(b)  # accuracy, confusion matrix, every epoch's loss
    wa, wb = read_tensors(full / "model.safetensors"), read_tensors(cut / "model.safetensors")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def test_a_write_killed_half_way_leaves_the_old_file_and_a_temp_that_resume_clears(tmp_path: Path) -> None:
    from audioprune.fileio import remove_stale_temps, write_json

    target = tmp_path / "run" / "metrics.json"
    write_json(target, {"accuracy": 0.5})
    pid = os.fork()
    if pid == 0:  # the child dies inside the write, as under kill -9: no cleanup code runs
        from audioprune.fileio import atomic_write

        atomic_write(target, lambda p: (p.write_text('{"accuracy": 0.'), os._exit(0)))
    os.waitpid(pid, 0)
    assert json.loads(target.read_text()) == {"accuracy": 0.5}  # the last good file, intact
    temps = list(target.parent.glob(".metrics.json.*.tmp"))
    assert len(temps) == 1 and temps[0].read_text() == '{"accuracy": 0.'
    assert remove_stale_temps(tmp_path / "run") == temps and not temps[0].exists()
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's private 0600
