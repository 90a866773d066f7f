"""Stopping cleanly on SIGTERM, which Slurm (`--signal`), Kubernetes (its grace period) and most schedulers send some
time before they kill a job, and on a user's Ctrl-C (SIGINT): the work done so far is saved where the same command
picks it up again. A second Ctrl-C stops at once."""

import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager


def status_of(signum: int) -> int:
    """128 + the signal: what a shell reports for a process ended by it, so a scheduler sees an interruption."""
    return 128 + signum


EXIT_STOPPED = status_of(signal.SIGTERM)
EXIT_INTERRUPTED = status_of(signal.SIGINT)


class Stopped(Exception):
    """SIGTERM or Ctrl-C stopped the work; what was done is saved where the same command picks it up. Its exit
    status is `status_of` the signal (a scheduler sees an interruption)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum

    @property
    def status(self) -> int:
        return status_of(self.signum)


def stopped_by(signum: int) -> str:
    return "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name


@contextmanager
def stop_raises() -> Iterator[None]:
    """SIGTERM and Ctrl-C raise `Stopped` in the block: for work run by a library that cannot be asked to stop at a
    safe point but saves as it goes (lm-eval's answer cache); the previous handlers are put back after."""

    def _raise(signum, frame):
        raise Stopped(signum)

    previous = {signum: signal.signal(signum, _raise) for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


class StopRequest:
    """Handlers of SIGTERM and SIGINT that record a request to stop at the next safe point (`stopping` says which)
    instead of ending the process at once; a second Ctrl-C ends it at once, in one line. `close()` puts the
    previous handlers back."""

    def __init__(self, stopping: str, say: bool = True):
        self.signal: int | None = None
        self.stopping, self.say = stopping, say
        self.previous = {signum: signal.signal(signum, self._request) for signum in (signal.SIGTERM, signal.SIGINT)}

    @property
    def requested(self) -> bool:
        return self.signal is not None

    def close(self) -> None:
        for signum, handler in self.previous.items():
            signal.signal(signum, handler)

    def _request(self, signum, frame):
        if self.signal == signal.SIGINT and signum == signal.SIGINT:
            if self.say:
                print("stopped at once by a second Ctrl-C; nothing more was saved", file=sys.stderr, flush=True)
            os._exit(EXIT_INTERRUPTED)
        if self.signal is None:
            self.signal = signum
            if signum == signal.SIGINT and self.say:
                print(f"Ctrl-C: {self.stopping} (Ctrl-C again stops at once)", file=sys.stderr, flush=True)


def die_with_launcher() -> None:
    """In a process started by a launcher (`accelerate launch`: WORLD_SIZE set), be killed when the launcher dies
    (Linux `PR_SET_PDEATHSIG`), so that a SIGKILLed launch leaves no process behind still writing its outputs."""
    import ctypes

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return  # not Linux: the launcher's own cleanup is all there is
    if os.getppid() == 1:  # the launcher died before the call above
        os._exit(EXIT_STOPPED)
