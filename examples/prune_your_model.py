"""Your own PyTorch audio model, your own training loop, audioprune in between.

    python examples/prune_your_model.py --data-root ../shared/datasets/fsdd

Trains a small residual CNN (log-mel front end inside, as PANNs do) on the Free Spoken Digit
Dataset (official split; --test-speaker nicolas holds a speaker out), prunes it to half its MACs with a graph-centrality
criterion (wdc), fine-tunes it in the same loop, counts what it cost and saved, and writes the
pruned model as safetensors + pruning record, which loads back onto a fresh, unpruned model.
"""

from __future__ import annotations

import argparse
import time

import librosa
import torch
from torch import nn

import audioprune as ap
from fsdd_data import SAMPLE_RATE, accuracy, load_fsdd, train_epochs


class LogMel(nn.Module):
    """Waveform (B, samples) -> log-mel (B, 1, frames, mels); buffers only, nothing to prune."""

    def __init__(self, n_fft: int = 256, hop: int = 80, mels: int = 40) -> None:
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        mel = librosa.filters.mel(sr=SAMPLE_RATE, n_fft=n_fft, n_mels=mels)
        self.register_buffer("mel", torch.from_numpy(mel).float())
        self.register_buffer("window", torch.hann_window(n_fft))

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(wave, self.n_fft, self.hop, window=self.window, return_complex=True)
        power = spec.abs() ** 2  # (B, freq, frames)
        return torch.log10(self.mel @ power + 1e-10).transpose(1, 2)[:, None]


class Block(nn.Module):
    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.skip = nn.Conv2d(c_in, c_out, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(y)) + self.skip(x))


class DigitNet(nn.Module):
    """Three residual blocks with pooling, PANNs' clip pooling (mean over mels, max + mean over
    time), a linear classifier."""

    def __init__(self, classes: int = 10) -> None:
        super().__init__()
        self.frontend = LogMel()
        self.bn0 = nn.BatchNorm2d(1)
        self.block1 = Block(1, 32)
        self.block2 = Block(32, 64)
        self.block3 = Block(64, 64)
        self.fc = nn.Linear(64, classes)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        x = self.bn0(self.frontend(wave))
        x = nn.functional.max_pool2d(self.block1(x), 2)
        x = nn.functional.max_pool2d(self.block2(x), 2)
        x = self.block3(x).mean(dim=3)
        return self.fc(x.amax(dim=2) + x.mean(dim=2))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-root", default="../shared/datasets/fsdd")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--finetune-epochs", type=int, default=3)
    p.add_argument("--criterion", default="wdc")
    p.add_argument("--target-macs", type=float, default=0.5, help="fraction of the MACs kept")
    p.add_argument("--test-speaker", help="hold this speaker out (default: the official split)")
    p.add_argument("--takes", type=int, default=50, help="takes per digit and speaker (fewer: "
                   "a quick check)")
    p.add_argument("--out", default="pruned_digitnet.safetensors")
    p.add_argument("--init", help="start from these DigitNet weights (a state dict saved with "
                   "torch.save) instead of from scratch; --epochs 0 only prunes and fine-tunes")
    args = p.parse_args()
    torch.manual_seed(0)
    train, test = load_fsdd(args.data_root, args.test_speaker, takes=args.takes)
    print(f"FSDD: {len(train)} training clips, {len(test)} test clips "
          f"({args.test_speaker or 'official split'})")

    model = DigitNet()
    if args.init:
        model.load_state_dict(torch.load(args.init))
    start = time.perf_counter()
    train_epochs(model, train, args.epochs)
    print(f"trained {args.epochs} epochs in {time.perf_counter() - start:.0f} s: "
          f"test accuracy {accuracy(model, test):.3f}")

    example = train[:1][0]  # one waveform: what the model takes
    before = ap.count(model, example)
    model.eval()
    result = ap.prune(model, example, args.criterion, ap.Plan(target_macs=args.target_macs))
    print(result.summary())
    print(f"right after pruning: test accuracy {accuracy(model, test):.3f}")
    train_epochs(model, train, args.finetune_epochs, lr=1e-4, seed=1)
    print(f"fine-tuned {args.finetune_epochs} epochs: test accuracy {accuracy(model, test):.3f}")

    after = ap.count(model, example)
    print(f"{'layer':<16}{'params before':>14}{'after':>9}{'MACs before':>14}{'after':>12}")
    for name, row in before.layers.items():
        new = after.layers[name]
        print(f"{name:<16}{row.params:>14,}{new.params:>9,}{row.macs:>14,}{new.macs:>12,}")
    print(f"{'total':<16}{before.params:>14,}{after.params:>9,}{before.macs:>14,}{after.macs:>12,}")

    ap.save_pruned(model, args.out)
    fresh = ap.load_pruned(args.out, DigitNet()).eval()
    same = torch.equal(fresh(test[:8][0]), model.eval()(test[:8][0]))
    print(f"saved {args.out}; reloaded onto a fresh DigitNet: identical outputs {same}")


if __name__ == "__main__":
    main()
