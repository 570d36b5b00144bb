"""Waiting on what a test waits for - a line a child process prints, processes ending - instead of
sleeping and polling: nothing here sleeps, and every wait has a deadline."""

from __future__ import annotations

import os
import selectors
import subprocess
import time
from collections.abc import Callable
from pathlib import Path


def read_until(proc: subprocess.Popen, done: Callable[[list[str]], bool],
               timeout: float) -> list[str]:
    """Lines `proc` writes to its stdout pipe (opened as bytes), read as they come until
    `done(lines so far)`; AssertionError (with what it printed) when `proc` exits first or
    nothing satisfies `done` within `timeout` seconds."""
    assert proc.stdout is not None, "start the process with stdout=subprocess.PIPE"
    fd = proc.stdout.fileno()
    lines: list[str] = []
    rest = b""
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        sel.register(fd, selectors.EVENT_READ)
        while not done(lines):
            left = deadline - time.monotonic()
            if left <= 0 or not sel.select(left):
                raise AssertionError(f"not seen within {timeout:.0f} s; printed so far:\n"
                                     + "\n".join(lines[-40:]))
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                raise AssertionError("the process exited first; it printed:\n"
                                     + "\n".join(lines[-40:]) + rest.decode(errors="replace"))
            *new, rest = (rest + chunk).split(b"\n")
            lines += [line.decode(errors="replace") for line in new]
    return lines


def session_pids(sid: int) -> list[int]:
    """The processes of session `sid` (a child started with start_new_session=True and what it
    started), read from /proc (Linux)."""
    pids = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()  # after "pid (comm)"
        except (OSError, IndexError):
            continue  # gone meanwhile
        if int(fields[3]) == sid:  # state, ppid, pgrp, session
            pids.append(int(stat.parent.name))
    return pids


def wait_for_exit(pids: list[int], timeout: float) -> list[int]:
    """Block until every process in `pids` has ended (pidfds: no polling); the ones still alive
    after `timeout` seconds."""
    alive: dict[int, int] = {}
    for pid in pids:
        try:
            alive[os.pidfd_open(pid)] = pid
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + timeout
    with selectors.DefaultSelector() as sel:
        for fd in alive:
            sel.register(fd, selectors.EVENT_READ)
        while alive:
            left = deadline - time.monotonic()
            ready = sel.select(left) if left > 0 else []
            if not ready:
                break
            for key, _ in ready:
                sel.unregister(key.fd)
                os.close(key.fd)
                alive.pop(key.fd)
    for fd in alive:
        os.close(fd)
    return sorted(alive.values())
