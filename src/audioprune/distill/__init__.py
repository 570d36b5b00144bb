"""Knowledge distillation, in memory: KD losses as registered, composable terms (losses.py), the
teacher's logits cached on disk or computed online (teacher.py), and a distillation's settings
(config.py). The run-directory operations (distill a student into a run, fine-tune a pruned
model with KD) are in audioprune.runs."""

from audioprune.distill.config import DistillConfig
from audioprune.distill.losses import KDLoss, Recipe, make_loss, register_term

__all__ = ["DistillConfig", "KDLoss", "Recipe", "make_loss", "register_term"]
