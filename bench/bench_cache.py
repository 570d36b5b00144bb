"""Epoch time with and without the decoded-audio cache, side by side in one run.

Two datasets: the real FSDD recordings (../shared/datasets/fsdd; short 8 kHz FLAC, resampled to
16 kHz) and an ESC-50-like tree written to a temp dir (5 s WAV at 44.1 kHz, resampled to the
PANNs 32 kHz front end), where decoding and resampling cost far more. Two measurements per path:
  data pass   - iterate the training split through the DataLoader (decode/resample + crop only)
  train epoch - one epoch of dcase21net (width 0.5) training on the same loader
The cache is built once first (its build time is reported too); the no-cache path decodes every
file with soundfile and resamples with soxr on every access, as a plain Dataset would.

    .venv/bin/python bench/bench_cache.py [--sample-rate 16000] [--data-root DIR] [--long-clips 300]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torch.utils.data import DataLoader

from audioprune.data.cache import AudioCache, AudioSource
from audioprune.data.loader import ClipDataset
from audioprune.data.registry import get_dataset_info, load_dataset
from audioprune.models.registry import create_model

FSDD = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "fsdd"


def data_pass(ds: ClipDataset) -> float:
    t0 = time.perf_counter()
    for _ in DataLoader(ds, batch_size=32, shuffle=False):
        pass
    return time.perf_counter() - t0


def train_epoch(ds: ClipDataset, fe, width: float) -> float:
    torch.manual_seed(0)
    model = create_model("dcase21net", ds.num_classes, frontend=fe, width=width)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    t0 = time.perf_counter()
    for wave, y in DataLoader(ds, batch_size=32, shuffle=True):
        loss = torch.nn.functional.cross_entropy(model(wave), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return time.perf_counter() - t0


def measure(name: str, index, clips, fe, root: Path | None, width: float) -> dict:
    """Cache build once, then the data pass and a training epoch through each path."""
    with tempfile.TemporaryDirectory() as tmp:
        cache = AudioCache(index, fe.sample_rate, Path(tmp), root)
        t0 = time.perf_counter()
        cache.build(clips, progress=False)
        build = time.perf_counter() - t0
        rows = {}
        for path, source in (("no cache", AudioSource(index, fe.sample_rate)), ("cache", cache)):
            ds = ClipDataset(clips, source, "single-label", index.num_classes, fe.clip_samples, "random")
            data_pass(ds)  # warm the page cache / memmaps equally for both
            rows[path] = {"data_pass_s": data_pass(ds), "train_epoch_s": train_epoch(ds, fe, width)}
    out = {"dataset": name, "clips": len(clips), "sample_rate": fe.sample_rate,
           "clip_seconds": fe.clip_seconds, "cache_build_s": build, "results": rows,
           "ratio_data_pass": rows["no cache"]["data_pass_s"] / rows["cache"]["data_pass_s"],
           "ratio_train_epoch": rows["no cache"]["train_epoch_s"] / rows["cache"]["train_epoch_s"]}
    print(f"\n{name}: {len(clips)} clips of {fe.clip_seconds} s at {fe.sample_rate} Hz, "
          f"cache build {build:.2f} s (once), dcase21net width {width}")
    print(f"{'path':10s} {'data pass (s)':>14s} {'train epoch (s)':>16s}")
    for path, r in rows.items():
        print(f"{path:10s} {r['data_pass_s']:14.2f} {r['train_epoch_s']:16.2f}")
    print(f"{'ratio':10s} {out['ratio_data_pass']:13.1f}x {out['ratio_train_epoch']:15.2f}x   "
          f"(no cache / cache)")
    return out


def write_long_clips(root: Path, n: int) -> None:
    """An ESC-50-like folder tree: n noisy 5 s chirps at 44.1 kHz in 10 class folders."""
    rng = np.random.default_rng(0)
    t = np.arange(5 * 44100) / 44100
    for i in range(n):
        f0 = 200 + 100 * (i % 10)
        wave = 0.3 * np.sin(2 * np.pi * f0 * t * (1 + 0.1 * t)) + 0.05 * rng.standard_normal(t.size)
        path = root / f"class{i % 10}" / f"clip{i:04d}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, wave.astype(np.float32), 44100, subtype="PCM_16")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", type=Path, default=FSDD)
    ap.add_argument("--sample-rate", type=int, default=16000,
                    help="FSDD front-end rate; FSDD is 8 kHz, so != 8000 adds resampling per access")
    ap.add_argument("--long-clips", type=int, default=300, help="clips in the ESC-50-like tree")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "cache.json")
    args = ap.parse_args()
    results = []
    if (args.data_root / "recordings").is_dir():
        fe = get_dataset_info("fsdd").frontend.replace(sample_rate=args.sample_rate,
                                                        fmax=args.sample_rate / 2)
        index = load_dataset("fsdd", args.data_root)
        results.append(measure("fsdd", index, index.splits["train"], fe, args.data_root, 0.5))
    else:
        print(f"FSDD not found at {args.data_root}: skipping it (pass --data-root)")
    with tempfile.TemporaryDirectory() as tmp:
        write_long_clips(Path(tmp), args.long_clips)
        index = load_dataset("folder", tmp, split=None)
        clips = [c for part in index.splits.values() for c in part]
        fe = get_dataset_info("esc50").frontend.replace(n_mels=40)
        results.append(measure("esc50-like (5 s, 44.1 kHz WAV)", index, clips, fe, Path(tmp), 0.25))
    result = {"date": datetime.date.today().isoformat(), "machine": platform.machine(),
              "cpus": os.cpu_count(), "torch": torch.__version__, "threads": torch.get_num_threads(),
              "datasets": results,
              "command": f"python bench/bench_cache.py --sample-rate {args.sample_rate} "
                         f"--long-clips {args.long_clips}"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
