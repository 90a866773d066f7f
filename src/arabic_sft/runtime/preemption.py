"""Stopping cleanly on SIGTERM, which Slurm (`--signal`), Kubernetes (its grace period) and most schedulers send some
time before they kill a job: the work done so far is saved where the same command picks it up again."""

import signal

import torch
from transformers import TrainerCallback


# 128 + SIGTERM: what a shell reports for a process ended by SIGTERM, so a scheduler sees an interruption.
EXIT_STOPPED = 128 + signal.SIGTERM


class StopRequest:
    """Installs a SIGTERM handler that records the request instead of ending the process at once."""

    def __init__(self):
        self.requested = False
        signal.signal(signal.SIGTERM, self._request)

    def _request(self, signum, frame):
        self.requested = True


class SaveAndStopOnSigterm(TrainerCallback):
    """On SIGTERM, training ends at the next step boundary with a complete checkpoint. Under a multi-process launch
    the request is shared at every step end (one tiny all-reduce), so that every rank stops at the same step and the
    checkpoint is the same for all."""

    def __init__(self, accelerator):
        self.accelerator = accelerator
        self.request = StopRequest()
        self.stopped_at: int | None = None

    def on_step_end(self, args, state, control, **kwargs):
        requested = torch.tensor(float(self.request.requested), device=self.accelerator.device)
        if self.accelerator.num_processes > 1:
            requested = self.accelerator.reduce(requested, reduction="sum")
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
