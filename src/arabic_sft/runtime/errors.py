"""How the scripts report bad input: one line on stderr and exit status 2, never a traceback; under a
multi-process launch, from the main process only (every process meets the same bad input)."""

import argparse
import atexit
import os
import sys
import threading
from collections.abc import Callable

from arabic_sft.runtime.stopping import EXIT_INTERRUPTED, Stopped


class UserError(Exception):
    """Input the user can fix (a file, a column, a recipe key); its message names what is wrong."""

    status = 2


class Unavailable(UserError):
    """A server the run depends on stopped answering (an endpoint failing request after request): one line, exit
    status 75 (sysexits' EX_TEMPFAIL: try again later — the same command continues where it stopped)."""

    status = 75


class LostContact(Exception):
    """Another process of a multi-process run died or stopped answering (a machine killed or frozen, a network cut):
    its message says so in one line, printed once per machine; the exit status is 75 (sysexits' EX_TEMPFAIL: try
    again — the same command resumes from the last complete checkpoint)."""

    status = 75


FRONT = "ARABIC_SFT_FRONT"  # the user's door: "make", "arabic-sft" (the console program), unset: a script


def as_given(flag: str, make: str, program: str | None = None) -> str:
    """A stage's option in the form that works from the user's door: `make`, `program` (else `flag`), or `flag`."""
    front = os.environ.get(FRONT)
    return make if front == "make" else (program or flag) if front == "arabic-sft" else flag


class ScriptParser(argparse.ArgumentParser):
    """The scripts' argument parser: a bad argument is one `UserError` line, not the usage block argparse prints."""

    def error(self, message: str):
        raise UserError(f"{message} (see {self.prog} --help)")


def run_cli(main: Callable[[], object]) -> None:
    """Run a script's entry point and exit with the status it returns (an int; anything else, such as the files a
    stage wrote: 0); a `UserError` becomes one line on stderr and exit status 2, `Stopped` its status, a Ctrl-C that
    the script does not handle itself one line and status 130; `LostContact` one line per machine (each machine's
    first process: the run's main process may be the one lost) and its status."""
    main_process = os.environ.get("RANK", "0") == "0"
    leave_group = True  # after work that every process finished or stopped at a step; not after an error
    try:
        status = main()
        status = status if isinstance(status, int) else 0
    except Stopped as stop:
        status = stop.status  # every process stops at the same step: they all get here
    except LostContact as error:
        if os.environ.get("LOCAL_RANK", "0") == "0":
            print(f"error: {error}", file=sys.stderr)
        status, leave_group = error.status, False
    except UserError as error:
        if main_process:
            print(f"error: {error}", file=sys.stderr)
        status, leave_group = error.status, False
    except KeyboardInterrupt:
        if main_process:
            print("stopped by Ctrl-C", file=sys.stderr)
        status, leave_group = EXIT_INTERRUPTED, False
    exit_process(status, leave_group=leave_group)


def exit_process(status: int, *, leave_group: bool = True) -> None:
    """Exit with `status`; in torch's process group (a process of a multi-process run), without the interpreter's
    teardown of its objects.

    A process in the group leaves it (`leave_group`: after work that every process finished or stopped at a step),
    waits for its threads, runs the exit handlers, flushes its output and ends with `os._exit`: in the interpreter's
    teardown, gloo's threads at times aborted the process ("terminate called without an active exception", exit -6)
    — at the end of two-process DeepSpeed runs on CPU, even after `destroy_process_group()` (other objects may still
    hold the group), and after a frozen machine's timeout, where the one line said and status 75 became -6; a
    4-process torchrun of 20 gloo collectives aborted so 7 times in 10. After an error (a lost process, bad input,
    Ctrl-C) the process does not leave the group: another process may still be waiting in a collective."""
    torch = sys.modules.get("torch")  # never imported for this: a process without torch has no group
    if torch is None or not torch.distributed.is_available() or not torch.distributed.is_initialized():
        sys.exit(status)
    if leave_group:
        torch.distributed.destroy_process_group()
    for thread in threading.enumerate():  # what a normal exit does first: wait for the threads that are not daemons
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()  # what a normal exit runs first (logging's flush, temporary folders' cleanup, ...)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
