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
    created = [folder for folder in (path.parent, *path.parent.parents) if not folder.exists()]
    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a+", encoding="utf-8")
    held = finished = False
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise UserError(f"{output}: in use by {holder}; wait for it to end, or stop it") from None
        held = True
        handle.seek(0)
        handle.truncate()
        handle.write(f"process {os.getpid()} on {socket.gethostname()} ({' '.join(sys.argv)})\n")
        handle.flush()
        yield
        finished = True
    finally:
        if held and not finished and not Path(output).exists():  # refused, or failed before writing: leave nothing
            remove_lock_and_folders(path, created)
        handle.close()  # releases the lock; after a run the file stays (another process may have it open)


def remove_lock_and_folders(lock: Path, folders: list[Path]) -> None:
    """Remove `lock`, then `folders` (innermost first) while they are empty. A process that opened the lock
    meanwhile (it fails at once, as the lock is held) finds it gone next time and creates it again."""
    lock.unlink(missing_ok=True)
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:  # not empty: something else was written there
            return
