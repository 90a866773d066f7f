"""How the scripts report bad input: one line on stderr and exit status 2, never a traceback; under a
multi-process launch, from the main process only (every process meets the same bad input)."""

import os
import sys
from collections.abc import Callable


class UserError(Exception):
    """Input the user can fix (a file, a column, a recipe key); its message names what is wrong."""


def run_cli(main: Callable[[], int | None]) -> None:
    """Run a script's entry point and exit with the status it returns (None: 0); a `UserError` becomes one line on
    stderr and exit status 2."""
    try:
        status = main()
    except UserError as error:
        if os.environ.get("RANK", "0") == "0":
            print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    sys.exit(status or 0)
