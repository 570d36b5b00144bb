"""How one step of a recipe sees the recipe: its cross-validation fold's data, its unit's seed,
its training settings."""

from __future__ import annotations

import re

from audioprune.pipeline.schema import Recipe, TrainSection
from audioprune.pipeline.steps import Step
from audioprune.runs.data import DataSpec
from audioprune.train.fit import TrainConfig


def data_spec(recipe: Recipe, fold: int | None = None) -> DataSpec:
    """The recipe's data; with `fold`, that cross-validation fold (split fold:K)."""
    d = recipe.dataset
    options = d.options()
    if fold is not None:
        options = {k: v for k, v in options.items() if k != "test_fold"}
        given = re.fullmatch(r"fold:\d+/(\d+)", str(options.get("split", "")))
        options["split"] = f"fold:{fold}" + (f"/{given.group(1)}" if given else "")  # keep K
    return DataSpec(dataset=d.name, data_root=d.root, options=options, frontend=dict(d.frontend),
                    cache=d.cache, cache_dir=d.cache_dir, strict=d.strict)


def recipe_folds(recipe: Recipe) -> list[int] | None:
    """The folds the recipe runs (`folds: all` resolved against the data), None without."""
    if recipe.folds is None:
        return None
    from audioprune.data.folds import fold_list

    d = recipe.dataset
    return fold_list(recipe.folds, d.name, d.root, d.options())


def train_config(recipe: Recipe, section: TrainSection, progress: bool) -> TrainConfig:
    return TrainConfig(**{**section.given(), "seed": recipe.seed, "device": recipe.device,
                          "progress": progress})


def for_step(recipe: Recipe, step: Step) -> Recipe:
    """The recipe as the step sees it: its unit's seed in place of the recipe's."""
    return recipe if step.seed is None else recipe.model_copy(update={"seed": step.seed})
