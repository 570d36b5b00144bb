"""Transfer learning: start a model from another run's weights (trained, pruned or imported),
keep its front end, replace its classifier when the class count differs, freeze layers."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from audioprune.audio.frontend import FrontEndConfig
from audioprune.errors import UserError
from audioprune.fileio import read_tensors
from audioprune.models.base import AudioClassifier
from audioprune.runs.data import DataSpec
from audioprune.runs.run_dir import (
    MODEL_WEIGHTS,
)

log = logging.getLogger("audioprune")


INIT_FRONTEND_CHANGES = ("clip_seconds",)  # what a fine-tune may change in a pretrained front end


def init_frontend(info: dict[str, Any], data: DataSpec, init: str) -> dict[str, Any]:
    """The pretrained model's front end (its sample rate, mels, standardisation: what its weights
    expect), with only the clip length taken from the new data's settings."""
    fe = dict(info["frontend"])
    bad = sorted(k for k, v in data.frontend.items()
                 if k not in INIT_FRONTEND_CHANGES and fe.get(k) != v)
    if bad:
        raise UserError(f"`init` {init}: a pretrained model keeps its front end (its weights "
                        f"expect it); only {', '.join(INIT_FRONTEND_CHANGES)} can change, not "
                        f"{', '.join(bad)}")
    fe.update({k: data.frontend[k] for k in INIT_FRONTEND_CHANGES if k in data.frontend})
    return fe


def init_model(run: Path, info: dict[str, Any], num_classes: int,
               fe: FrontEndConfig) -> tuple[AudioClassifier, dict[str, Any]]:
    """The model of run `run` (any: trained, pruned, imported) with its weights, for `num_classes`
    classes: when the count differs the classifier is replaced by a new one (seeded init)."""
    from audioprune.models.registry import model_from_config

    config = {"arch": info["arch"], "num_classes": num_classes, "kwargs": info.get("kwargs", {}),
              "widths": info.get("widths"), "frontend": fe.to_dict()}
    model = model_from_config(config)
    state = read_tensors(Path(run) / MODEL_WEIGHTS)
    head = model.classifier_name
    replaced = int(info["num_classes"]) != num_classes
    if replaced:
        state = {k: v for k, v in state.items() if not k.startswith(head + ".")}
    result = model.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys
               if not k.startswith("frontend.") and not (replaced and k.startswith(head + "."))]
    if missing or result.unexpected_keys:
        raise UserError(f"`init` {run}: its weights do not fit its own architecture "
                        f"(missing {missing[:3]}, unexpected {result.unexpected_keys[:3]})")
    block = {"run": str(Path(run).resolve()), "arch": info["arch"],
             "classes_before": int(info["num_classes"]), "classes": num_classes,
             "classifier_replaced": f"{head} ({info['num_classes']} -> {num_classes} classes)"
             if replaced else None}
    log.info("initialised from %s (%s)%s", run, info["arch"],
             f"; new classifier {head}: {info['num_classes']} -> {num_classes} classes"
             if replaced else "")
    return model, block


def freeze_layers(model: AudioClassifier, patterns: list[str]) -> list[str]:
    """Set requires_grad False on the parameters of the modules named by `patterns` (names or
    glob patterns such as 'block1.*'); returns the frozen module names. A pattern that names
    nothing is an error (it is probably a typo)."""
    import fnmatch

    names = [n for n, _ in model.named_modules() if n and not n.startswith("frontend")]
    chosen: list[str] = []
    for pat in patterns:
        hit = [n for n in names if n == pat or fnmatch.fnmatchcase(n, pat)]
        if not hit:
            top = sorted({n.split(".")[0] for n in names})
            raise UserError(f"`freeze` {pat!r} names no layer; layers: {', '.join(top)} (and "
                            f"their children, e.g. {names[1] if len(names) > 1 else names[0]})")
        chosen += [n for n in hit if n not in chosen]
    modules = dict(model.named_modules())
    for n in chosen:
        for p in modules[n].parameters():
            p.requires_grad_(False)
    if model.classifier_name in chosen:
        log.warning("the classifier %s is frozen too", model.classifier_name)
    return chosen
