"""The recipe schema: a whole experiment in one YAML file, as pydantic sections (pipeline/recipe.py
reads and checks it, so that a typo fails in the first second with the key named).

    name: fsdd_quick
    dataset: {name: fsdd, root: ../shared/datasets/fsdd, split: "speaker:nicolas"}
    models:
      - name: dcase21net
        train: {epochs: 8, lr: 0.003}
    prune:
      criteria: [wdc, l1]
      ratios: [0.25, 0.5]
      layers: [C1, C2]
      finetune: {epochs: 2}
    profile: {batch_sizes: [1, 32]}

`dataset` may be one word (`dataset: esc50`); its root then comes from `--data-root`. `prune`
is one group or a list of groups, each pruning some parents (`models`, default all) with every
criterion at every plan (`ratios`, `per_layer`, `target_macs`, `target_params`, `budgets`),
fine-tuned plainly or with KD from the parent (`distill:`); `distill` trains KD students from a
recipe model; `quantize` (one section or a list: static and dynamic side by side) makes an int8
sibling of every run per section. The sections below are the full
set of keys (docs: recipe reference).
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)

from audioprune.data.registry import SPLIT_OPTIONS


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class DatasetSection(_Section):
    """Which data every run of the recipe uses (the keys are `audioprune train`'s data options)."""

    name: str
    root: str | None = None
    split: str | None = None
    test_fold: int | None = None
    val_fold: int | None = None
    subset: str | None = None
    split_file: str | None = None
    val_fraction: float | None = Field(None, gt=0, lt=1)
    frontend: dict[str, Any] = Field(default_factory=dict)
    cache: bool = True
    cache_dir: str | None = None
    strict: bool = False

    def options(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in SPLIT_OPTIONS if getattr(self, k) is not None}


class TrainSection(_Section):
    """Training settings; anything left out keeps TrainConfig's default (fine-tuning: the parent's
    settings with lr / 10, as `audioprune prune` does)."""

    epochs: int | None = Field(None, ge=0)
    batch_size: int | None = Field(None, ge=1)
    lr: float | None = Field(None, gt=0)
    weight_decay: float | None = Field(None, ge=0)
    schedule: Literal["cosine", "step", "none"] | None = None
    step_size: int | None = Field(None, ge=1)
    gamma: float | None = Field(None, gt=0)
    patience: int | None = Field(None, ge=0)
    mixup: float | None = Field(None, ge=0)
    eval_batch_size: int | None = Field(None, ge=1)
    freeze: list[str] | None = None  # transfer learning (with a model's `init`)
    body_lr_scale: float | None = Field(None, gt=0)
    # speed: mixed precision (train/precision.py), NHWC layout, torch.compile; the last two
    # change no result, so they are not part of a step's fingerprint
    precision: Literal["fp32", "bf16", "fp16"] | None = None
    channels_last: bool | None = None
    compile: bool | None = None
    sampler: Literal["shuffle", "balanced"] | None = None  # balanced: PANNs' class-balanced draws

    def given(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class PannsInit(_Section):
    """A PANNs checkpoint to start from: imported once into <out>/<model name>-pretrained."""

    panns: str  # the .pth file
    model: Literal["cnn6", "cnn10", "cnn14", "cnn14-16k", "cnn14-8k"]


class ModelSection(_Section):
    """A model to train: `name` names its run directory, `arch` the registry model (default:
    the name), `kwargs` its arguments (width, dropout, ...); `init` starts it from a run's
    weights (a run directory) or from a PANNs checkpoint ({panns: FILE, model: cnn14}):
    transfer learning, as `audioprune train --init` (`train:` then takes freeze and
    body_lr_scale too)."""

    name: str
    arch: str | None = None
    kwargs: dict[str, Any] = Field(default_factory=dict)
    init: str | PannsInit | None = None
    train: TrainSection = Field(default_factory=TrainSection)

    @property
    def architecture(self) -> str:
        return self.arch or self.name


class CriterionSpec(_Section):
    """A criterion with options, e.g. {name: wdc, options: {paper_compat: true}, label: wdc-paper}."""

    name: str
    options: dict[str, Any] = Field(default_factory=dict)
    label: str | None = None

    @property
    def tag(self) -> str:
        return self.label or self.name


class PruneDistill(_Section):
    """Fine-tune the pruned model by knowledge distillation from its own unpruned parent
    (`audioprune prune --distill-from parent`)."""

    loss: str | None = None  # a KD recipe of audioprune.distill (hinton | bce-soft | qcnn)
    temperature: float | None = Field(None, gt=0)
    alpha: float | None = Field(None, ge=0, le=1)
    teacher_mode: str = "auto"


class PruneSection(_Section):
    """Prune `models` (default: every model) with each criterion at each plan, then fine-tune."""

    models: list[str] | None = None
    criteria: list[CriterionSpec] = Field(min_length=1)
    ratios: list[float] = Field(default_factory=list)
    per_layer: list[dict[str, float]] = Field(default_factory=list)
    target_macs: list[str | int | float] = Field(default_factory=list)  # 30M, or 0.5 of the parent's
    target_params: list[str | int | float] = Field(default_factory=list)
    budgets: list[str] = Field(default_factory=list)  # dcase2024, or params_bytes=..,macs=..
    precision: Literal["int8", "fp16", "fp32"] = "int8"  # what a parameter costs in `budgets`
    round_to: int | None = Field(None, ge=1)  # kept widths a multiple of this (SIMD blocks)
    layers: list[str] | None = None
    global_ranking: bool = Field(False, alias="global")
    normalise: Literal["minmax", "zscore"] = "minmax"
    allocation: Literal["uniform", "sensitivity"] = "uniform"  # budgets split by layer sensitivity
    iterative: int = Field(1, ge=1)
    prune_schedule: Literal["geometric", "cubic"] = "geometric"  # how the rounds' fraction rises
    progressive: bool = False  # the rounds inside one fine-tune (one per epoch), not each after one
    # coarser features before the widths: "search" (a grid scored after a short fine-tune) or
    # [time, freq] (hop x time, mel bins x freq); audioprune's own models
    resolution: Literal["search"] | tuple[float, float] | None = None
    # baselines at each pruned run's widths: trained from scratch for the fine-tune's epochs
    # at the parent's learning rate, with labels ("labels") and/or KD from the parent ("kd")
    scratch: list[Literal["labels", "kd"]] = Field(default_factory=list)
    aggregate: Literal["mean", "max", "min", "norm"] = "mean"
    quaternion_mode: Literal["aggregate", "concat"] = "aggregate"
    scope: Literal["root", "group"] | None = None  # None: the criterion's default
    group_reduction: Literal["mean", "sum", "max", "min"] = "mean"
    finetune: TrainSection = Field(default_factory=TrainSection)
    # fine-tune with KD from the parent; a temperature or alpha set here names the runs (-kda05)
    # and the report's method (tp-magnitude+kd(alpha=0.5)), so groups that differ only there
    # never mix
    distill: PruneDistill | None = None
    tag: str | None = None  # inserted into the run names when two groups would otherwise clash

    @field_validator("criteria", mode="before")
    @classmethod
    def _criteria_words(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = [v]
        return [{"name": c} if isinstance(c, str) else c for c in v] if isinstance(v, list) else v

    @field_validator("layers", "models", mode="before")
    @classmethod
    def _comma_list(cls, v: Any) -> Any:
        return [s.strip() for s in v.split(",") if s.strip()] if isinstance(v, str) else v

    @field_validator("ratios")
    @classmethod
    def _ratios(cls, v: list[float]) -> list[float]:
        for r in v:
            if not 0.0 < r < 1.0:
                raise ValueError(f"each ratio is the fraction of filters removed, in (0, 1); got {r}")
        return v

    @field_validator("per_layer")
    @classmethod
    def _per_layer(cls, v: list[dict[str, float]]) -> list[dict[str, float]]:
        for plan in v:
            if not plan:
                raise ValueError("an empty per-layer plan; give LAYER: RATIO pairs, e.g. {C1: 0.5}")
            for layer, r in plan.items():
                if not 0.0 <= r < 1.0:
                    raise ValueError(f"{layer}: ratio must be in [0, 1), got {r}")
        return v

    def spec(self, criterion: CriterionSpec, plan: dict[str, Any]) -> Any:
        """The PruneSpec of one (criterion, plan) of this group: what the pipeline passes, as
        it is, to the run layer (`plan` as pipeline.steps.group_plans writes it)."""
        from audioprune.distill.config import DistillConfig
        from audioprune.pruning.plan import Plan
        from audioprune.pruning.spec import PruneSpec

        d = self.distill
        distill = None if d is None else DistillConfig("parent", d.loss, d.temperature, d.alpha,
                                                       d.teacher_mode)
        return PruneSpec(criterion.name, Plan(**plan), criterion.options, scope=self.scope,
                         group_reduction=self.group_reduction, aggregate=self.aggregate,
                         quaternion_mode=self.quaternion_mode, iterative=self.iterative,
                         prune_schedule=self.prune_schedule, progressive=self.progressive,
                         resolution=self.resolution, distill=distill)

    @model_validator(mode="after")
    def _has_plan(self) -> PruneSection:
        if not (self.ratios or self.per_layer or self.target_macs or self.target_params or
                self.budgets):
            raise ValueError("give at least one plan: ratios, per_layer, target_macs, "
                             "target_params or budgets")
        if self.per_layer and self.layers is not None and not (
                self.ratios or self.target_macs or self.target_params or self.budgets):
            raise ValueError("per_layer plans name their layers; drop layers")
        return self


class DistillSection(_Section):
    """Train `students` from scratch with knowledge distillation from the trained `teacher`."""

    teacher: str
    students: list[ModelSection] = Field(min_length=1)
    loss: str | None = None  # a KD recipe of audioprune.distill (hinton | bce-soft | qcnn)
    temperature: float | None = Field(None, gt=0)
    alpha: float | None = Field(None, ge=0, le=1)
    teacher_mode: str = "auto"  # auto | cached | online (audioprune.distill.teacher)


class QuantizeSection(_Section):
    """int8-quantize the recipe's runs (`audioprune quantize`): each run of the kinds in `of`
    gets a sibling run <name>-int8 evaluated by ONNX Runtime."""

    method: Literal["static", "dynamic"] = "static"
    calibration_batches: int = Field(8, ge=1)
    per_channel: bool = True
    qat_epochs: int = Field(0, ge=0)
    reduce_range: bool = True
    of: list[Literal["train", "prune", "distill"]] = Field(
        default_factory=lambda: ["train", "prune", "distill"], min_length=1)

    @property
    def suffix(self) -> str:
        return "int8" + ("" if self.method == "static" else f"-{self.method}") + \
            (f"-qat{self.qat_epochs}" if self.qat_epochs else "") + \
            ("" if self.reduce_range else "-8bit")


class ProfileSection(_Section):
    """Latency settings for `audioprune profile` (params, MACs and sizes are always measured)."""

    batch_sizes: list[int] = Field(default_factory=lambda: [1, 32], min_length=1)
    threads: int | None = Field(None, ge=1)
    onnx: bool = True


class ReportSection(_Section):
    title: str | None = None
    budget: str | None = None  # mark runs within / outside a budget: dcase2024, params_bytes=..


class Recipe(_Section):
    """One experiment: train `models`, prune and/or distil them, profile, report."""

    name: str
    description: str = ""
    # where the runs go (default runs/<name>): recipes that name the same `out` and the same
    # model entries share those runs (a finished step with the same fingerprint is not redone)
    out: str | None = None
    dataset: DatasetSection
    seed: int = Field(0, ge=0)
    seeds: list[int] | None = None  # every step once per seed (run names end in -s<seed>)
    folds: Literal["all"] | list[int] | None = None  # cross-validation: every step once per fold
    device: str = "cpu"
    models: list[ModelSection] = Field(min_length=1)
    prune: list[PruneSection] = Field(default_factory=list)
    distill: list[DistillSection] = Field(default_factory=list)
    quantize: list[QuantizeSection] = Field(default_factory=list)  # one section or several
    profile: ProfileSection | None = Field(default_factory=ProfileSection)
    report: ReportSection | None = Field(default_factory=ReportSection)  # false: no report

    @property
    def out_dir(self) -> str:
        """The directory its runs go to: `out`, or runs/<name>."""
        return self.out or f"runs/{self.name}"

    @field_validator("dataset", mode="before")
    @classmethod
    def _dataset_word(cls, v: Any) -> Any:
        return {"name": v} if isinstance(v, str) else v

    @field_validator("prune", "distill", "quantize", mode="before")
    @classmethod
    def _one_or_many(cls, v: Any) -> Any:
        return [v] if isinstance(v, dict) else ([] if v is None else v)

    @field_validator("profile", "report", mode="before")
    @classmethod
    def _profile_switch(cls, v: Any) -> Any:
        if v is False or v is None:
            return None
        return {} if v is True else v

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: list[int] | None) -> list[int] | None:
        if v is not None and (not v or len(set(v)) != len(v) or any(s < 0 for s in v)):
            raise ValueError("give distinct non-negative seeds, e.g. [0, 1, 2]")
        return v

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", v):
            raise ValueError("use letters, digits, '.', '_' and '-' (it names the output folder)")
        return v
