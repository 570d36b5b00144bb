"""Reading the metadata tables of the official layouts, with errors that name file and lines."""

from __future__ import annotations

import csv
from pathlib import Path

from audioprune.data.types import Clip
from audioprune.errors import UserError


def read_table(path: Path, columns: tuple[str, ...], dataset: str, layout: str,
               delimiter: str = ",") -> list[tuple[int, dict[str, str]]]:
    """Rows of a delimited file with a header as (line number, {column: value}); a UserError
    naming the file when it is missing or lacks one of `columns`."""
    if not path.is_file():
        raise UserError(f"{path} not found; {dataset} expects:\n{layout}")
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh, delimiter=delimiter)
        header = [h.strip() for h in reader.fieldnames or []]
        missing = [c for c in columns if c not in header]
        if missing:
            kind = "tab-separated " if delimiter == "\t" else ""
            raise UserError(f"{path}: header lacks column(s) {', '.join(missing)} (found "
                            f"{', '.join(header) or 'no header'}); expected the {kind}columns "
                            f"{', '.join(columns)}")
        reader.fieldnames = header
        return [(reader.line_num, {k: (v or "").strip() for k, v in r.items() if k is not None})
                for r in reader]


def bad_rows(path: Path, msg: str, lines: list[int], fix: str) -> UserError:
    """An error naming the first few offending lines of `path` and how many there are."""
    shown = ", ".join(str(n) for n in lines[:5])
    more = f" and {len(lines) - 5} more" if len(lines) > 5 else ""
    return UserError(f"{path}: {msg} on line(s) {shown}{more}; {fix}")


def check_files(table: Path, clips: list[Clip], lines: list[int]) -> None:
    """Every clip listed in `table` must exist on disk; the error names the first few rows."""
    missing = [(line, c) for line, c in zip(lines, clips) if c.path is None or not c.path.is_file()]
    if missing:
        shown = "; ".join(f"line {line}: {c.key}" for line, c in missing[:5])
        raise UserError(f"{len(missing)} of {len(clips)} clips listed in {table} are missing on "
                        f"disk (first: {shown}); download the complete dataset or restore the files")
