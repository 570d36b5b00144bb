"""Model registry after timm: `create_model(name, num_classes, **kw)` builds any registered model."""

from __future__ import annotations

from typing import Any, Callable

from audioprune.audio.frontend import FrontEndConfig
from audioprune.errors import UserError
from audioprune.models.base import AudioClassifier

ModelFn = Callable[..., AudioClassifier]
_REGISTRY: dict[str, ModelFn] = {}
_DESCRIPTIONS: dict[str, str] = {}


def register_model(name: str, description: str = "") -> Callable[[ModelFn], ModelFn]:
    def wrap(fn: ModelFn) -> ModelFn:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} registered twice")
        _REGISTRY[name] = fn
        _DESCRIPTIONS[name] = description or (fn.__doc__ or "").strip().splitlines()[0]
        return fn
    return wrap


def _ensure_loaded() -> None:
    import audioprune.models.zoo  # noqa: F401  (registers the built-in models)


def list_models() -> dict[str, str]:
    _ensure_loaded()
    return {k: _DESCRIPTIONS[k] for k in sorted(_REGISTRY)}


def create_model(name: str, num_classes: int, frontend: FrontEndConfig | None = None,
                 widths: dict[str, int] | None = None, **kwargs: Any) -> AudioClassifier:
    """Build audioprune's model `name` (`list_models()`: dcase21net, cnn6, cnn10, cnn14, their
    quaternion twins qdcase21net, qcnn6, ...) for `num_classes` classes, with its own front end
    (waveform in, log-mel inside: `model.classify(features)` skips it). `frontend` defaults to the
    PANNs AudioSet setting (32 kHz, 64 mels); `widths` overrides per-layer widths (used to rebuild
    pruned models); other keyword arguments are the model's own (e.g. `width` multiplier,
    `dropout`, `spec_augment`). Raises UserError naming an unknown model or option."""
    _ensure_loaded()
    if name not in _REGISTRY:
        raise UserError(f"unknown model {name!r}; choose one of {', '.join(sorted(_REGISTRY))}")
    check_model_args(name, kwargs)
    try:
        model = _REGISTRY[name](num_classes=num_classes, frontend=frontend or FrontEndConfig(),
                               widths=widths, **kwargs)
    except TypeError as exc:
        if "unexpected keyword argument" not in str(exc):
            raise
        bad = str(exc).split("argument")[-1].strip(" '")
        raise UserError(f"model {name!r} has no option {bad!r} (`model_kwargs` / `width`)") from None
    model.arch_name = name
    model.arch_kwargs = dict(kwargs)
    return model


def check_model_args(name: str, kwargs: dict[str, Any]) -> None:
    """The checks that need no model built: a known name and a positive width multiplier (the
    model's own options are checked when it is built)."""
    _ensure_loaded()
    if name not in _REGISTRY:
        raise UserError(f"unknown model {name!r}; choose one of {', '.join(sorted(_REGISTRY))}")
    width = kwargs.get("width", 1.0)
    if isinstance(width, bool) or not isinstance(width, (int, float)) or not width > 0:
        raise UserError(f"`width` must be a positive number (a multiplier of the layer widths), "
                        f"got {width!r}")


def model_config(model: AudioClassifier) -> dict[str, Any]:
    """Everything needed to rebuild `model` (pruned or not) without pickle: goes into model.json."""
    return {
        "arch": model.arch_name,
        "num_classes": model.num_classes,
        "kwargs": model.arch_kwargs,
        "widths": model.layer_widths(),
        "frontend": model.frontend_cfg.to_dict(),
    }


def model_from_config(cfg: dict[str, Any]) -> AudioClassifier:
    return create_model(cfg["arch"], cfg["num_classes"],
                        frontend=FrontEndConfig.from_dict(cfg["frontend"]),
                        widths=cfg.get("widths"), **cfg.get("kwargs", {}))
