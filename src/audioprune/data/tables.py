"""Reading the metadata tables of the official layouts, with errors that name file and lines."""

from __future__ import annotations

import csv
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path, PurePosixPath
from typing import Iterator

from audioprune.data.types import Clip
from audioprune.errors import UserError


def read_table(path: Path, columns: tuple[str, ...], dataset: str, layout: str,
               delimiter: str = ",") -> list[tuple[int, dict[str, str]]]:
    """Rows of a delimited file with a header as (line number, {column: value}); a UserError
    naming the file when it is missing, is not UTF-8 text, or lacks one of `columns`. Extra
    columns are ignored; a short row reads its missing fields as ""."""
    if not path.is_file():
        raise UserError(f"{path} not found; {dataset} expects:\n{layout}")
    with readable(path), open(path, newline="", encoding="utf-8") as fh:
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


@contextmanager
def readable(path: Path) -> Iterator[None]:
    """Turn the errors of reading a text table that is not one (binary junk, another encoding,
    a runaway quoted field) into a UserError naming `path`."""
    try:
        yield
    except UnicodeDecodeError as exc:
        raise UserError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start}); restore "
                        f"the official file") from None
    except csv.Error as exc:
        raise UserError(f"{path}: unreadable table ({exc}); restore the official file") from None


def stays_inside(rel: str) -> bool:
    """True when `rel` is a non-empty relative path without `..`: joined to a directory, it
    cannot point outside it. Metadata must not send a loader outside the data root."""
    if not rel or "\x00" in rel:
        return False
    pure = PurePosixPath(rel)
    return not pure.is_absolute() and ".." not in pure.parts


def check_relative(table: Path, names: list[tuple[int, str]]) -> None:
    """UserError naming the rows of `table` whose file name is empty, absolute or has `..`."""
    bad = [line for line, name in names if not stays_inside(name)]
    if bad:
        raise bad_rows(table, "a file name that is empty, absolute or climbs out of the data "
                       "root with '..'", bad, "metadata may only name files inside the data root")


def check_duplicates(table: Path, names: list[tuple[int, str]], what: str = "file") -> None:
    """UserError naming the rows of `table` that list a file already listed on an earlier row."""
    first: dict[str, int] = {}
    repeated = []
    for line, name in names:
        if name in first:
            repeated.append(f"line {line}: {name} (as on line {first[name]})")
        else:
            first[name] = line
    if repeated:
        more = f" and {len(repeated) - 5} more" if len(repeated) > 5 else ""
        raise UserError(f"{table}: {len(repeated)} row(s) list a {what} already listed "
                        f"({'; '.join(repeated[:5])}{more}); remove the repeated rows")


def bad_rows(path: Path, msg: str, lines: list[int], fix: str) -> UserError:
    """An error naming the first few offending lines of `path` and how many there are."""
    shown = ", ".join(str(n) for n in lines[:5])
    more = f" and {len(lines) - 5} more" if len(lines) > 5 else ""
    return UserError(f"{path}: {msg} on line(s) {shown}{more}; {fix}")


# What check_files does with listed files that are missing on disk: raise (the default), or, inside
# `skipping_missing()` (load_dataset(skip_missing=True)), leave them out and record them.
_SKIP_MISSING: ContextVar[list[tuple[str, int, str]] | None] = ContextVar("skip_missing", default=None)


@contextmanager
def skipping_missing() -> Iterator[list[tuple[str, int, str]]]:
    """Within the block, listed files missing on disk are left out instead of refused; the list
    yielded collects them as (table, line, clip key)."""
    found: list[tuple[str, int, str]] = []
    token = _SKIP_MISSING.set(found)
    try:
        yield found
    finally:
        _SKIP_MISSING.reset(token)


def check_files(table: Path, clips: list[Clip], lines: list[int]) -> list[Clip]:
    """Every clip listed in `table` must exist on disk; the error names the first few rows.
    Inside `skipping_missing()` the missing ones are recorded and left out instead; returns the
    clips that exist."""
    missing = [(line, c) for line, c in zip(lines, clips) if c.path is None or not c.path.is_file()]
    if not missing:
        return clips
    skip = _SKIP_MISSING.get()
    if skip is not None:
        skip.extend((str(table), line, c.key) for line, c in missing)
        gone = {c.key for _, c in missing}
        return [c for c in clips if c.key not in gone]
    shown = "; ".join(f"line {line}: {c.key}" for line, c in missing[:5])
    raise UserError(f"{len(missing)} of {len(clips)} clips listed in {table} are missing on "
                    f"disk (first: {shown}); download the complete dataset or restore the files "
                    f"(`skip_missing` trains on what is there)")
