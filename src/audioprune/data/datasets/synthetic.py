"""Synthetic sound events, generated in memory: the zero-download default dataset.

Ten classes of procedurally made events (see CLASS_NAMES), each clip 1 s long with a random
pitch or centre frequency, event duration and onset, level, and a coloured background noise at
a random SNR. Some classes are deliberately confusable (a weakly modulated AM or FM tone looks
like a pure tone, a harmonic stack with weak overtones too, a chirp with a small sweep, a
narrow noise band or a fast click train look like tonal classes, a pluck and an impact are both
decaying resonances), so a small CNN learns the task well above chance without saturating it.

Everything is derived from a clip's key, "synthetic/s{seed}/{split}/{index:05d}": the class is
`index % 10` and the random stream is np.random.default_rng([seed, split_id, index]), so a clip
renders identically in every process, in any order and in any split size ("small" clips are the
first ones of "default"), and its audio is synthesised directly at the requested sample rate.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable

import numpy as np
from scipy.signal import lfilter

from audioprune.audio.frontend import FrontEndConfig
from audioprune.data.registry import register_dataset
from audioprune.data.splits import folds_of, parse_fold, reject_options, stratified_kfold
from audioprune.data.types import SPLITS, Clip, DatasetIndex
from audioprune.errors import UserError

CLASS_NAMES = ["tone", "chirp_up", "chirp_down", "harmonic", "am_tone", "fm_tone",
               "noise_burst", "click_train", "pluck", "impact"]
SIZES = {"default": (800, 200, 400), "small": (200, 50, 100)}  # train, val, test
SPLIT_IDS = {name: i for i, name in enumerate(SPLITS)}
CLIP_SECONDS = 1.0
NATIVE_RATE = 16000
SNR_DB = (0.0, 20.0)  # event RMS (over the event) to background RMS (over the clip)
PEAK_DBFS = (-24.0, -1.0)  # final clip peak level

_KEY = re.compile(r"^synthetic/s(\d+)/(train|val|test)/(\d+)$")

LAYOUT = """(no files: generated in memory, no --data-root needed)
  10 classes: """ + ", ".join(CLASS_NAMES) + """; 1 s clips at any sample rate
  --split default (train 800 / val 200 / test 400), small (200 / 50 / 100) or
  sizes:TRAIN,VAL,TEST; classes balanced; --seed changes every clip"""


# --------------------------------------------------------------------------- helpers

def _loguniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _fade(m: int, sr: int, attack_s: float, release_s: float) -> np.ndarray:
    """Raised-cosine attack and release over `m` samples (each at most half the event)."""
    env = np.ones(m)
    a = min(max(int(attack_s * sr), 1), m // 2)
    r = min(max(int(release_s * sr), 1), m // 2)
    env[:a] = 0.5 - 0.5 * np.cos(np.pi * np.arange(a) / a)
    env[m - r:] *= 0.5 + 0.5 * np.cos(np.pi * np.arange(1, r + 1) / r)
    return env


def _envelope(rng: np.random.Generator, m: int, sr: int) -> np.ndarray:
    """Envelope of a sustained event: soft or sharp attack and release, sometimes a slow decay."""
    env = _fade(m, sr, rng.uniform(0.003, 0.08), rng.uniform(0.01, 0.15))
    if rng.random() < 0.3:
        env *= np.exp(-np.arange(m) / (rng.uniform(0.15, 0.8) * sr))
    return env


def _sine(freq: np.ndarray | float, sr: int, m: int, phase0: float) -> np.ndarray:
    """A sinusoid whose (possibly time-varying) frequency in Hz is `freq`."""
    if np.ndim(freq) == 0:
        return np.sin(2 * np.pi * float(freq) * np.arange(m) / sr + phase0)
    return np.sin(2 * np.pi * np.cumsum(freq) / sr + phase0)


def _coloured_noise(rng: np.random.Generator, n: int, sr: int, alpha: float) -> np.ndarray:
    """Gaussian noise with power spectrum ~ 1/f**alpha (0 white, 1 pink, 2 brown), unit RMS."""
    spec = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1.0 / sr)
    spec *= np.maximum(f, 20.0) ** (-alpha / 2)
    spec[0] = 0.0
    x = np.fft.irfft(spec, n)
    return x / (np.sqrt(np.mean(x ** 2)) + 1e-12)


# --------------------------------------------------------------------------- the classes
# Each synth draws its own parameters from `rng` and returns `m` samples of event at rate `sr`;
# `top` is the highest frequency any partial may have (below Nyquist).

def _tone(rng, m, sr, top):
    f = min(_loguniform(rng, 150, 3000), top)
    return _sine(f, sr, m, rng.uniform(0, 2 * np.pi)) * _envelope(rng, m, sr)


def _chirp(direction: int):
    def synth(rng, m, sr, top):
        f0 = _loguniform(rng, 150, 3000)
        octaves = direction * rng.uniform(0.15, 2.5)  # small sweeps look like a tone
        freq = f0 * 2.0 ** (octaves * np.arange(m) / m)
        freq = np.clip(freq, 60.0, top)
        return _sine(freq, sr, m, rng.uniform(0, 2 * np.pi)) * _envelope(rng, m, sr)
    return synth


def _harmonic(rng, m, sr, top):
    f0 = _loguniform(rng, 100, 1200)
    overtone_db = rng.uniform(-30, 0)  # at -30 dB the overtones hide in the noise: a tone
    slope = rng.uniform(0, 1.5)
    h = np.arange(1, 13)
    amp = np.where(h == 1, 1.0, 10 ** (overtone_db / 20) * h ** -slope)
    phases = rng.uniform(0, 2 * np.pi, h.size)
    amp = np.where(h * f0 < top, amp, 0.0)
    if f0 >= top:  # fundamental itself too high for this rate: keep one partial at the edge
        f0, amp = top, np.where(h == 1, 1.0, 0.0)
    t = np.arange(m) / sr
    x = amp @ np.sin(2 * np.pi * f0 * h[:, None] * t[None, :] + phases[:, None])
    return x * _envelope(rng, m, sr)


def _am_tone(rng, m, sr, top):
    f = min(_loguniform(rng, 150, 3000), top)
    rate = rng.uniform(2, 10)
    depth = rng.uniform(0.3, 1.0)  # shallow tremolo (~3 dB) is barely visible
    t = np.arange(m) / sr
    mod = 1 - depth * (0.5 + 0.5 * np.sin(2 * np.pi * rate * t + rng.uniform(0, 2 * np.pi)))
    return _sine(f, sr, m, rng.uniform(0, 2 * np.pi)) * mod * _envelope(rng, m, sr)


def _fm_tone(rng, m, sr, top):
    f = _loguniform(rng, 150, 3000)
    rate = rng.uniform(3, 12)
    depth = _loguniform(rng, 0.015, 0.12)  # relative deviation; 1.5 % at low pitch: a plain tone
    t = np.arange(m) / sr
    freq = f * (1 + depth * np.sin(2 * np.pi * rate * t + rng.uniform(0, 2 * np.pi)))
    freq = np.minimum(freq, top)
    return _sine(freq, sr, m, rng.uniform(0, 2 * np.pi)) * _envelope(rng, m, sr)


def _noise_burst(rng, m, sr, top):
    fc = min(_loguniform(rng, 200, 5000), 0.8 * top)
    bw = rng.uniform(0.2, 3.0)  # bandwidth in octaves; a narrow band is a rough tone
    spec = np.fft.rfft(rng.standard_normal(m))
    f = np.fft.rfftfreq(m, 1.0 / sr)
    lf = np.log2(np.maximum(f, 1.0) / fc)
    spec *= np.exp(-0.5 * (lf / (bw / 2)) ** 2) * (f < top)
    return np.fft.irfft(spec, m) * _envelope(rng, m, sr)


def _click_train(rng, m, sr, top):
    dur = m / sr
    rate = _loguniform(rng, max(4.0, 3.0 / dur), 150.0)  # fast trains are buzzy, near-harmonic
    jitter = rng.uniform(0, 0.2)
    fc = min(_loguniform(rng, 500, 6000), top)
    tau = rng.uniform(0.0003, 0.003)
    n_clicks = int(dur * rate) + 1
    times = (np.arange(n_clicks) + rng.uniform(-jitter, jitter, n_clicks) / 2) / rate
    amps = rng.uniform(0.6, 1.0, n_clicks)
    pos = np.round(times * sr).astype(int)
    keep = (pos >= 0) & (pos < m)
    train = np.zeros(m)
    np.add.at(train, pos[keep], amps[keep])
    k = np.arange(max(int(8 * tau * sr), 2)) / sr
    kernel = np.exp(-k / tau) * np.sin(2 * np.pi * fc * k + 0.5 * np.pi)
    return np.convolve(train, kernel)[:m] * _fade(m, sr, 0.002, 0.01)


def _pluck(rng, m, sr, top):
    """Karplus-Strong string: a noise burst circulating in a damped, low-passed delay line."""
    f0 = min(_loguniform(rng, 100, 1000), top)
    period = max(int(round(sr / f0 - 0.5)), 2)  # the averaging filter adds half a sample
    tau = rng.uniform(0.08, 0.5)  # decay time constant of the fundamental, seconds
    g = float(np.exp(-1.0 / (f0 * tau)))
    brightness = rng.uniform(0.2, 1.0)  # 1-pole low-pass on the excitation
    excite = lfilter([brightness], [1, brightness - 1], rng.uniform(-1, 1, period))
    x = np.zeros(m)
    x[:min(period, m)] = excite[:m]
    a = np.zeros(period + 2)
    a[0], a[period], a[period + 1] = 1.0, -g / 2, -g / 2
    return lfilter([1.0], a, x) * _fade(m, sr, 0.0005, 0.02)


def _impact(rng, m, sr, top):
    """Struck object: a few inharmonic damped modes plus a short noise transient."""
    base = min(_loguniform(rng, 150, 2000), 0.8 * top)
    k = int(rng.integers(3, 7))
    ratios = np.concatenate([[1.0], np.sort(rng.uniform(1.3, 6.0, k - 1))])
    amps = rng.uniform(0.2, 1.0, k) * np.where(base * ratios < top, 1.0, 0.0)
    taus = rng.uniform(0.02, 0.35, k) / np.sqrt(ratios)
    phases = rng.uniform(0, 2 * np.pi, k)
    noise_level = rng.uniform(0, 0.5)
    noise_len = rng.uniform(0.003, 0.02)
    t = np.arange(m) / sr
    modes = np.exp(-t[None, :] / taus[:, None]) * np.sin(
        2 * np.pi * np.minimum(base * ratios, top)[:, None] * t[None, :] + phases[:, None])
    x = amps @ modes
    x += noise_level * rng.standard_normal(m) * np.exp(-t / noise_len)
    return x * _fade(m, sr, 0.0005, 0.02)


_SYNTHS: list[Callable] = [_tone, _chirp(+1), _chirp(-1), _harmonic, _am_tone, _fm_tone,
                           _noise_burst, _click_train, _pluck, _impact]
assert len(_SYNTHS) == len(CLASS_NAMES)


# --------------------------------------------------------------------------- rendering

def make_key(seed: int, split: str, index: int) -> str:
    return f"synthetic/s{seed}/{split}/{index:05d}"


def parse_key(key: str) -> tuple[int, str, int]:
    """(seed, split, index) of a synthetic clip key."""
    m = _KEY.match(key)
    if not m:
        raise ValueError(f"not a synthetic clip key: {key!r} "
                         f"(expected synthetic/s<seed>/<split>/<index>)")
    return int(m.group(1)), m.group(2), int(m.group(3))


def class_of(index: int) -> int:
    return index % len(CLASS_NAMES)


def synthesize(seed: int, split: str, index: int, sample_rate: int) -> np.ndarray:
    """The clip (seed, split, index) at `sample_rate`: float32, CLIP_SECONDS long, peak < 1."""
    if sample_rate < 2000:
        raise ValueError(f"synthetic audio needs a sample rate of at least 2000 Hz, "
                         f"got {sample_rate}")
    sr = int(sample_rate)
    n = int(round(CLIP_SECONDS * sr))
    top = 0.45 * sr
    rng = np.random.default_rng([seed, SPLIT_IDS[split], index])
    # Common draws first, in a fixed order, so they do not depend on the class or the rate.
    dur = rng.uniform(0.25, 0.9) * CLIP_SECONDS
    onset_frac = rng.random()
    snr_db = rng.uniform(*SNR_DB)
    alpha = rng.uniform(0.0, 2.0)
    peak_db = rng.uniform(*PEAK_DBFS)
    m = max(int(round(dur * sr)), 16)
    onset = int(onset_frac * (n - m + 1))

    event = _SYNTHS[class_of(index)](rng, m, sr, top)
    event /= np.sqrt(np.mean(event ** 2)) + 1e-12
    clip = _coloured_noise(rng, n, sr, alpha) * 10 ** (-snr_db / 20)
    clip[onset:onset + m] += event
    clip *= 10 ** (peak_db / 20) / (np.max(np.abs(clip)) + 1e-12)
    return clip.astype(np.float32)


def render_clip(clip: Clip, sample_rate: int) -> np.ndarray:
    """DatasetIndex.render for the synthetic dataset: the audio follows from `clip.key` alone."""
    seed, split, index = parse_key(clip.key)
    return synthesize(seed, split, index, sample_rate)


def _sizes(split: str) -> tuple[int, int, int]:
    if split in SIZES:
        return SIZES[split]
    if split.startswith("sizes:"):
        parts = split.split(":", 1)[1].split(",")
        try:
            sizes = tuple(int(p) for p in parts)
        except ValueError:
            sizes = ()
        if len(sizes) == 3 and all(s >= 1 for s in sizes):
            return sizes  # type: ignore[return-value]
    raise UserError(f"synthetic `split` must be one of {', '.join(SIZES)} or sizes:TRAIN,VAL,TEST "
                    f"(three positive clip counts), got {split!r}")


@register_dataset(
    "synthetic",
    description="Synthetic sound events generated in memory (10 classes, 1 s): no download needed",
    layout=LAYOUT,
    frontend=FrontEndConfig(sample_rate=NATIVE_RATE, n_fft=512, hop_length=160, n_mels=64,
                            fmin=50.0, fmax=8000.0, clip_seconds=CLIP_SECONDS),
    needs_root=False,
)
def load_synthetic(root: Path | None = None, *, split: str | None = None, seed: int = 0,
                   val_fraction: float | None = None, test_fold: int | None = None,
                   val_fold: int | None = None, subset: str | None = None,
                   split_file: Path | None = None) -> DatasetIndex:
    """`split`: "default" (train 800 / val 200 / test 400), "small" (200 / 50 / 100) or
    "sizes:TRAIN,VAL,TEST". Classes are balanced (exactly when a size is a multiple of 10);
    `seed` changes every clip. `root` is not used; `val_fraction` is refused (it was silently
    ignored before): the sizes are fixed, give the validation size in sizes:T,V,E."""
    reject_options("synthetic", test_fold=test_fold, val_fold=val_fold, subset=subset,
                   split_file=split_file)
    if val_fraction is not None:
        raise UserError("dataset 'synthetic' does not take `val_fraction`: its split sizes are "
                        "fixed; set the validation size with `split` sizes:TRAIN,VAL,TEST")
    split = split or "default"
    k = parse_fold(split, None, "synthetic")
    sizes = _sizes("default" if k is not None else split)
    if int(seed) != seed or seed < 0:
        raise UserError(f"synthetic `seed` must be a non-negative integer, got {seed!r}")
    seed = int(seed)
    splits = {name: [Clip(key=make_key(seed, name, i), path=None, targets=(class_of(i),))
                     for i in range(size)]
              for name, size in zip(SPLITS, sizes)}
    fold = None
    if k is not None:  # the default's 1,400 clips in seeded stratified folds (validation: 1/7)
        fold = (k, folds_of(split, None))
        pooled = [c for name in SPLITS for c in splits[name]]
        splits = stratified_kfold(pooled, k, fold[1], seed, sizes[1] / (sizes[0] + sizes[1]))
        split = f"fold:{k}/{fold[1]}"
    return DatasetIndex(name="synthetic", task="single-label", class_names=list(CLASS_NAMES),
                        splits=splits, split_name=split, sample_rate=NATIVE_RATE,
                        render=render_clip, fold=fold)
