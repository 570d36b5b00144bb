"""audioprune's criteria inside Torch-Pruning's own pruner.

    python examples/torch_pruning_with_audioprune.py --data-root ../shared/datasets/fsdd

If you already prune with Torch-Pruning, keep your code and swap the importance: every
audioprune criterion (graph centralities, similarity, operator norm, ...) is a
``torch_pruning.importance.Importance``. With ``global_pruning=True`` its scores are min-max
normalised per layer (each layer's most prunable filter 0, least prunable 1), so layers can be
ranked on one scale. This script trains the example DigitNet briefly on FSDD, then prunes copies
of it with Torch-Pruning's BasePruner - Torch-Pruning's GroupMagnitudeImportance and
audioprune's betweenness and wdc - and fine-tunes each the same way.
"""

from __future__ import annotations

import argparse
import copy

import torch
import torch_pruning as tp

import audioprune as ap
from fsdd_data import accuracy, load_fsdd, train_epochs
from prune_your_model import DigitNet


def prune_copy(model: torch.nn.Module, example: torch.Tensor, importance: tp.importance.Importance,
               ratio: float) -> torch.nn.Module:
    """A copy of `model` pruned by Torch-Pruning's BasePruner with `importance`: `ratio` of the
    channels, ranked globally (across layers), the classifier's outputs kept."""
    pruned = copy.deepcopy(model).eval()
    pruner = tp.pruner.BasePruner(pruned, example, importance=importance, pruning_ratio=ratio,
                                  global_pruning=True, ignored_layers=[pruned.fc],
                                  customized_pruners=ap.customized_pruners())
    pruner.step()
    return pruned


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-root", default="../shared/datasets/fsdd")
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--finetune-epochs", type=int, default=2)
    p.add_argument("--ratio", type=float, default=0.5, help="Torch-Pruning's pruning_ratio")
    p.add_argument("--test-speaker", help="hold this speaker out (default: the official split)")
    p.add_argument("--takes", type=int, default=50, help="takes per digit and speaker")
    p.add_argument("--init", help="start from these DigitNet weights (a state dict saved with "
                   "torch.save) instead of from scratch; --epochs 0 only prunes and fine-tunes")
    args = p.parse_args()
    torch.manual_seed(0)
    train, test = load_fsdd(args.data_root, args.test_speaker, takes=args.takes)
    model = DigitNet()
    if args.init:
        model.load_state_dict(torch.load(args.init))
    train_epochs(model, train, args.epochs)
    example = train[:1][0]
    base = ap.count(model, example)
    print(f"DigitNet trained {args.epochs} epochs: test accuracy {accuracy(model, test):.3f}, "
          f"{base.params:,} params, {base.macs:,} MACs")

    importances = {
        "Torch-Pruning GroupMagnitudeImportance": tp.importance.GroupMagnitudeImportance(),
        "audioprune betweenness": ap.importance("betweenness"),
        "audioprune wdc": ap.importance("wdc"),
    }
    for label, importance in importances.items():
        pruned = prune_copy(model, example, importance, args.ratio)
        counts = ap.count(pruned, example)
        right_after = accuracy(pruned, test)
        train_epochs(pruned, train, args.finetune_epochs, lr=1e-4, seed=1)
        print(f"{label:<40} MACs {counts.macs / base.macs:.3f} of the parent, params "
              f"{counts.params / base.params:.3f}; accuracy {right_after:.3f} right after, "
              f"{accuracy(pruned, test):.3f} after {args.finetune_epochs} fine-tuning epochs")


if __name__ == "__main__":
    main()
