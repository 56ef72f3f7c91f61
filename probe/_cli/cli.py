"""The ``probe`` command line (also ``python -m probe``): layers, explain, show, compare, demo, corpus.

A user mistake prints one line on stderr naming the problem and the fix, and exits 2; a bug in probe
prints one line saying so and exits 1; ``--debug`` shows the traceback instead. Everything the command
line can check (settings, device, ranks, output paths, image types) is checked before the model is
loaded. Progress bars go to stderr (``--no-progress`` turns them off).

    probe layers MODEL [--text T]
    probe explain MODEL --layer NAME [--layer NAME ...] (--text T | --file F) [--corpus F] [--out FILE] [--plot PNG] [--html HTML] [--by-word]
    probe show FILE [--plot PNG] [--html HTML] [--by-word]
    probe compare A B [--html HTML] [--by-word]
    probe demo [--out DIR]
    probe corpus MODEL --layer NAME [--layer NAME ...] --file SENTENCES --out DIR [--corpus F]
    torchrun --nproc-per-node N -m probe corpus ...
"""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Sequence

from .._utils.memory import ADVICE, out_of_memory
from .._utils.text import one_line
from ..errors import ProbeError
from .commands import say
from .parser import _check_early, _parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the command line; returns the exit status (0 done, 1 a bug in probe, 2 a user mistake).

    >>> probe._cli.main(["layers", minilm_path])  # doctest: +ELLIPSIS
    (model)  BertModel
    ...
    0
    """
    args = _parser().parse_args(argv)
    name = f"probe {args.command}"
    try:
        with warnings.catch_warnings():
            warnings.showwarning = lambda message, *_, **__: say(f"probe {args.command}: warning: {message}", sys.stderr)
            _check_early(args)
            args.run(args)
    except BrokenPipeError:  # `probe show x | head`: the reader has all it wanted
        _quiet_stdout()
        say(f"{name}: stopped: the output was closed (broken pipe)", sys.stderr)
        return 141
    except (ProbeError, OSError) as err:
        if args.debug:
            raise
        say(f"{name}: error: {_message(err)}", sys.stderr)
        return 2
    except KeyboardInterrupt:
        say(f"probe {args.command}: interrupted", sys.stderr)
        return 130
    except Exception as err:  # not the user's mistake: say it is a bug, in one line, and how to report it
        if args.debug:
            raise
        if out_of_memory(err):
            say(f"{name}: error: out of memory ({type(err).__name__}: {one_line(str(err), 120)}); {ADVICE}", sys.stderr)
            return 2
        say(
            f"probe {args.command}: internal error (a bug in probe, not in your input): {type(err).__name__}: {_message(err)[:200]}; "
            "please report it with the output of the same command run with --debug",
            sys.stderr,
        )
        return 1
    return 0


def _quiet_stdout() -> None:
    """Points stdout at the null device, so Python's flush at exit does not fail on the closed pipe."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # stdout is no real file (a test's StringIO)
        pass


def _message(err: BaseException) -> str:
    if isinstance(err, OSError) and not isinstance(err, ProbeError):
        where = f" {err.filename!r}" if err.filename else ""
        return f"{err.strerror or err}:{where}; check the path and its permissions"
    return " ".join(str(err).split())
