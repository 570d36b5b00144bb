"""`audioprune models`: list the registered models."""

from __future__ import annotations

import argparse
from typing import Any


def register(sub: Any) -> None:
    p = sub.add_parser("models", help="list the registered models")
    p.set_defaults(func=cmd_models)


def cmd_models(args: argparse.Namespace) -> int:
    from audioprune.models.registry import list_models

    for name, desc in list_models().items():
        print(f"{name:14s} {desc}")
    return 0
