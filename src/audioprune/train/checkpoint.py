"""Resumable training state without pickle: tensors in safetensors, everything else in JSON.

`checkpoint/last.safetensors` holds the model, optimizer tensors (Adam moments, step counts);
`checkpoint/last.json` the epoch, the scheduler, early-stopping counters and the history. The JSON
is written after the tensors, and both atomically, so a kill at any moment leaves a pair that
belongs together or (between the two renames) a JSON whose `tensors_sha` no longer matches; then
we fall back to the previous complete pair kept as `prev.*`.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from audioprune.errors import UserError
from audioprune.fileio import atomic_write, read_json, read_tensors, write_json, write_tensors

CKPT_DIR = "checkpoint"
MODEL_WEIGHTS = "model.safetensors"  # the best epoch's weights, beside the checkpoints


def model_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Weights and persistent buffers; the front end's buffers are rebuilt from settings."""
    return {k: v for k, v in model.state_dict().items() if not k.startswith("frontend.")}


def _flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, pstate in state["state"].items():
        for key, val in pstate.items():
            if isinstance(val, torch.Tensor):
                tensors[f"optim.{idx}.{key}"] = val
            else:
                scalars.setdefault(str(idx), {})[key] = val
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for name, val in tensors.items():
        if name.startswith("optim."):
            _, idx, key = name.split(".", 2)
            state.setdefault(int(idx), {})[key] = val
    for idx, vals in meta["scalars"].items():
        state.setdefault(int(idx), {}).update(vals)
    return {"state": state, "param_groups": meta["param_groups"]}


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def save_checkpoint(run_dir: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler: Any, state: dict[str, Any]) -> None:
    ckpt = run_dir / CKPT_DIR
    ckpt.mkdir(parents=True, exist_ok=True)
    last_t, last_j = ckpt / "last.safetensors", ckpt / "last.json"
    if last_t.exists() and last_j.exists():  # keep the previous good pair until the new one is whole
        for src, dst in ((last_t, ckpt / "prev.safetensors"), (last_j, ckpt / "prev.json")):
            atomic_write(dst, lambda tmp, src=src: shutil.copyfile(src, tmp))  # never half a copy
    opt_tensors, opt_meta = _flatten_optimizer(optimizer.state_dict())
    tensors = {f"model.{k}": v for k, v in model.state_dict().items() if not k.startswith("frontend.")}
    tensors.update(opt_tensors)
    write_tensors(last_t, tensors)
    meta = {"optimizer": opt_meta, "scheduler": scheduler.state_dict() if scheduler else None,
            "tensors_sha": _digest(last_t), **state}
    write_json(last_j, meta)


def _complete_pairs(ckpt: Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    """(tensors file, its metadata) of each complete checkpoint in `ckpt`, newest first: a pair
    whose JSON does not parse (edited by hand?) or does not name its tensors' digest (killed
    between the two writes) is skipped for the previous one."""
    for stem in ("last", "prev"):
        t_path, j_path = ckpt / f"{stem}.safetensors", ckpt / f"{stem}.json"
        if not (t_path.is_file() and j_path.is_file()):
            continue
        try:
            meta = read_json(j_path)
        except ValueError:
            continue
        if isinstance(meta, dict) and meta.get("tensors_sha") == _digest(t_path):
            yield t_path, meta


def load_checkpoint(run_dir: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                    scheduler: Any) -> dict[str, Any]:
    """Restore model/optimizer/scheduler in place; return the saved loop state."""
    ckpt = run_dir / CKPT_DIR
    for t_path, meta in _complete_pairs(ckpt):
        try:
            tensors = read_tensors(t_path)
        except Exception as exc:  # safetensors' own error types; nothing was unpickled
            raise UserError(f"{t_path} is not a safetensors file ({exc}); refusing to load it "
                            f"(audioprune never unpickles checkpoints). Start the run again "
                            f"without `resume`") from None
        model_state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
        model.load_state_dict(model_state, strict=False)
        optimizer.load_state_dict(_unflatten_optimizer(tensors, meta["optimizer"]))
        if scheduler is not None and meta.get("scheduler") is not None:
            scheduler.load_state_dict(meta["scheduler"])
        return meta
    raise UserError(f"no complete checkpoint in {ckpt}; the run stopped before its first epoch "
                    f"ended — start it again without `resume`")


def checkpoint_extra(run_dir: Path) -> dict[str, Any] | None:
    """What fit's `extra_state` saved with the newest complete checkpoint (None: no checkpoint,
    or none saved): read before the model is built, e.g. the shape a progressive prune had
    reached."""
    for _, meta in _complete_pairs(run_dir / CKPT_DIR):
        return meta.get("extra")
    return None
