"""Epoch time with and without the decoded-audio cache, side by side in one run.

Real FSDD recordings (../shared/datasets/fsdd). Two measurements per path:
  data pass   - iterate the training split through the DataLoader (decode/resample + crop only)
  train epoch - one epoch of dcase21net (width 0.5) training on the same loader
The cache is built once first (its build time is reported too); the no-cache path decodes every
file with soundfile and resamples with soxr on every access, as a plain Dataset would.

    .venv/bin/python bench/bench_cache.py [--sample-rate 16000] [--data-root DIR]
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


def train_epoch(ds: ClipDataset, fe) -> float:
    torch.manual_seed(0)
    model = create_model("dcase21net", 10, frontend=fe, width=0.5)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    t0 = time.perf_counter()
    for wave, y in DataLoader(ds, batch_size=32, shuffle=True):
        loss = torch.nn.functional.cross_entropy(model(wave), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-root", type=Path, default=FSDD)
    ap.add_argument("--sample-rate", type=int, default=16000,
                    help="front-end rate; FSDD is 8 kHz, so != 8000 adds resampling per access")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "cache.json")
    args = ap.parse_args()
    if not (args.data_root / "recordings").is_dir():
        raise SystemExit(f"FSDD not found at {args.data_root}; pass --data-root")
    fe = get_dataset_info("fsdd").frontend.replace(sample_rate=args.sample_rate, fmax=args.sample_rate / 2)
    index = load_dataset("fsdd", args.data_root)
    clips = index.splits["train"]
    with tempfile.TemporaryDirectory() as tmp:
        cache = AudioCache(index, fe.sample_rate, Path(tmp), args.data_root)
        t0 = time.perf_counter()
        cache.build(clips, progress=False)
        build = time.perf_counter() - t0
        direct = AudioSource(index, fe.sample_rate)
        rows = {}
        for name, source in (("no cache", direct), ("cache", cache)):
            ds = ClipDataset(clips, source, "single-label", 10, fe.clip_samples, "random")
            data_pass(ds)  # warm the page cache / memmaps equally for both
            rows[name] = {"data_pass_s": data_pass(ds), "train_epoch_s": train_epoch(ds, fe)}
    ratio_data = rows["no cache"]["data_pass_s"] / rows["cache"]["data_pass_s"]
    ratio_train = rows["no cache"]["train_epoch_s"] / rows["cache"]["train_epoch_s"]
    print(f"FSDD train split: {len(clips)} clips, front end {fe.sample_rate} Hz, "
          f"torch threads {torch.get_num_threads()}, cache build {build:.2f} s (once)")
    print(f"{'path':10s} {'data pass (s)':>14s} {'train epoch (s)':>16s}")
    for name, r in rows.items():
        print(f"{name:10s} {r['data_pass_s']:14.2f} {r['train_epoch_s']:16.2f}")
    print(f"{'ratio':10s} {ratio_data:13.1f}x {ratio_train:15.2f}x   (no cache / cache)")
    result = {"date": datetime.date.today().isoformat(), "machine": platform.machine(),
              "cpus": os.cpu_count(), "torch": torch.__version__, "threads": torch.get_num_threads(),
              "clips": len(clips), "sample_rate": fe.sample_rate, "cache_build_s": build,
              "results": rows, "ratio_data_pass": ratio_data, "ratio_train_epoch": ratio_train,
              "command": "python bench/bench_cache.py --sample-rate %d" % args.sample_rate}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
