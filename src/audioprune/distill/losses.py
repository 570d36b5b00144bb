"""Knowledge-distillation losses as registered, composable pieces (after torchdistill).

A loss is a weighted sum of TERMS. Each term maps (student logits s, teacher logits t, targets y,
temperature T) to a scalar, averaged over the batch:

  ce        CE(s, y)                         cross-entropy with the labels (class indices, or soft
                                             class probabilities after mixup)
  bce       BCE(sigmoid(s), y)               binary cross-entropy with the multi-hot labels (a
                                             single-label y is made one-hot)
  kl        T^2 * KL(softmax(t/T) || softmax(s/T))
                                             Hinton's softened-softmax matching; the T^2 keeps the
                                             gradient's scale independent of T (Hinton et al. 2015)
  soft-bce  BCE(sigmoid(s), sigmoid(t/T))    per-class soft targets for multi-label tagging
                                             (EfficientAT: only the teacher is divided by T)

A RECIPE names a standard combination, with the defaults of its published recipe; `alpha` is
always the weight of the distillation term and 1 - alpha that of the label term:

  hinton    (1 - alpha) * CE(s, y) + alpha * T^2 * KL(softmax(t/T) || softmax(s/T))
            single-label. T = 4, alpha = 0.9: the KD baseline of CRD / mdistiller (CE weight 0.1,
            KD weight 0.9, T = 4).
  bce-soft  (1 - alpha) * BCE(s, y) + alpha * BCE(s, sigmoid(t/T))
            multi-label (AudioSet). T = 1, alpha = 0.9: EfficientAT (Schmid et al. 2023), whose
            kd_lambda = 0.1 weighs the LABEL loss, so alpha = 1 - kd_lambda.
  qcnn      (1 - alpha) * BCE(s, y) + alpha * T^2 * KL(softmax(t/T) || softmax(s/T))
            the QCNN authors' variant (clip BCE + T^2 KL on the clip outputs, T = 2). They add the
            two terms with equal weight; alpha = 0.5 is that sum times 1/2 (a constant factor
            that Adam's update does not see).

`make_loss("hinton", temperature=3)` builds a recipe; `KDLoss([(0.5, "ce"), (0.5, "kl")], T)`
composes any terms directly; `register_term` adds a term.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from audioprune.errors import UserError

Term = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, float], torch.Tensor]
_TERMS: dict[str, Term] = {}


def register_term(name: str) -> Callable[[Term], Term]:
    def wrap(fn: Term) -> Term:
        if name in _TERMS:
            raise ValueError(f"distillation term {name!r} registered twice")
        _TERMS[name] = fn
        return fn
    return wrap


def _multi_hot(y: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """Targets for BCE in `like`'s dtype: class indices become one-hot; soft or multi-hot targets
    pass through."""
    if y.dtype == torch.long:
        return F.one_hot(y, like.shape[1]).to(like.dtype)
    return y.to(like.dtype)


@register_term("ce")
def ce_term(s: torch.Tensor, t: torch.Tensor, y: torch.Tensor, T: float) -> torch.Tensor:
    """CE(s, y): the label loss of single-label training (y: indices or class probabilities)."""
    if y.dtype != torch.long and y.shape != s.shape:
        raise ValueError(f"soft targets of shape {tuple(y.shape)} for logits {tuple(s.shape)}")
    return F.cross_entropy(s, y)


@register_term("bce")
def bce_term(s: torch.Tensor, t: torch.Tensor, y: torch.Tensor, T: float) -> torch.Tensor:
    """BCE(sigmoid(s), y), mean over classes and batch: the multi-label (clip) label loss."""
    return F.binary_cross_entropy_with_logits(s, _multi_hot(y, s))


@register_term("kl")
def kl_term(s: torch.Tensor, t: torch.Tensor, y: torch.Tensor, T: float) -> torch.Tensor:
    """T^2 * KL(softmax(t/T) || softmax(s/T)), summed over classes, mean over the batch."""
    log_p_s = F.log_softmax(s / T, dim=1)
    log_p_t = F.log_softmax(t / T, dim=1)
    return T * T * F.kl_div(log_p_s, log_p_t, reduction="batchmean", log_target=True)


@register_term("soft-bce")
def soft_bce_term(s: torch.Tensor, t: torch.Tensor, y: torch.Tensor, T: float) -> torch.Tensor:
    """BCE(sigmoid(s), sigmoid(t/T)), mean over classes and batch (EfficientAT's KD loss)."""
    return F.binary_cross_entropy_with_logits(s, torch.sigmoid(t / T))


@dataclass
class KDLoss:
    """sum_i weight_i * term_i(student, teacher, targets, T)."""

    terms: list[tuple[float, str]]
    temperature: float

    def __post_init__(self) -> None:
        unknown = [name for _, name in self.terms if name not in _TERMS]
        if unknown:
            raise UserError(f"unknown distillation term(s) {unknown}; known: {', '.join(_TERMS)}")
        if not self.temperature > 0:
            raise UserError(f"`temperature` must be > 0, got {self.temperature}")

    def parts(self, student: torch.Tensor, teacher: torch.Tensor,
              targets: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each term's unweighted value (for logs and tests)."""
        teacher = teacher.detach().to(student.dtype)
        return {name: _TERMS[name](student, teacher, targets, self.temperature)
                for _, name in self.terms}

    def __call__(self, student: torch.Tensor, teacher: torch.Tensor,
                 targets: torch.Tensor) -> torch.Tensor:
        parts = self.parts(student, teacher, targets)
        return sum((w * parts[name] for w, name in self.terms), student.new_zeros(()))


@dataclass(frozen=True)
class Recipe:
    """A named loss: label term + distillation term mixed by alpha, with published defaults."""

    name: str
    label_term: str
    kd_term: str
    temperature: float
    alpha: float
    tasks: tuple[str, ...]
    formula: str
    source: str

    def build(self, temperature: float | None = None, alpha: float | None = None) -> KDLoss:
        a = self.alpha if alpha is None else float(alpha)
        if not 0.0 <= a <= 1.0:
            raise UserError(f"`alpha` must be in [0, 1] (the weight of the distillation term), "
                            f"got {a}")
        T = self.temperature if temperature is None else float(temperature)
        return KDLoss([(1.0 - a, self.label_term), (a, self.kd_term)], T)


RECIPES: dict[str, Recipe] = {r.name: r for r in (
    Recipe("hinton", "ce", "kl", 4.0, 0.9, ("single-label",),
           "(1-alpha)*CE(s,y) + alpha*T^2*KL(softmax(t/T)||softmax(s/T))",
           "the CRD / mdistiller KD baseline"),
    Recipe("bce-soft", "bce", "soft-bce", 1.0, 0.9, ("multi-label", "single-label"),
           "(1-alpha)*BCE(s,y) + alpha*BCE(s,sigmoid(t/T))",
           "EfficientAT, kd_lambda=0.1 on the label loss"),
    Recipe("qcnn", "bce", "kl", 2.0, 0.5, ("multi-label", "single-label"),
           "(1-alpha)*BCE(s,y) + alpha*T^2*KL(softmax(t/T)||softmax(s/T))",
           "the QCNN authors' equal-weight sum, halved"),
)}
DEFAULT_RECIPE = {"single-label": "hinton", "multi-label": "bce-soft"}


def get_recipe(name: str) -> Recipe:
    if name not in RECIPES:
        raise UserError(f"unknown distillation loss {name!r}; choose one of {', '.join(RECIPES)}")
    return RECIPES[name]


def resolve_recipe(name: str | None, task: str) -> Recipe:
    """The named recipe (checked against the task), or the task's default."""
    recipe = get_recipe(name or DEFAULT_RECIPE[task])
    if task not in recipe.tasks:
        raise UserError(f"`loss` {recipe.name} is for {' or '.join(recipe.tasks)} data, but this "
                        f"dataset is {task}; use `loss` {DEFAULT_RECIPE[task]}")
    return recipe


def make_loss(name: str, temperature: float | None = None, alpha: float | None = None) -> KDLoss:
    """Build recipe `name` with its published defaults unless T / alpha are given."""
    return get_recipe(name).build(temperature, alpha)


def recipes_help() -> str:
    """One line per recipe with its defaults, for the CLI help."""
    return "; ".join(f"{r.name} = {r.formula}, T={r.temperature:g}, alpha={r.alpha:g} "
                     f"({r.source})" for r in RECIPES.values())
