"""Prune while PyTorch Lightning trains: audioprune's PruningCallback removes filters for real at
the epochs you name, and training goes on with the smaller model.

    python docs/tutorials/lightning_callback.py --data-root data/fsdd --epochs 8

Needs `pip install 'audioprune[lightning]'`. The model, data and LightningModule are plain
Lightning code (the same DigitNet and FSDD reader as the own-model tutorial); the callback is the
only audioprune part: at the start of epochs 2, 3 and 4 it prunes `module.model` a step each,
the pruned fraction rising to the plan (half the MACs) at the last step, re-creates the optimizer
for the new parameters, and at the end saves the pruned model with its pruning record.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import lightning.pytorch as pl
import torch
from torch import nn

import audioprune as ap
from audioprune.integrations.lightning import PruningCallback

sys.path.insert(0, str(Path(__file__).resolve().parent))
from own_model import DigitNet, accuracy, load_fsdd  # noqa: E402  (the own-model tutorial)


class Digits(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.model = DigitNet()

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], _idx: int) -> torch.Tensor:
        wave, digit = batch
        return nn.functional.cross_entropy(self.model(wave), digit)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=1e-3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-root", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=8, help="at least 2")
    parser.add_argument("--out", default="pruned-lightning.safetensors")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s")  # the callback logs each step
    torch.manual_seed(0)
    train_set, test_set = load_fsdd(args.data_root)
    loader = torch.utils.data.DataLoader(train_set, batch_size=32, shuffle=True,
                                         generator=torch.Generator().manual_seed(0))
    epochs = max(args.epochs, 2)
    prune_at = sorted({min(e, epochs - 1) for e in (2, 3, 4)})   # epochs 2-4 (0-based)
    x = train_set.tensors[0][:1]
    callback = PruningCallback(x, "l1", ap.Plan(target_macs=0.5), epochs=prune_at,
                               save_to=args.out)
    module = Digits()
    trainer = pl.Trainer(max_epochs=epochs, callbacks=[callback], accelerator="cpu", devices=1,
                         logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False)
    trainer.fit(module, loader)

    for step in callback.history:
        print(f"epoch {step['epoch']}: step {step['step']}/{step['steps']}, MACs "
              f"{step['macs_ratio']:.3f} of the model's, params {step['params_ratio']:.3f}")
    print(f"test accuracy after {epochs} epochs: {accuracy(module.model, test_set):.3f}")
    again = ap.load_pruned(args.out, DigitNet()).eval()
    same = torch.equal(again(test_set.tensors[0][:8]), module.model.eval()(test_set.tensors[0][:8]))
    print(f"saved {args.out}; reloaded onto a fresh DigitNet: identical outputs {same}")


if __name__ == "__main__":
    main()
