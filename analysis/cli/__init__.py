"""The `periodize` command line: one sub-command per stage, no logic of its own.

Bad input ends in one line on stderr naming the file and the problem, and exit code 2; no
traceback and no partial output file.

One module per sub-command (`data`, `model`, `cohort`, `train`, `plan`, `recommend`, `tune`,
`daily`, `evaluate`), each with its `register(sub)`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from analysis.cli import cohort, daily, data, evaluate, model, plan, recommend, train, tune
from physiology_model.errors import DataError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="periodize", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for command in (data, model, cohort, train, plan, recommend, tune, daily, evaluate):
        command.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)  # recorded with outputs
    try:
        if getattr(args, "out", None) is not None:
            from analysis.output_paths import check_output_path

            makes_dir = (args.command in ("train", "evaluate")
                         or getattr(args, "model_command", None) == "fit")
            check_output_path(args.out, "dir" if makes_dir else "file")
        return int(args.func(args) or 0)
    except DataError as exc:
        print(f"periodize: error: {exc}", file=sys.stderr)
        return 2
    except ValueError as exc:
        # the library's functions raise ValueError for an argument they cannot use (steps < 1,
        # a policy without what it needs, ...): one line, unless the traceback is asked for
        if os.environ.get("PERIODIZE_TRACEBACK"):
            raise
        print(f"periodize: error: {exc} (PERIODIZE_TRACEBACK=1 shows where)", file=sys.stderr)
        return 2
    except BrokenPipeError:  # output piped into `head` and closed early: not an error
        sys.stderr.close()
        return 0
    except (OSError, MemoryError) as exc:
        # a file that cannot be written or read in the middle of a command (disk full, a
        # permission changed, out of memory): one line naming the path, no traceback
        if os.environ.get("PERIODIZE_TRACEBACK"):
            raise
        where = getattr(exc, "filename", None)
        what = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        print(f"periodize: error: {f'{where}: ' if where else ''}{what}", file=sys.stderr)
        return 2
