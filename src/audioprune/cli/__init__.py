"""The `audioprune` command. One module per subcommand, each with `register(sub)` (its options)
and its handler; user errors (UserError) print one clear line and exit with status 2, never a
traceback."""

from __future__ import annotations

import argparse
import os
import sys

from audioprune import __version__
from audioprune.cli import (
    datasets,
    demo,
    distill,
    evaluate,
    export,
    import_cmd,
    models,
    predict,
    profile,
    prune,
    quantize,
    recipe,
    report,
    train,
)
from audioprune.errors import ArgumentError, UserError

COMMANDS = (train, evaluate, predict, prune, distill, quantize, datasets, models, demo, recipe,
            report, profile, export, import_cmd)

# Library argument names whose flag is spelled differently (the rest: `data_root` -> --data-root
# wherever the command has that flag; names without a flag stay as the library spells them).
ALIASES = {"num_workers": "workers", "criterion_options": "criterion_arg",
           "model_kwargs": "model_arg", "normalise": "global_norm", "budget": "target_budget"}


def flag_names(parser: argparse.ArgumentParser) -> dict[str, str]:
    """{library argument name: this command's flag}, read from the parser itself, so error
    messages name exactly the flags the command has."""
    flags: dict[str, str] = {}
    for action in parser._actions:
        longs = [o for o in action.option_strings if o.startswith("--")]
        if longs:
            flags.setdefault(action.dest, longs[0])
    for name, dest in ALIASES.items():
        if dest in flags:
            flags[name] = flags[dest]
    return flags


def _subparser(parser: argparse.ArgumentParser, command: str) -> argparse.ArgumentParser:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and command in action.choices:
            return action.choices[command]
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="audioprune", description="Train, prune, distill, measure and report audio "
        "classifiers (CNNs and quaternion CNNs). `audioprune demo` runs the main job.")
    parser.add_argument("--version", action="version", version=f"audioprune {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args.epochs_given = any(a == "--epochs" or a.startswith("--epochs=") for a in argv)
    try:
        status = args.func(args)
        sys.stdout.flush()  # inside the try: a reader that left shows up here, not at exit
        return status
    except (UserError, ArgumentError) as exc:
        message = exc.render(flag_names(_subparser(parser, args.command)))
        print(f"audioprune {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"audioprune {args.command}: interrupted; resume with --resume where supported",
              file=sys.stderr)
        return 130
    except BrokenPipeError:
        # `audioprune datasets | head`: the reader left. Point stdout at /dev/null so the
        # interpreter's final flush does not raise again, and exit as a SIGPIPE'd command does.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())
