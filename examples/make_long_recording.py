"""A long test recording for `audioprune predict`: FSDD digits of one speaker, in seeded random
order, each followed by 0.5 s of silence, cut to MINUTES (default 10) at 8 kHz.

    python examples/make_long_recording.py --data-root ../shared/datasets/fsdd --out ten_minutes.wav
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import soundfile as sf


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-root", default="../shared/datasets/fsdd")
    p.add_argument("--speaker", default="nicolas")
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="ten_minutes.wav")
    args = p.parse_args()
    files = sorted(Path(args.data_root, "recordings").glob(f"*_{args.speaker}_*.flac"))
    if not files:
        raise SystemExit(f"no recordings of {args.speaker} under {args.data_root}/recordings")
    rng = np.random.default_rng(args.seed)
    total, parts = int(args.minutes * 60 * 8000), []
    while sum(len(x) for x in parts) < total:
        wave, _ = sf.read(files[rng.integers(len(files))], dtype="float32")
        parts += [wave, np.zeros(4000, np.float32)]
    sf.write(args.out, np.concatenate(parts)[:total], 8000)
    print(f"wrote {args.out}: {args.minutes:g} min of {args.speaker}'s digits at 8 kHz")


if __name__ == "__main__":
    main()
