"""The rows a generation has finished, saved as their batches finish: one JSON Lines file per process
(`OUT.partial.jsonl` for the first, `OUT.partial.rankR.jsonl` for the others), each opening with the run's resume key
(the settings the rows and their text depend on).
A rerun reads every file, whatever number of processes wrote them, and generates only the missing rows."""

import json
import os
from pathlib import Path

from arabic_sft.runtime.errors import UserError


def partial_path(out: Path, rank: int = 0) -> Path:
    return out.with_name(out.name + (".partial.jsonl" if rank == 0 else f".partial.rank{rank}.jsonl"))


def partial_paths(out: Path) -> list[Path]:
    return sorted(out.parent.glob(out.name + ".partial*.jsonl"))


def read_done(out: Path, resume_key: dict | None = None) -> dict[int, str]:
    """Rows already generated, from every process's file. A torn line (a process killed mid-write) is skipped; a file
    written under another resume key is refused, naming what differs (unless `resume_key` is None: counting only)."""
    done = {}
    for path in partial_paths(out):
        lines = path.read_text(encoding="utf-8").splitlines()
        for number, line in enumerate(lines):
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if number == 0 and isinstance(row, dict) and "resume_key" in row:
                saved = row["resume_key"]
                if resume_key is not None and saved != resume_key:
                    differ = sorted(name for name in {*saved, *resume_key} if saved.get(name) != resume_key.get(name))
                    raise UserError(
                        f"{path}: a partial run with other settings ({', '.join(differ)}); delete it or pass "
                        "--overwrite"
                    )
                continue
            if isinstance(row, dict) and "index" in row:
                done[row["index"]] = row["text"]
    return done


def remove_partial(out: Path) -> None:
    for path in partial_paths(out):
        path.unlink()


class PartialWriter:
    """Appends one process's finished batches to its own file, each batch flushed and fsynced before the next."""

    def __init__(self, out: Path, rank: int, resume_key: dict):
        self.path = partial_path(out, rank)
        fresh = not self.path.is_file() or self.path.stat().st_size == 0
        torn = not fresh and not self.path.read_bytes().endswith(b"\n")
        self.handle = open(self.path, "a", encoding="utf-8")
        if torn:  # a process killed mid-line: end that line so the next one parses
            self.handle.write("\n")
        if fresh:
            self.handle.write(json.dumps({"resume_key": resume_key}, ensure_ascii=False) + "\n")
        self.handle.flush()

    def write(self, batch: list[tuple[int, str]]) -> None:
        self.handle.write("".join(json.dumps({"index": i, "text": t}, ensure_ascii=False) + "\n" for i, t in batch))
        self.handle.flush()
        os.fsync(self.handle.fileno())

    def close(self) -> None:
        self.handle.close()
