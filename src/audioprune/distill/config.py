"""Who teaches and how: a distillation's settings, checked before any data is read."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from audioprune.distill.losses import get_recipe
from audioprune.distill.teacher import (
    MODES,
)
from audioprune.errors import UserError


@dataclass
class DistillConfig:
    """Who teaches and how: the teacher run, the loss recipe (None = the task's default) and its
    temperature / alpha (None = the recipe's published defaults), and the teacher mode."""

    teacher: str
    loss: str | None = None
    temperature: float | None = None
    alpha: float | None = None
    teacher_mode: str = "auto"

    def validate(self) -> DistillConfig:
        """Errors that need no data surface before a run directory is written."""
        if self.loss is not None:
            get_recipe(self.loss).build(self.temperature, self.alpha)
        else:
            get_recipe("hinton").build(self.temperature, self.alpha)  # checks T and alpha
        if self.teacher_mode not in MODES:
            raise UserError(f"`teacher_mode` must be one of {', '.join(MODES)}, "
                            f"got {self.teacher_mode!r}")
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> DistillConfig:
        return cls(**d)
