"""Plain data code shared by the examples: the Free Spoken Digit Dataset read with soundfile.
Nothing here is audioprune: it stands for your own data and your own training loop."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import torch

SAMPLE_RATE = 8000
CLIP = SAMPLE_RATE  # 1 s, zero-padded or cropped


def load_fsdd(root: str | Path, test_speaker: str | None = None, takes: int = 50
              ) -> tuple[torch.utils.data.TensorDataset, torch.utils.data.TensorDataset]:
    """(train, test) TensorDatasets of (waveform (8000,), digit) from recordings/*.{wav,flac}.

    Test set: the official split (takes 0-4 of every digit and speaker) or, with
    `test_speaker`, all of one speaker's clips (harder: an unseen voice). `takes` < 50 keeps the
    first takes of every digit and speaker (a quick check)."""
    files = sorted(p for p in (Path(root) / "recordings").iterdir() if p.suffix in (".wav", ".flac"))
    if not files:
        raise SystemExit(f"no recordings under {root}/recordings: pass --data-root")
    parts: dict[bool, tuple[list[np.ndarray], list[int]]] = {True: ([], []), False: ([], [])}
    for path in files:
        digit, speaker, take = path.stem.split("_")
        if int(take) >= takes:
            continue
        audio, rate = sf.read(path, dtype="float32", always_2d=True)
        assert rate == SAMPLE_RATE, f"{path}: {rate} Hz"
        wave = np.zeros(CLIP, dtype=np.float32)
        mono = audio.mean(axis=1)[:CLIP]
        wave[: len(mono)] = mono
        is_test = speaker == test_speaker if test_speaker else int(take) < 5
        waves, labels = parts[is_test]
        waves.append(wave)
        labels.append(int(digit))

    def dataset(test: bool) -> torch.utils.data.TensorDataset:
        waves, labels = parts[test]
        return torch.utils.data.TensorDataset(torch.from_numpy(np.stack(waves)),
                                              torch.tensor(labels))

    return dataset(False), dataset(True)


def train_epochs(model: torch.nn.Module, data: torch.utils.data.Dataset, epochs: int,
                 lr: float = 1e-3, seed: int = 0) -> None:
    """A plain training loop (Adam, cross-entropy): your own loop goes here."""
    loader = torch.utils.data.DataLoader(data, batch_size=32, shuffle=True,
                                         generator=torch.Generator().manual_seed(seed))
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(epochs):
        for wave, digit in loader:
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(wave), digit).backward()
            opt.step()


@torch.no_grad()
def accuracy(model: torch.nn.Module, data: torch.utils.data.Dataset) -> float:
    model.eval()
    wave, digit = data[:]
    return float((model(wave).argmax(dim=1) == digit).float().mean())
