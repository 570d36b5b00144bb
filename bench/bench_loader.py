"""The input pipeline at scale: a 200,000-entry dataset index and a memory-mapped cache of that
size, then the loader's clips/s beside the model's (which of the two limits training).

Part 1, scaling (--entries, default 200,000): a synthetic DatasetIndex of that many clips (10
classes, a renderer instead of files) is built in steps of 50,000 so its cost per 10,000 entries
can be compared across sizes (linear: the same at every size); the decoded-audio cache
(data/cache.py: one int16 chunk, memory-mapped on read, and its JSON index) is built from it in a
temporary directory, opened again (reading the 200,000-entry JSON index), and 10,000 clips are
read at random through ClipDataset (the training path: cache -> crop -> tensor) in the first,
middle and last part of the cache. Time and peak memory (tracemalloc: Python and numpy
allocations; the memory-mapped pages are file-backed and not counted; taken on a second,
identical call, since tracing slows allocation) per 10,000 clips. To keep
the disk use modest the clips are short: --scale-samples samples (default 400 at 8 kHz, 50 ms:
800 bytes each, 160 MB for 200,000; the JSON index adds about 10 MB).

Part 2, loader against model (--clip-seconds, default 2 s, at each model's sample rate; 10 s
clips are PANNs' setting, 5x the data per clip): a cache of --loader-clips clips, read through
DataLoader(ClipDataset, random crops, batch 32) with 0 and --workers worker processes, against
the model's own training step (fp32, forward + backward + Adam, on a fixed batch, no loader):
    cnn14 at width --cnn14-width (default 0.25: full width is 80 M parameters and ~10 s a step
          on 2 CPU cores) on the PANNs front end (32 kHz, 64 mels)
    dcase21net (full width) on its 44.1 kHz front end.
ratio = loader clips/s / model clips/s: above 1 the model limits training, below 1 the loader.

    .venv/bin/python bench/bench_loader.py          # writes bench/results/loader.json
    .venv/bin/python bench/bench_loader.py --quick  # the same, fewer timing repeats
"""

from __future__ import annotations

import argparse
import gc
import shutil
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from audioprune.audio.frontend import FrontEndConfig
from audioprune.data.cache import AudioCache
from audioprune.data.loader import ClipDataset
from audioprune.data.types import Clip, DatasetIndex
from audioprune.models.dcase21net import DCASE21_FRONTEND
from audioprune.models.registry import create_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
import benchlib  # noqa: E402

PER = 10_000


def synthetic_index(n: int, samples: int, classes: int = 10) -> DatasetIndex:
    """n clips, class i % classes; each renders a tone whose pitch and phase follow its index."""
    clips = [Clip(f"clip{i:07d}", None, (i % classes,), f"g{i % 97}") for i in range(n)]
    t = np.arange(samples, dtype=np.float32)

    def render(clip: Clip, sample_rate: int) -> np.ndarray:
        i = int(clip.key[4:])
        return (0.3 * np.sin(2 * np.pi * (0.01 + 0.001 * (i % 50)) * t + i)).astype(np.float32)

    return DatasetIndex("bench-synthetic", "single-label", [f"c{k}" for k in range(classes)],
                        {"train": clips}, "all", render=render)


def measured(fn: Any, again: Any = None) -> tuple[Any, float, int]:
    """(fn(), seconds of that call, peak traced bytes of a second call). tracemalloc slows every
    allocation (3x on the clip reads), so the time is taken untraced and the memory on a second
    call: `again` (a call doing the same work afresh, e.g. into an empty cache) or fn itself."""
    gc.collect()
    t0 = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - t0
    gc.collect()
    tracemalloc.start()
    (again or fn)()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return out, seconds, peak


def per10k(seconds: float, peak: int, n: int) -> dict[str, float]:
    return {"n": n, "seconds": round(seconds, 3), "seconds_per_10k": round(seconds * PER / n, 4),
            "peak_mb": round(peak / 2**20, 2), "peak_mb_per_10k": round(peak / 2**20 * PER / n, 3)}


def scaling(entries: int, samples: int, sample_rate: int, tmp: Path) -> dict[str, Any]:
    out: dict[str, Any] = {"entries": entries, "samples_per_clip": samples,
                           "sample_rate": sample_rate, "index": []}
    steps = sorted({min(entries, s) for s in range(50_000, entries + 1, 50_000)} | {entries})
    for n in steps:
        _, s, peak = measured(lambda n=n: synthetic_index(n, samples))
        out["index"].append(per10k(s, peak, n))
        print(f"  index of {n:7d} entries: {s * PER / n * 1e3:.1f} ms and "
              f"{peak / 2**20 * PER / n:.2f} MB per 10k", flush=True)
    index = synthetic_index(entries, samples)
    clips = index.splits["train"]
    cache = AudioCache(index, sample_rate, cache_dir=tmp)
    twin = AudioCache(index, sample_rate, cache_dir=tmp / "traced")  # the same build, traced
    built, s, peak = measured(lambda: cache.build(clips, progress=False),
                              lambda: twin.build(clips, progress=False))
    assert built == entries, built
    shutil.rmtree(twin.dir)
    out["cache_build"] = per10k(s, peak, entries)
    out["cache_bytes"] = sum(p.stat().st_size for p in cache.dir.iterdir() if p.is_file())
    print(f"  cache build: {s:.1f} s ({s * PER / entries:.2f} s per 10k), "
          f"{out['cache_bytes'] / 2**20:.0f} MB on disk, peak {peak / 2**20:.0f} MB", flush=True)
    reopened, s, peak = measured(lambda: AudioCache(index, sample_rate, cache_dir=tmp))
    assert len(reopened.entries) == entries
    out["cache_open"] = per10k(s, peak, entries)
    print(f"  cache open (its {entries}-entry index): {s:.2f} s, peak {peak / 2**20:.0f} MB",
          flush=True)
    ds = ClipDataset(clips, reopened, "single-label", index.num_classes, samples // 2, "random")
    rng = np.random.default_rng(0)
    out["read"] = {}
    for part, lo in (("first", 0), ("middle", entries // 2 - PER // 2), ("last", entries - PER)):
        picks = rng.permutation(np.arange(lo, lo + PER))

        def read(picks=picks) -> float:
            total = 0.0
            for i in picks:
                wave, _ = ds[int(i)]
                total += float(wave[0])
            return total

        _, s, peak = measured(read)
        out["read"][part] = per10k(s, peak, PER)
        print(f"  read 10k random clips ({part} part): {s:.2f} s, peak {peak / 2**20:.2f} MB",
              flush=True)
    return out


def loader_rate(ds: ClipDataset, workers: int, batch: int, passes: int) -> float:
    """Clips/s of iterating `ds` through a DataLoader (the best of `passes` passes, after one
    untimed pass that starts the persistent workers, as every epoch after training's first)."""
    loader = DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers,
                        persistent_workers=workers > 0, generator=torch.Generator().manual_seed(0))
    for _ in loader:
        pass
    best = 0.0
    for _ in range(passes):
        t0 = time.perf_counter()
        n = sum(len(w) for w, _ in loader)
        best = max(best, n / (time.perf_counter() - t0))
    return best


def model_rate(arch: str, kwargs: dict[str, Any], fe: FrontEndConfig, batch: int,
               steps: int) -> float:
    """Clips/s of the model's fp32 training step on a fixed batch (the median of `steps`)."""
    torch.manual_seed(0)
    model = create_model(arch, 10, frontend=fe, **kwargs).train()
    opt = torch.optim.Adam(model.parameters(), 1e-4)
    wave = 0.1 * torch.randn(batch, int(fe.sample_rate * fe.clip_seconds))
    y = torch.arange(batch) % 10
    times = []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        loss = F.cross_entropy(model(wave), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i:  # the first step warms up
            times.append(time.perf_counter() - t0)
    return batch / float(np.median(times))


def loader_vs_model(clips_n: int, clip_seconds: float, workers: int, cnn14_width: float,
                    batch: int, steps: int, passes: int, tmp: Path) -> dict[str, Any]:
    out: dict[str, Any] = {"clips": clips_n, "clip_seconds": clip_seconds, "batch": batch,
                           "models": {}}
    for name, arch, kwargs, base in (("cnn14", "cnn14", {"width": cnn14_width}, FrontEndConfig()),
                                     ("dcase21net", "dcase21net", {}, DCASE21_FRONTEND)):
        fe = FrontEndConfig(**{**base.__dict__, "clip_seconds": clip_seconds})
        samples = int(fe.sample_rate * clip_seconds)
        index = synthetic_index(clips_n, samples + samples // 4)  # crops take 80% of a clip
        clips = index.splits["train"]
        cache = AudioCache(index, fe.sample_rate, cache_dir=tmp / name)
        cache.build(clips, progress=False)
        ds = ClipDataset(clips, cache, "single-label", index.num_classes, samples, "random")
        rates = {f"workers_{w}": round(loader_rate(ds, w, batch, passes), 1)
                 for w in sorted({0, workers})}
        model = round(model_rate(arch, kwargs, fe, batch, steps), 2)
        best_loader = max(rates.values())
        out["models"][name] = {"arch": arch, "kwargs": kwargs, "sample_rate": fe.sample_rate,
                               "loader_clips_per_s": rates, "model_clips_per_s": model,
                               "loader_over_model": round(best_loader / model, 2),
                               "limits": "model" if best_loader > model else "loader"}
        print(f"  {name}: loader {rates} clips/s, model {model} clips/s -> "
              f"{out['models'][name]['limits']} limits", flush=True)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--entries", type=int, default=200_000)
    p.add_argument("--scale-samples", type=int, default=400)
    p.add_argument("--loader-clips", type=int, default=512)
    p.add_argument("--clip-seconds", type=float, default=2.0)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--cnn14-width", type=float, default=0.25)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="1 loader pass, 3 model steps")
    p.add_argument("--out", type=Path, default=benchlib.RESULTS / "loader.json")
    args = p.parse_args(argv)
    if args.entries < PER:
        p.error(f"--entries must be at least {PER}")
    torch.set_num_threads(args.threads)
    start = benchlib.machine()
    with tempfile.TemporaryDirectory(prefix="bench-loader-") as tmp:
        print(f"scaling: {args.entries} entries", flush=True)
        scale = scaling(args.entries, args.scale_samples, 8000, Path(tmp) / "scale")
        print("loader against model", flush=True)
        race = loader_vs_model(args.loader_clips, args.clip_seconds, args.workers,
                               args.cnn14_width, args.batch, 3 if args.quick else 8,
                               1 if args.quick else 3, Path(tmp) / "race")
    end = benchlib.machine()
    benchlib.save(args.out, {
        "what": "dataset index and memory-mapped cache cost per 10,000 clips at 200,000 "
                "entries; loader clips/s beside the model's training clips/s",
        "threads": args.threads, "scaling": scale, "loader_vs_model": race,
        "machine": {**start, "load_average_1min_at_end": end["load_average_1min"]}})
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
