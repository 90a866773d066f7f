"""One writer per output: an OS-level lock held for a whole run, so that a second run on the same output stops at
once instead of interleaving its writes with the first's.

The lock is `fcntl.flock` on a small file beside the output (`.NAME.lock`), which also says who holds it. The kernel
releases it when the process ends, however it ends: a killed run never leaves a stale lock, and the file it leaves
is simply taken over by the next run.
"""

import fcntl
import os
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from arabic_sft.runtime.errors import UserError


def lock_path(output: str | Path) -> Path:
    output = Path(output)
    return output.parent / f".{output.name}.lock"


@contextmanager
def exclusive_output(output: str | Path, enabled: bool = True) -> Iterator[None]:
    """Hold the lock of `output` (a file or a directory, existing or not) for the block; a `UserError` naming the
    holder when another process holds it. `enabled=False` (the other processes of a launch) takes no lock."""
    if not enabled:
        yield
        return
    path = lock_path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+", encoding="utf-8")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise UserError(f"{output}: in use by {holder}; wait for it to end, or stop it") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()} on {socket.gethostname()} ({' '.join(sys.argv)})\n")
        handle.flush()
        yield
    finally:
        handle.close()  # releases the lock; the file stays (removing it would race with a process waiting on it)
