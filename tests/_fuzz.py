"""What the property-based tests share: strategies of wrong values, and a tally of the attempts.

Every attempt goes through ``refused`` (Python) or ``one_line_exit_2`` (command line). An attempt
*escapes* when anything but a ProbeError comes out (or nothing does: a wrong value accepted), or when
the command line does not end in exit 2 with one line on stderr. With ``PROBE_FUZZ_COUNT=FILE`` the
escapes are counted instead of failing the test, and the totals are written to FILE at exit: that is
how the issue's before/after numbers are measured.
"""

from __future__ import annotations

import atexit
import contextlib
import io
import json
import math
import os
from collections import Counter

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from probe import ProbeError

COUNT_FILE = os.environ.get("PROBE_FUZZ_COUNT")
TALLY: Counter = Counter()
KINDS: Counter = Counter()

FUZZ = settings(max_examples=25, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
"""Few, fixed examples per test: the suite stays fast and a before/after comparison sees the same ones."""


def _escaped(where: str, what: str) -> None:
    TALLY["escaped"] += 1
    KINDS[f"{where}: {what[:90]}"] += 1
    if not COUNT_FILE:
        raise AssertionError(f"{where}: {what}")


def refused(where: str, call) -> None:
    """``call()`` must raise a ProbeError."""
    TALLY["tried"] += 1
    try:
        call()
    except ProbeError:
        return
    except Exception as err:  # noqa: BLE001 - what escapes is what is measured
        _escaped(where, f"{type(err).__name__}: {' '.join(str(err).split())}")
    else:
        _escaped(where, "accepted")


def held(where: str, check) -> None:
    """``check()`` (a function of asserts) must pass: what a user must get, counted like a refusal."""
    TALLY["tried"] += 1
    try:
        check()
    except (Exception, pytest.fail.Exception) as err:  # noqa: BLE001 - what escapes is what is measured (pytest.raises fails with a BaseException)
        _escaped(where, f"{type(err).__name__}: {' '.join(str(err).split())}")


def one_line_exit_2(where: str, main, argv: list[str]) -> None:
    """``main(argv)`` must exit 2 with one line on stderr, no traceback."""
    TALLY["tried"] += 1
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                code = main(argv)
            except SystemExit as exit_:
                code = exit_.code
    except Exception as error:  # noqa: BLE001
        _escaped(where, f"{type(error).__name__} out of main: {' '.join(str(error).split())}")
        return
    lines = err.getvalue().strip().splitlines()
    if code != 2 or len(lines) != 1 or "Traceback" in err.getvalue():
        _escaped(where, f"exit {code}, stderr {err.getvalue()[-300:]!r}")


@atexit.register
def _write_tally() -> None:
    if COUNT_FILE and TALLY:
        with open(COUNT_FILE, "w") as f:
            json.dump({"tried": TALLY["tried"], "escaped": TALLY["escaped"], "kinds": dict(KINDS.most_common())}, f, indent=1)


# --- wrong values --------------------------------------------------------------------------
junk = st.one_of(st.none(), st.text(max_size=4), st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=2), st.integers(), max_size=1), st.just(object()))
"""Values of no sensible type for any argument."""

non_positive = st.one_of(st.floats(max_value=0.0), st.integers(max_value=0), st.just(math.nan), st.just(math.inf), st.just(-math.inf))
bad_positive = st.one_of(non_positive, junk, st.booleans(), st.just(torch.tensor([1.0, 2.0])), st.just(np.array([0.5, 0.5])), st.just(torch.tensor(-1.0)), st.just(1j))
"""Wrong scale or rate: not a positive finite real number."""

bad_seed = st.one_of(st.text(max_size=3), st.booleans(), st.floats(), junk.filter(lambda v: v is not None))


def bad_whole(least: int):
    return st.one_of(st.integers(max_value=least - 1), st.floats(allow_nan=True), st.booleans(), junk)


def bad_real(above: float):
    return st.one_of(st.floats(max_value=above), st.just(math.nan), st.just(math.inf), junk, st.booleans())


bad_setting = st.one_of(
    bad_whole(1).map(lambda v: ("samples", v)),
    bad_whole(0).map(lambda v: ("max_steps", v)),
    bad_whole(0).map(lambda v: ("min_steps", v)),
    bad_whole(1).map(lambda v: ("probes", v)),
    bad_whole(1).map(lambda v: ("memory", v)),
    bad_real(0.0).map(lambda v: ("tol", v)),
    bad_real(0.0).map(lambda v: ("probe_step", v)),
    bad_real(1.0).map(lambda v: ("max_move", v)),
    st.sampled_from(["sample", "steps", "lr", "Samples"]).map(lambda v: (v, 1)),
)
"""One solver setting out of its range (or an unknown setting name), as (name, value)."""

bad_words = st.one_of(st.integers(), st.text(max_size=5), st.lists(st.integers(), min_size=1, max_size=3), st.lists(st.text(max_size=3), min_size=6, max_size=8), st.just([None] * 5))
"""Words that are not one string per token (for 5 tokens)."""

bad_regularization = st.one_of(
    st.text(max_size=3),
    st.just(torch.full((3,), math.nan)),
    st.just(-torch.ones(1)),
    st.just(torch.ones(7)),
    st.just(torch.ones(2, 3, 4, 5)),
    st.just(torch.zeros(1)),
    st.just({"a": 1}),
    st.just([["x"]]),
    st.just(object()),
)
"""Regularizations of the wrong type, shape or values."""
