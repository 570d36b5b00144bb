"""Run the code blocks of Markdown files as a reader would, on small settings (tests/test_docs.py).

Blocks. Every fenced block of a file is read in order and handled by its language:

  python, py                 run (exec) in one namespace per file, in the file's working directory
  bash, sh, shell            run, command by command (below), in the file's working directory
  yaml, yml, json, toml      parsed; a YAML block with `dataset:` and `models:` is validated as a
                             recipe (audioprune.pipeline.recipe.parse_recipe)
  text, console, output, log, csv, tsv, markdown, md
                             an output transcript or a listing: not run
  a block holding only pymdownx.snippets includes (--8<-- "path")
                             shows a file; not run itself (the file must exist; the tutorials'
                             files are run by a command block of their page, which a test checks)
  no language                an error: say what the block is (```text for a transcript)

A marker on the line before a block changes that:
  <!-- docs-test: skip REASON -->   not run, for REASON (keep these rare)
  <!-- docs-test: exit N -->        the block's last command exits with status N (e.g. 1 for
                                    `audioprune profile --budget` on a model over the budget)
  <!-- docs-test: requires MOD -->  skipped, saying so, when the module MOD (an optional extra,
                                    e.g. ray or lightning) is not installed

Working directory. Each file gets its own empty directory, shared by its blocks in order (a
block may use the run a block above trained), holding links to the repository's `recipes/`,
`examples/` and `docs/` so that commands written for the repository root work there (`bench/`
is not linked: its scripts write into bench/results/).

Shell commands. Lines are joined at a trailing backslash; comments, `set ...` and
`VAR=value` (also `export`, `${VAR:-default}`, `$VAR`, a `VAR=value command` prefix) work as in
bash, and `cmd1 && cmd2` runs both; pipes, redirections and `;` are refused. Then:

  audioprune ARGS            run in this process (audioprune.cli.main, the `audioprune` entry
                             point; `python -m audioprune` and `.venv/bin/audioprune` too)
  python SCRIPT ARGS         run as a subprocess with this interpreter
  bash FILE.sh, sh FILE.sh   the file's lines run by these same rules (its variables stay in it)
  cd, echo                   as in bash
  ls, cat, head, tail, mkdir, cp, mv, rm, touch, wc, du, find
                             run as they are, in the working directory
  anything else (make, pip, torchrun, ...)
                             an error: such a block needs a skip marker

Small settings: the arguments of `audioprune` and `python` commands are rewritten, mechanically:

  --epochs N, --finetune-epochs N, --qat-epochs N     N -> 1 (with --progressive --iterative K,
                             --finetune-epochs N -> K: one pruning step per epoch)
  a path whose last part is `fsdd` (data/fsdd, ../shared/datasets/fsdd)
                             -> the small FSDD tree: links to the real recordings of every
                                speaker, digit and takes 0 and 5 (120 clips; tests/conftest.py)
  --dataset synthetic (a command with a --split option and none given; also `datasets check
  synthetic`)                -> adds --split sizes:40,10,20
  /tmp/...                   -> <working directory>/tmp/...

and every recipe that `audioprune run` or `audioprune demo` reads is shrunk as it is read:
every `epochs` and `qat_epochs` -> 1, `folds` -> its first fold, `seeds` -> its first seed,
the synthetic dataset -> split sizes:40,10,20 (unless it has a split), an FSDD root -> the
small tree, `profile.batch_sizes` -> [1]. Commands run with OMP_NUM_THREADS=1 and
AUDIOPRUNE_PROGRESS=0. Nothing else changes: a command that needs data or runs this machine does
not have fails, and its block needs a skip marker saying so.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import shlex
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]

RUN_LANGS = {"python": "python", "py": "python", "bash": "shell", "sh": "shell", "shell": "shell"}
TRANSCRIPT_LANGS = {"text", "console", "output", "log", "csv", "tsv", "markdown", "md"}
DATA_LANGS = {"yaml", "yml", "json", "toml"}
LINKED = ("recipes", "examples", "docs")
EPOCH_FLAGS = ("--epochs", "--finetune-epochs", "--qat-epochs")
SYNTHETIC_SPLIT = "sizes:40,10,20"
FILE_COMMANDS = {"ls", "cat", "head", "tail", "mkdir", "cp", "mv", "rm", "touch", "wc", "du",
                 "find"}
PYTHONS = {"python", "python3", ".venv/bin/python", sys.executable}
AUDIOPRUNES = {"audioprune", ".venv/bin/audioprune"}

_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")
_MARKER = re.compile(r"^\s*<!--\s*docs-test:\s*(?P<what>.*?)\s*-->\s*$")
_INCLUDE = re.compile(r"""^\s*-{1,}8<-{1,}\s+(["']?)(?P<path>[^"';]+)\1\s*$""")
_VAR = re.compile(r"\$\{(?P<a>[A-Za-z_][A-Za-z0-9_]*|[0-9])(?::-(?P<default>[^}]*))?\}"
                  r"|\$(?P<b>[A-Za-z_][A-Za-z0-9_]*|[0-9])")  # $1: a script's arguments
_ASSIGN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")


class DocsError(Exception):
    """A block that the harness cannot run as written (it says why and what to do)."""


@dataclass
class Block:
    path: Path
    line: int  # 1-based line of the opening fence
    info: str
    text: str
    marker: str | None = None  # the docs-test marker before it

    @property
    def lang(self) -> str:
        word = self.info.strip().lstrip("{").split()[0] if self.info.strip() else ""
        return word.lstrip(".").lower()

    @property
    def key(self) -> str:
        """The block's first non-blank line: how a list of known failures names it."""
        return next((x.strip() for x in self.text.splitlines() if x.strip()), "")

    @property
    def includes(self) -> list[str]:
        lines = [x for x in self.text.splitlines() if x.strip()]
        found = [_INCLUDE.match(x) for x in lines]
        return [m.group("path").strip() for m in found if m] if lines and all(found) else []

    @property
    def kind(self) -> str:
        if self.includes:
            return "include"
        if not self.lang:
            return "unlabelled"
        if self.lang in RUN_LANGS:
            return RUN_LANGS[self.lang]
        if self.lang in TRANSCRIPT_LANGS:
            return "transcript"
        if self.lang in DATA_LANGS:
            return "data"
        return "unknown"

    @property
    def skip_reason(self) -> str | None:
        if self.marker and self.marker.split()[0] in ("skip", "skip:"):
            reason = self.marker.split(None, 1)[1:] and self.marker.split(None, 1)[1].strip()
            if not reason:
                raise DocsError(f"{self.where}: `docs-test: skip` needs a reason")
            return reason
        return None

    @property
    def requires(self) -> list[str]:
        """The modules the block needs (`docs-test: requires ray,lightning`)."""
        if self.marker and self.marker.split()[0] == "requires":
            return [m for part in self.marker.split()[1:] for m in part.split(",") if m]
        return []

    @property
    def expect_exit(self) -> int:
        if self.marker and self.marker.split()[0] == "exit":
            return int(self.marker.split()[1])
        return 0

    @property
    def where(self) -> str:
        try:
            rel = self.path.resolve().relative_to(REPO)
        except ValueError:
            rel = self.path
        return f"{rel}:{self.line}"


def read_blocks(path: Path) -> list[Block]:
    """Every fenced block of a Markdown file, in order, with the marker before each."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, start = m.group("fence"), i
        close = re.compile(rf"^ {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}\s*$")
        body = []
        i += 1
        while i < len(lines) and not close.match(lines[i]):
            body.append(lines[i])
            i += 1
        indent = len(m.group("indent"))
        body = [x[indent:] if x[:indent].strip() == "" else x for x in body]
        prev = next((lines[j] for j in range(start - 1, -1, -1) if lines[j].strip()), "")
        marker = _MARKER.match(prev)
        blocks.append(Block(path, start + 1, m.group("info"), "\n".join(body) + "\n",
                            marker.group("what") if marker else None))
        i += 1
    return blocks


# ------------------------------------------------------------------------------ small settings


@dataclass
class Small:
    """Where a file's blocks run and what their small settings are."""

    workdir: Path
    fsdd: Callable[[], Path]  # the small FSDD tree (skips the test when FSDD is missing)
    log: list[str] = field(default_factory=list)  # every command as run

    def tmp(self, value: str) -> str:
        return str(self.workdir / "tmp" / value[len("/tmp/"):]) if value.startswith("/tmp/") \
            else value


def is_fsdd(value: Any) -> bool:
    """A path to an FSDD tree: a directory part, then `fsdd` (data/fsdd, ../shared/datasets/fsdd)."""
    if not isinstance(value, str):
        return False
    head, _, last = value.rstrip("/").rpartition("/")
    return bool(head) and last.lower() == "fsdd"


def _flags_of(command: str) -> set[str]:
    from audioprune.cli import _subparser, build_parser

    sub = _subparser(build_parser(), command)
    return {o for a in sub._actions for o in a.option_strings}


def small_args(argv: list[str], small: Small, audioprune: bool) -> list[str]:
    """`argv` with the small settings of the module doc."""
    out: list[str] = []
    pending: str | None = None
    for token in argv:
        flag, eq, value = token.partition("=") if token.startswith("--") else (token, "", "")
        if pending is not None:
            token = _small_value(pending, token, small)
            pending = None
        elif flag.startswith("--") and eq:
            token = f"{flag}={_small_value(flag, value, small)}"
        elif token.startswith("--"):
            pending = token
        else:
            token = _small_value(None, token, small)
        out.append(token)
    steps = _value_of(argv, "--iterative")
    if "--progressive" in argv and steps and steps.isdigit():
        given = _value_of(argv, "--finetune-epochs")
        keep = str(min(int(steps), int(given))) if given and given.isdigit() else steps
        out = [f"--finetune-epochs={keep}" if t.startswith("--finetune-epochs=") else t
               for t in out]
        if "--finetune-epochs" in out:
            out[out.index("--finetune-epochs") + 1] = keep
    if audioprune and out and out[0] != "run" and out[0] != "demo":
        given = {t.partition("=")[0] for t in out}
        dataset = _value_of(out, "--dataset")
        if out[:2] == ["datasets", "check"] and len(out) > 2:
            dataset = out[2]
        if dataset == "synthetic" and "--split" not in given and "--split" in _flags_of(out[0]):
            out += ["--split", SYNTHETIC_SPLIT]
    return out


def _value_of(argv: list[str], flag: str) -> str | None:
    for i, t in enumerate(argv):
        if t == flag and i + 1 < len(argv):
            return argv[i + 1]
        if t.startswith(flag + "="):
            return t.split("=", 1)[1]
    return None


def _small_value(flag: str | None, value: str, small: Small) -> str:
    if flag in EPOCH_FLAGS and value.isdigit() and int(value) > 1:
        return "1"
    if is_fsdd(value) or (flag == "--data-root" and value.rstrip("/").lower() == "fsdd"):
        return str(small.fsdd())
    return small.tmp(value)


def shrink_recipe(data: Any, small: Small) -> Any:
    """A recipe (as parsed YAML) at the small settings of the module doc."""
    if isinstance(data, list):
        return [shrink_recipe(x, small) for x in data]
    if not isinstance(data, dict):
        return data
    out = {}
    for key, value in data.items():
        if key in ("epochs", "qat_epochs") and isinstance(value, int) and value > 1:
            value = 1
        elif key == "folds" and value is not None:
            value = [1] if value == "all" else list(value)[:1]
        elif key == "seeds" and isinstance(value, list) and value:
            value = value[:1]
        elif key == "dataset":
            value = _small_dataset(value, small)
        elif key == "profile" and isinstance(value, dict):
            value = {**value, "batch_sizes": [1]}
        else:
            value = shrink_recipe(value, small)
        out[key] = value
    return out


def _small_dataset(value: Any, small: Small) -> Any:
    d = {"name": value} if isinstance(value, str) else dict(value or {})
    if d.get("name") == "synthetic" and not d.get("split"):
        d["split"] = SYNTHETIC_SPLIT
    if d.get("name") == "fsdd" and d.get("root") and is_fsdd(d["root"]):
        d["root"] = str(small.fsdd())
    return d if isinstance(value, dict) or d != {"name": value} else value


@contextlib.contextmanager
def small_recipes(small: Small) -> Iterator[None]:
    """Every recipe read in this block (audioprune run, demo) is shrunk as it is read."""
    from audioprune.pipeline import recipe as recipe_module

    original = recipe_module.parse_recipe

    def parse(data: Any, source: str = "recipe", variant: str | None = None) -> Any:
        return original(shrink_recipe(data, small), source, variant)

    recipe_module.parse_recipe = parse
    try:
        yield
    finally:
        recipe_module.parse_recipe = original


@contextlib.contextmanager
def _inside(cwd: Path, env: dict[str, str]) -> Iterator[None]:
    old_cwd, old_env = os.getcwd(), dict(os.environ)
    os.chdir(cwd)
    os.environ.update(env)
    try:
        yield
    finally:
        os.chdir(old_cwd)
        os.environ.clear()
        os.environ.update(old_env)


BASE_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "AUDIOPRUNE_PROGRESS": "0"}


# ------------------------------------------------------------------------------ the shell


class Shell:
    """The small shell of the module doc, for one file (its variables persist across blocks)."""

    def __init__(self, small: Small, cwd: Path | None = None,
                 exported: dict[str, str] | None = None) -> None:
        self.small = small
        self.cwd = cwd or small.workdir
        self.vars: dict[str, str] = dict(exported or {})
        self.exported: dict[str, str] = dict(exported or {})

    def run(self, text: str, where: str, expect_exit: int = 0) -> None:
        commands = list(self._commands(text, where))
        for n, (line, argv) in enumerate(commands):
            code = self._run(argv, where, line)
            want = expect_exit if n == len(commands) - 1 else 0
            if code != want:
                raise AssertionError(f"{where}: `{line}` exited with status {code}"
                                     f"{f' (expected {want})' if want else ''}; run as "
                                     f"{shlex.join(self.small.log[-1:]) if self.small.log else ''}")

    def _commands(self, text: str, where: str) -> Iterator[tuple[str, list[str]]]:
        logical, buf = [], ""
        for raw in text.splitlines():
            if raw.rstrip().endswith("\\"):
                buf += raw.rstrip()[:-1] + " "
                continue
            logical.append(buf + raw)
            buf = ""
        if buf:
            logical.append(buf)
        for line in logical:
            if line.lstrip().startswith("#!"):
                continue
            try:
                tokens = shlex.split(line, comments=True)
            except ValueError as exc:
                raise DocsError(f"{where}: cannot read `{line.strip()}`: {exc}") from None
            if not tokens:
                continue
            bad = [t for t in tokens if t in ("|", "||", ";", ">", ">>", "<", "&", "2>&1")]
            if bad:
                raise DocsError(f"{where}: `{line.strip()}`: the docs harness runs plain "
                                f"commands (and `&&`), not {bad[0]!r}; split the command or mark "
                                f"the block <!-- docs-test: skip REASON -->")
            part: list[str] = []
            for t in tokens + ["&&"]:
                if t == "&&":
                    if part:
                        yield line.strip(), part
                    part = []
                else:
                    part.append(t)

    def expand(self, token: str) -> str:
        def sub(m: re.Match[str]) -> str:
            name = m.group("a") or m.group("b")
            value = self.vars.get(name, os.environ.get(name) if name == "HOME" else None)
            if value is None or (m.group("default") is not None and value == ""):
                return m.group("default") or ""
            return value
        return _VAR.sub(sub, token)

    def _run(self, argv: list[str], where: str, line: str) -> int:
        argv = [self.expand(t) for t in argv]
        env: dict[str, str] = {}
        while argv and _ASSIGN.match(argv[0]) and len(argv) > 1:  # VAR=value command
            name, value = argv.pop(0).split("=", 1)
            env[name] = value
        cmd, args = argv[0], argv[1:]
        if _ASSIGN.match(cmd) or cmd == "export":
            for item in (args if cmd == "export" else argv):
                name, _, value = item.partition("=")
                self.vars[name] = value
                if cmd == "export":
                    self.exported[name] = value
            return 0
        if cmd == "set":
            return 0
        if cmd == "cd":
            target = (self.cwd / self.small.tmp(args[0])).resolve() if args else self.small.workdir
            if not target.is_dir():
                return 1
            self.cwd = target
            return 0
        if cmd == "echo":
            print(" ".join(args))
            return 0
        if cmd in ("bash", "sh") and args and args[0].endswith(".sh"):
            script = self.cwd / args[0]
            if not script.is_file():
                raise AssertionError(f"{where}: `{line}`: {args[0]} not found")
            child = Shell(self.small, self.cwd, {**self.exported, **env})
            for i, value in enumerate(args[1:], 1):
                child.vars[str(i)] = value
            child.run(script.read_text(), f"{where} -> {args[0]}")
            return 0
        if cmd in PYTHONS and args[:2] == ["-m", "audioprune"]:
            cmd, args = "audioprune", args[2:]
        full_env = {**BASE_ENV, **self.exported, **env}
        if cmd in AUDIOPRUNES:
            return self._audioprune(small_args(args, self.small, True), full_env)
        if cmd in PYTHONS:
            argv = [sys.executable, *small_args(args, self.small, False)]
            self.small.log.append(shlex.join(argv))
            done = subprocess.run(argv, cwd=self.cwd, env={**os.environ, **full_env},
                                  capture_output=True, text=True, timeout=900)
            print(done.stdout, end="")
            print(done.stderr, end="", file=sys.stderr)
            return done.returncode
        if cmd in FILE_COMMANDS:
            argv = [cmd, *[self.small.tmp(a) for a in args]]
            self.small.log.append(shlex.join(argv))
            done = subprocess.run(argv, cwd=self.cwd, env={**os.environ, **full_env},
                                  capture_output=True, text=True, timeout=60)
            print(done.stdout, end="")
            return done.returncode
        raise DocsError(f"{where}: `{line}`: the docs harness does not run `{cmd}` (it runs "
                        f"audioprune, python, bash FILE.sh and file commands); mark the block "
                        f"<!-- docs-test: skip REASON --> saying why it cannot run in a test")

    def _audioprune(self, argv: list[str], env: dict[str, str]) -> int:
        import torch

        from audioprune.cli import main

        self.small.log.append(shlex.join(["audioprune", *argv]))
        threads = torch.get_num_threads()
        with _inside(self.cwd, env), small_recipes(self.small):
            try:
                return main(argv)
            except SystemExit as exc:  # argparse
                return exc.code if isinstance(exc.code, int) else 1
            finally:
                torch.set_num_threads(threads)


# ------------------------------------------------------------------------------ the other blocks


def run_python(block: Block, namespace: dict[str, Any], cwd: Path) -> None:
    code = compile(block.text, block.where, "exec")
    with _inside(cwd, BASE_ENV):
        exec(code, namespace)  # noqa: S102 - the documentation's own code


def check_data(block: Block) -> None:
    text = block.text
    if block.lang in ("yaml", "yml"):
        data = yaml.safe_load(text)
        if isinstance(data, dict) and "dataset" in data and "models" in data:
            from audioprune.pipeline.recipe import parse_recipe

            parse_recipe(data, block.where)
    elif block.lang == "json":
        json.loads(text)
    else:
        import tomllib  # Python 3.11+

        tomllib.load(io.BytesIO(text.encode()))


def check_includes(block: Block) -> None:
    for rel in block.includes:
        if not (REPO / rel).is_file():
            raise AssertionError(f"{block.where}: includes {rel}, which does not exist")
