"""Stopping cleanly on SIGTERM, which Slurm (`--signal`), Kubernetes (its grace period) and most schedulers send some
time before they kill a job, and on a user's Ctrl-C (SIGINT): the work done so far is saved where the same command
picks it up again. A second Ctrl-C stops at once."""

import os
import re
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import torch
from transformers import TrainerCallback

from arabic_sft.runtime.errors import Stopped


# 128 + the signal: what a shell reports for a process ended by it, so a scheduler sees an interruption.
EXIT_STOPPED = 128 + signal.SIGTERM
EXIT_INTERRUPTED = 128 + signal.SIGINT


# gloo's words when another process is gone (its connection closed), and when it stopped answering: the operation
# waiting on it timed out, or another one did first and closed the connection ("Application timeout caused pair
# closure").
CONNECTION_CLOSED = (
    "Connection closed by peer", "Connection reset by peer", "Remote peer closed the connection", "Socket closed",
    "Broken pipe",
)  # fmt: skip
NO_ANSWER = ("Timed out waiting", "Application timeout caused pair closure")


def lost_contact(error: BaseException) -> str | None:
    """What a failed step says when another process of the run is gone or stopped answering (None for any other
    error): torch's distributed errors, and gloo's, which torch raises as plain RuntimeErrors — matched by their words
    (`CONNECTION_CLOSED`, `NO_ANSWER`: gloo's TCP pair errors, read from libtorch_cpu.so's strings, and the system's
    socket errors), gloo giving no type of its own."""
    words = (*CONNECTION_CLOSED, *NO_ANSWER, "NCCL")
    if not isinstance(error, torch.distributed.DistError) and not (
        isinstance(error, RuntimeError) and any(word in str(error) for word in words)
    ):
        return None
    first = re.sub(r"^\[[^\]]*\]\s*", "", (str(error).strip().splitlines() or [""])[0])  # gloo's "[file.cc:553] "
    return f"{type(error).__name__}: {first.split('. ')[0].rstrip('.')}"


def wait_for_lost_processes(seconds: float) -> None:
    """How long a process of a multi-process run waits for another that stopped answering (`ddp_timeout`):
    transformers passes it for GPUs and DeepSpeed but not when it sets up CPU processes (gloo would wait its default
    30 minutes), so it is set on the process group made; torch's one call for that is `_set_pg_timeout`."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.distributed_c10d._set_pg_timeout(timedelta(seconds=seconds))


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

    @property
    def exit_code(self) -> int:
        return 128 + (self.signal or signal.SIGTERM)

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


class SaveAndStopOnSigterm(TrainerCallback):
    """On SIGTERM or a first Ctrl-C, training ends at the next step boundary with a complete checkpoint. Under a
    multi-process launch the request is shared at every step end (one tiny all-reduce), so that every rank stops at
    the same step and the checkpoint is the same for all."""

    def __init__(self, accelerator):
        self.accelerator = accelerator
        self.request = StopRequest(
            "stopping at the end of this step with a checkpoint", say=accelerator.is_main_process
        )
        self.stopped_at: int | None = None

    def on_step_end(self, args, state, control, **kwargs):
        requested = torch.tensor([float(self.request.signal or 0)], device=self.accelerator.device)
        if self.accelerator.num_processes > 1:  # the signal any process received (on another machine, maybe)
            requested = self.accelerator.gather(requested).max()
            if self.request.signal is None and requested.item() > 0:
                self.request.signal = int(requested.item())  # this process stops for it too, and says which
        if requested.item() > 0:
            self.stopped_at = state.global_step
            control.should_save = True
            control.should_evaluate = False  # the grace period is for saving
            control.should_training_stop = True
        return control

    def on_epoch_end(self, args, state, control, **kwargs):
        if self.stopped_at is not None:  # the epoch was cut short: no end-of-epoch evaluation, no second save
            control.should_evaluate = control.should_save = False
        return control


def die_with_launcher() -> None:
    """In a process started by a launcher (`accelerate launch`: WORLD_SIZE set), be killed when the launcher dies
    (Linux `PR_SET_PDEATHSIG`), so that a SIGKILLed launch leaves no process behind still writing its outputs."""
    import ctypes
    import os
    import signal

    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return  # not Linux: the launcher's own cleanup is all there is
    if os.getppid() == 1:  # the launcher died before the call above
        os._exit(EXIT_STOPPED)
