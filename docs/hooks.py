"""MkDocs hooks (mkdocs.yml `hooks:`): files from outside docs/ that included pages link to.

docs/benchmarks.md includes BENCHMARKS.md, whose images are bench/results/*.png, linked from
the repository root; this adds those files to the site under the same paths, so the included
page's links resolve (and `--strict` still fails on a link to a file that is missing)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

REPO = Path(__file__).resolve().parents[1]
INCLUDED = ("BENCHMARKS.md",)  # repository files a page includes by snippet
_IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)\)")


def on_files(files: Files, config: Any) -> Files:
    for name in INCLUDED:
        for target in _IMAGE.findall((REPO / name).read_text(encoding="utf-8")):
            path = REPO / target
            if "://" in target or not path.is_file() or files.get_file_from_path(target):
                continue
            files.append(File(target, src_dir=str(REPO), dest_dir=config["site_dir"],
                              use_directory_urls=config["use_directory_urls"]))
    return files
