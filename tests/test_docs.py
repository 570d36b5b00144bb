"""The documentation cannot drift from the code: every code block of README.md and docs/**/*.md
runs (tests/docs_harness.py: how each kind of block is handled and the mechanical substitution
that makes commands small), the generated reference pages equal what docs/gen_reference.py
writes today, every tutorial file is run by its page, and the site builds with
`mkdocs build --strict` (a broken link or a missing reference fails)."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from conftest import FSDD, make_fsdd_subset
from docs_harness import (
    LINKED,
    REPO,
    Block,
    DocsError,
    Shell,
    Small,
    check_data,
    check_includes,
    read_blocks,
    run_python,
)

DOC_FILES = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]
TUTORIALS = REPO / "docs" / "tutorials"

# Blocks that cannot pass as written, per file, by the block's first line ("*unlabelled*": every
# block without a language). They are not run. README.md is to be rewritten: mark blocks in the
# Markdown itself (<!-- docs-test: skip REASON -->) rather than here; an entry that names no block
# fails test_known_failures_name_blocks, so this list only shrinks.
KNOWN: dict[str, dict[str, str]] = {}


def _relative(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


def _cases() -> list[Any]:
    cases = []
    for path in DOC_FILES:
        known = KNOWN.get(_relative(path), {})
        for block in read_blocks(path):
            why = known.get(block.key) or (known.get("*unlabelled*")
                                           if block.kind == "unlabelled" else None)
            marks = [pytest.mark.xfail(run=False, strict=True, reason=why)] if why else []
            cases.append(pytest.param(block, id=block.where, marks=marks))
    return cases


class FileSession:
    """One Markdown file's working directory, shell and Python namespace, shared by its blocks."""

    def __init__(self, workdir: Path, fsdd: Any) -> None:
        for name in LINKED:
            (workdir / name).symlink_to(REPO / name, target_is_directory=True)
        (workdir / "tmp").mkdir()
        self.small = Small(workdir, fsdd)
        self.shell = Shell(self.small)
        self.namespace: dict[str, Any] = {"__name__": "__docs__"}


@pytest.fixture(scope="session")
def docs_fsdd(fsdd_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every speaker and digit, takes 0 and 5: 120 real clips (official split: 60 test)."""
    speakers = sorted({p.name.split("_")[1] for p in (fsdd_root / "recordings").glob("*.flac")})
    return make_fsdd_subset(tmp_path_factory.mktemp("docs_fsdd"), tuple(speakers), range(0, 6, 5))


@pytest.fixture(scope="module")
def sessions(request: pytest.FixtureRequest,
             tmp_path_factory: pytest.TempPathFactory) -> dict[Path, FileSession]:
    made: dict[Path, FileSession] = {}

    class Sessions(dict):
        def __missing__(self, path: Path) -> FileSession:
            slug = _relative(path).replace("/", "_").removesuffix(".md")
            made[path] = FileSession(tmp_path_factory.mktemp(f"docs-{slug}"),
                                     lambda: request.getfixturevalue("docs_fsdd"))
            self[path] = made[path]
            return made[path]

    return Sessions()


@pytest.mark.parametrize("block", _cases())
def test_block(block: Block, sessions: dict[Path, FileSession]) -> None:
    if block.kind == "unlabelled":
        raise DocsError(f"{block.where}: a block without a language; say what it is (```text for "
                        f"an output transcript, ```bash for commands, ...)")
    if block.kind == "unknown":
        raise DocsError(f"{block.where}: no rule for blocks of language {block.lang!r} "
                        f"(tests/docs_harness.py)")
    reason = block.skip_reason
    if reason:
        pytest.skip(f"marked in the page: {reason}")
    for module in block.requires:
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"needs {module}, which is not installed (an optional extra)")
    if block.kind == "include":
        check_includes(block)
    elif block.kind == "data":
        check_data(block)
    elif block.kind == "python":
        session = sessions[block.path]
        run_python(block, session.namespace, session.small.workdir)
    elif block.kind == "shell":
        sessions[block.path].shell.run(block.text, block.where, block.expect_exit)


def test_known_failures_name_blocks() -> None:
    for rel, known in KNOWN.items():
        blocks = read_blocks(REPO / rel)
        keys = {b.key for b in blocks} | ({"*unlabelled*"} if any(
            b.kind == "unlabelled" for b in blocks) else set())
        assert not set(known) - keys, f"{rel}: KNOWN names blocks it no longer has"


def test_every_tutorial_file_is_run_by_its_page() -> None:
    files = sorted(p for p in TUTORIALS.iterdir() if p.is_file() and p.suffix != ".md")
    assert files
    commands = "\n".join(b.text for p in TUTORIALS.glob("*.md") for b in read_blocks(p)
                         if b.kind == "shell")
    shown = {inc for p in TUTORIALS.glob("*.md") for b in read_blocks(p) for inc in b.includes}
    for f in files:
        rel = _relative(f)
        assert rel in commands, f"no command block of docs/tutorials/*.md runs {rel}"
        assert rel in shown, f"no page of docs/tutorials/ shows {rel} (--8<-- \"{rel}\")"


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_tutorial_scripts_are_bash() -> None:
    for script in TUTORIALS.glob("*.sh"):
        done = subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr


def _gen_reference() -> Any:
    spec = importlib.util.spec_from_file_location("gen_reference", REPO / "docs" / "gen_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_reference_pages_are_up_to_date() -> None:
    stale = _gen_reference().stale_pages()
    assert not stale, f"run `python docs/gen_reference.py` (or `make docs`): {', '.join(stale)}"


@pytest.mark.slow
@pytest.mark.skipif(importlib.util.find_spec("mkdocs") is None,
                    reason="the docs extra is not installed")
def test_site_builds_strictly(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet",
                           "--site-dir", str(tmp_path / "site")], cwd=REPO, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "site" / "index.html").is_file()


def test_fsdd_placeholder_is_real() -> None:
    """The substitution's data: the FSDD tree the tests link to is where conftest says."""
    if not (FSDD / "recordings").is_dir():
        pytest.skip("no FSDD here")
    assert any((FSDD / "recordings").glob("*_nicolas_5.flac"))
