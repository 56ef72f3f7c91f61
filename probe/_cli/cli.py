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

import sys
import warnings
from collections.abc import Sequence

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
    try:
        with warnings.catch_warnings():
            warnings.showwarning = lambda message, *_, **__: say(f"probe {args.command}: warning: {message}", sys.stderr)
            _check_early(args)
            args.run(args)
    except (ProbeError, OSError) as err:
        if args.debug:
            raise
        say(f"probe {args.command}: error: {_message(err)}", sys.stderr)
        return 2
    except KeyboardInterrupt:
        say(f"probe {args.command}: interrupted", sys.stderr)
        return 130
    except Exception as err:  # not the user's mistake: say it is a bug, in one line, and how to report it
        if args.debug:
            raise
        say(
            f"probe {args.command}: internal error (a bug in probe, not in your input): {type(err).__name__}: {_message(err)[:200]}; "
            "please report it with the output of the same command run with --debug",
            sys.stderr,
        )
        return 1
    return 0


def _message(err: BaseException) -> str:
    if isinstance(err, OSError) and not isinstance(err, ProbeError):
        where = f" {err.filename!r}" if err.filename else ""
        return f"{err.strerror or err}:{where}; check the path and its permissions"
    return " ".join(str(err).split())
