"""Knowledge distillation: KD losses (losses.py), teacher logits cached or online (teacher.py),
the per-run set-up shared by distill and prune (distiller.py) and `distill_run` (run.py)."""

from audioprune.distill.distiller import DistillConfig, Distiller
from audioprune.distill.losses import KDLoss, Recipe, make_loss, register_term
from audioprune.distill.run import distill_run, resume_distill

__all__ = ["DistillConfig", "Distiller", "KDLoss", "Recipe", "distill_run", "make_loss",
           "register_term", "resume_distill"]
