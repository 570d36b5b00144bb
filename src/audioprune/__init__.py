"""audioprune: train, prune, distil and measure audio classifiers (CNNs and quaternion CNNs).

Data flows one way: audio -> features -> model -> (prune | distill) -> fine-tune -> measure -> report.
"""

__version__ = "0.1.0"

from audioprune.errors import UserError  # noqa: E402

__all__ = ["UserError", "__version__"]
