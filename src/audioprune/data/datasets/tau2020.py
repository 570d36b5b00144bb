"""TAU Urban Acoustic Scenes 2020 Mobile, development set (DCASE 2021 Task 1A): 10 scenes, 9 devices."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from audioprune.audio.frontend import FrontEndConfig
from audioprune.data.registry import register_dataset
from audioprune.data.splits import reject_options
from audioprune.data.tables import check_duplicates, check_files, check_relative, read_table
from audioprune.data.types import Clip, DatasetIndex
from audioprune.errors import UserError

META_COLUMNS = ("filename", "scene_label", "identifier", "source_label")
SETUP_COLUMNS = ("filename", "scene_label")
SETUP_FILES = {"train": "evaluation_setup/fold1_train.csv", "test": "evaluation_setup/fold1_evaluate.csv"}

# The DCASE 2021 Task 1A baseline front end (40 log-mel x 500 frames at 44.1 kHz). Re-declared
# here rather than imported: the data layer does not depend on the models.
DCASE21_FRONTEND = FrontEndConfig(sample_rate=44100, n_fft=2048, win_length=1764, hop_length=882,
                                  n_mels=40, fmin=0.0, fmax=22050.0, clip_seconds=10.0)

LAYOUT = """<root>/meta.csv                            filename, scene_label, identifier, source_label
<root>/evaluation_setup/fold1_train.csv    filename, scene_label
<root>/evaluation_setup/fold1_evaluate.csv filename, scene_label    (all three tab-separated)
<root>/audio/*.wav                         e.g. audio/airport-barcelona-0-0-a.wav
  (TAU-urban-acoustic-scenes-2020-mobile-development). Test = fold1_evaluate; validation = a
  seeded --val-fraction of the training recording locations (meta.csv `identifier`) per scene,
  so no location is in both train and validation. Clip.group = device (a, b, c, s1..s6)."""


@register_dataset(
    "tau2020",
    description="TAU Urban Acoustic Scenes 2020 Mobile dev (DCASE21 Task 1A): 10 scenes, per-device groups",
    layout=LAYOUT,
    frontend=DCASE21_FRONTEND,
    signature=("evaluation_setup/fold1_train.csv",),
)
def load_tau2020(root: Path | None, *, split: str | None = None, seed: int = 0,
                 val_fraction: float = 0.1, test_fold: int | None = None,
                 val_fold: int | None = None, subset: str | None = None,
                 split_file: Path | None = None) -> DatasetIndex:
    """`split`: "fold1" (the official evaluation setup, the only one). Class names are the scene
    labels of meta.csv, sorted; `Clip.group` is the recording device (the last dash field of the
    file name), so per-device accuracy can be reported."""
    reject_options("tau2020", test_fold=test_fold, val_fold=val_fold, subset=subset,
                   split_file=split_file)
    assert root is not None
    split = split or "fold1"
    if split != "fold1":
        raise UserError(f"tau2020 `split` must be 'fold1' (the official evaluation setup), got {split!r}")
    if not 0 <= val_fraction < 1:
        raise UserError(f"`val_fraction` must be in [0, 1), got {val_fraction}")

    meta_path = root / "meta.csv"
    meta_rows = read_table(meta_path, META_COLUMNS, "tau2020", LAYOUT, delimiter="\t")
    check_relative(meta_path, [(n, r["filename"]) for n, r in meta_rows])
    check_duplicates(meta_path, [(n, r["filename"]) for n, r in meta_rows])
    meta = {r["filename"]: r for _, r in meta_rows}
    class_names = sorted({r["scene_label"] for r in meta.values()})
    if not class_names:
        raise UserError(f"{meta_path} lists no clips")
    index = {s: i for i, s in enumerate(class_names)}

    splits: dict[str, list[Clip]] = {}
    identifier: dict[str, str] = {}
    for part, rel in SETUP_FILES.items():
        setup_path = root / rel
        rows = read_table(setup_path, SETUP_COLUMNS, "tau2020", LAYOUT, delimiter="\t")
        check_duplicates(setup_path, [(n, r["filename"]) for n, r in rows])
        unlisted = [f"line {n}: {r['filename']}" for n, r in rows if r["filename"] not in meta]
        if unlisted:
            raise UserError(f"{setup_path}: {len(unlisted)} file(s) not in {meta_path} (first: "
                            f"{'; '.join(unlisted[:5])}); restore the official meta.csv")
        wrong = [f"line {n}: {r['filename']} {r['scene_label']!r}" for n, r in rows
                 if r["scene_label"] != meta[r["filename"]]["scene_label"]]
        if wrong:
            raise UserError(f"{setup_path}: {len(wrong)} row(s) whose scene_label is not the one in "
                            f"{meta_path} (first: {'; '.join(wrong[:5])}); scenes are "
                            f"{', '.join(class_names)}")
        clips = []
        for _, r in rows:
            fname = r["filename"]
            clips.append(Clip(key=fname, path=root / fname, targets=(index[r["scene_label"]],),
                              group=Path(fname).stem.rsplit("-", 1)[-1]))
            identifier[fname] = meta[fname]["identifier"] or fname
        clips = check_files(setup_path, clips, [n for n, _ in rows])
        if not clips:
            raise UserError(f"{setup_path} lists no clips")
        splits[part] = sorted(clips, key=lambda c: c.key)

    both = sorted({c.key for c in splits["train"]} & {c.key for c in splits["test"]})
    if both:
        raise UserError(f"{len(both)} file(s) listed in both {SETUP_FILES['train']} and "
                        f"{SETUP_FILES['test']} (first: {', '.join(both[:5])}); a clip may be in "
                        f"one split only: restore the official evaluation setup")
    splits["train"], splits["val"] = _location_holdout(splits["train"], identifier, val_fraction, seed)
    return DatasetIndex(name="tau2020", task="single-label", class_names=class_names,
                        splits={k: splits[k] for k in ("train", "val", "test")}, split_name=split,
                        sample_rate=44100)


def _location_holdout(clips: list[Clip], identifier: dict[str, str], fraction: float,
                      seed: int) -> tuple[list[Clip], list[Clip]]:
    """Hold out about `fraction` of each scene's recording locations (all their clips)."""
    rng = np.random.default_rng(seed)
    locations: dict[int, list[str]] = defaultdict(list)
    for c in clips:
        ident = identifier[c.key]
        if ident not in locations[c.targets[0]]:
            locations[c.targets[0]].append(ident)
    held: set[str] = set()
    for scene in sorted(locations):
        idents = sorted(locations[scene])
        n = int(round(fraction * len(idents)))
        if fraction > 0 and len(idents) >= 2:
            n = min(max(n, 1), len(idents) - 1)
        else:
            n = 0
        held |= {idents[i] for i in rng.permutation(len(idents))[:n]}
    train = [c for c in clips if identifier[c.key] not in held]
    val = [c for c in clips if identifier[c.key] in held]
    return train, val
