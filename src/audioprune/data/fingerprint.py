"""A hash of exactly which files a run used, so two runs can be shown to have seen the same data.

The hash covers every clip of every split: split name, key, targets and the file's size (the
size catches a re-encoded or replaced file without reading it). Undecodable files that were
skipped are not in the index any more, so they change the hash too.
"""

from __future__ import annotations

import hashlib
import json

from audioprune.data.types import DatasetIndex


def data_list_hash(index: DatasetIndex) -> str:
    """sha256 (hex) of the sorted (split, key, targets, file size) list of `index`."""
    rows = []
    for split in sorted(index.splits):
        for clip in sorted(index.splits[split], key=lambda c: c.key):
            try:
                size = clip.path.stat().st_size if clip.path is not None else 0
            except OSError:
                size = -1
            rows.append([split, clip.key, list(clip.targets), size])
    text = json.dumps({"dataset": index.name, "split": index.split_name,
                       "classes": index.class_names, "clips": rows}, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()
