"""``python -m probe``: the command line, as the ``probe`` script runs it."""

from ._cli import main

raise SystemExit(main())
