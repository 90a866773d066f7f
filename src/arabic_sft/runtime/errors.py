"""How the scripts report bad input: one line on stderr and exit status 2, never a traceback; under a
multi-process launch, from the main process only (every process meets the same bad input)."""

import argparse
import os
import sys
from collections.abc import Callable


class UserError(Exception):
    """Input the user can fix (a file, a column, a recipe key); its message names what is wrong."""


class ScriptParser(argparse.ArgumentParser):
    """The scripts' argument parser: a bad argument is one `UserError` line, not the usage block argparse prints."""

    def error(self, message: str):
        raise UserError(f"{message} (see {self.prog} --help)")


def run_cli(main: Callable[[], int | None]) -> None:
    """Run a script's entry point and exit with the status it returns (None: 0); a `UserError` becomes one line on
    stderr and exit status 2, a Ctrl-C that the script does not handle itself one line and status 130."""
    main_process = os.environ.get("RANK", "0") == "0"
    try:
        status = main()
    except UserError as error:
        if main_process:
            print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        if main_process:
            print("stopped by Ctrl-C", file=sys.stderr)
        sys.exit(130)
    sys.exit(status or 0)
