"""Prune your own model in your own training loop: plain PyTorch, audioprune in between.

    python docs/tutorials/own_model.py --data-root data/fsdd --epochs 15 --finetune-epochs 3

Reads the Free Spoken Digit Dataset with soundfile (official split: takes 0-4 test), trains a
small CNN with its log-mel front end inside, prunes it to half its MACs, fine-tunes it in the
same loop, and saves it with its pruning record, which loads back onto a fresh, unpruned model.
Nothing but the four `ap.` calls is audioprune: the data, model and loop stand for your own.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torch import nn

import audioprune as ap

RATE = 8000  # FSDD: 8 kHz; every clip zero-padded or cut to 1 s


def load_fsdd(root: Path) -> tuple[torch.utils.data.TensorDataset, torch.utils.data.TensorDataset]:
    waves: dict[bool, list[np.ndarray]] = {True: [], False: []}
    labels: dict[bool, list[int]] = {True: [], False: []}
    for path in sorted((root / "recordings").glob("*.*")):
        digit, _speaker, take = path.stem.split("_")
        audio, _ = sf.read(path, dtype="float32", always_2d=True)
        wave = np.zeros(RATE, dtype=np.float32)
        mono = audio.mean(axis=1)[:RATE]
        wave[: len(mono)] = mono
        test = int(take) < 5
        waves[test].append(wave)
        labels[test].append(int(digit))
    return tuple(torch.utils.data.TensorDataset(torch.from_numpy(np.stack(waves[t])),
                                                torch.tensor(labels[t])) for t in (False, True))


class DigitNet(nn.Module):
    """Waveform (B, 8000) -> 10 digit logits; the log-mel front end has no weights to prune."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("window", torch.hann_window(256))
        self.conv1, self.bn1 = nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32)
        self.conv2, self.bn2 = nn.Conv2d(32, 64, 3, padding=1), nn.BatchNorm2d(64)
        self.conv3, self.bn3 = nn.Conv2d(64, 64, 3, padding=1), nn.BatchNorm2d(64)
        self.fc = nn.Linear(64, 10)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(wave, 256, 80, window=self.window, return_complex=True).abs() ** 2
        x = torch.log10(spec[:, :64] + 1e-10).transpose(1, 2)[:, None]  # (B, 1, frames, 64)
        for conv, bn in ((self.conv1, self.bn1), (self.conv2, self.bn2), (self.conv3, self.bn3)):
            x = nn.functional.max_pool2d(torch.relu(bn(conv(x))), 2)
        return self.fc(x.mean(dim=(2, 3)))


def train(model: nn.Module, data: torch.utils.data.Dataset, epochs: int, lr: float) -> None:
    """Your own loop: Adam and cross-entropy."""
    loader = torch.utils.data.DataLoader(data, batch_size=32, shuffle=True,
                                         generator=torch.Generator().manual_seed(0))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(epochs):
        for wave, digit in loader:
            opt.zero_grad()
            nn.functional.cross_entropy(model(wave), digit).backward()
            opt.step()


@torch.no_grad()
def accuracy(model: nn.Module, data: torch.utils.data.TensorDataset) -> float:
    model.eval()
    wave, digit = data.tensors
    return float((model(wave).argmax(dim=1) == digit).float().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-root", type=Path, required=True)
    parser.add_argument("--epochs", type=int, default=15)
    parser.add_argument("--finetune-epochs", type=int, default=3)
    parser.add_argument("--out", default="pruned.safetensors")
    args = parser.parse_args()
    torch.manual_seed(0)
    train_set, test_set = load_fsdd(args.data_root)
    model = DigitNet()
    train(model, train_set, args.epochs, lr=1e-3)
    print(f"trained {args.epochs} epochs on {len(train_set)} clips: test accuracy "
          f"{accuracy(model, test_set):.3f}")

    x = train_set.tensors[0][:1]                       # one example: what the model takes
    result = ap.prune(model.eval(), x, "l1", ap.Plan(target_macs=0.5))   # in place, for real
    print(result.summary())
    print(f"right after pruning: test accuracy {accuracy(model, test_set):.3f}")

    train(model, train_set, args.finetune_epochs, lr=1e-4)   # the same loop, the smaller model
    print(f"fine-tuned {args.finetune_epochs} epochs: test accuracy {accuracy(model, test_set):.3f}")
    counts = ap.count(model, x)                        # parameters and MACs per example
    print(f"now {counts.params:,} parameters, {counts.macs:,} MACs per example")

    ap.save_pruned(model, args.out)                    # safetensors + the pruning record
    again = ap.load_pruned(args.out, DigitNet()).eval()
    same = torch.equal(again(test_set.tensors[0][:8]), model.eval()(test_set.tensors[0][:8]))
    print(f"saved {args.out}; reloaded onto a fresh DigitNet: identical outputs {same}")


if __name__ == "__main__":
    main()
