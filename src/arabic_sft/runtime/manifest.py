"""Provenance written beside a run's outputs: resolved config, package versions, git commit, data hashes, device."""

import hashlib
import json
import os
import platform
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, is_dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path


PACKAGES = (
    "torch", "transformers", "trl", "peft", "accelerate", "datasets", "bitsandbytes", "deepspeed", "tokenizers",
    "nltk", "rouge-score", "bert-score", "sentence-transformers", "pyarabic",
)  # fmt: skip


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def package_versions() -> dict[str, str | None]:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain"], capture_output=True, text=True, timeout=10).stdout
        return out.stdout.strip() + ("+dirty" if dirty.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def device_description() -> str:
    import torch  # here, not at the top: the stages' worker processes import this module and need no torch

    if torch.cuda.is_available():
        return f"{torch.cuda.device_count()} x {torch.cuda.get_device_name(0)}"
    return f"cpu ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def _plain(config) -> dict | None:
    if config is None:
        return None
    if hasattr(config, "to_dict"):  # TrainingArguments: hides hub_token
        return config.to_dict()
    return asdict(config) if is_dataclass(config) else dict(config)


def permissions_of_new(mode: int) -> int:
    """The permissions the user's umask gives a new file (0o666) or directory (0o777), as `open` and `mkdir` do."""
    umask = os.umask(0)
    os.umask(umask)
    return mode & ~umask


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside `path` to write to; renamed onto `path` only when the block ends without error, so
    a crash never leaves a half-written result."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        yield Path(temporary)
        os.chmod(temporary, permissions_of_new(0o666))  # mkstemp's 0600 would hide results from colleagues
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def write_json_atomic(path: str | Path, payload) -> None:
    with atomic_path(path) as temporary:
        temporary.write_text(json.dumps(payload, ensure_ascii=False, indent=2, default=str), encoding="utf-8")


def read_json(path: str | Path) -> dict | list | None:
    """A JSON file's content, or None when it is missing or not JSON (a run that has not written it yet)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def changed_files(manifest: dict, paths) -> list[str]:
    """Those of `paths` that a run's manifest records and whose sha256 now differs from the recorded one."""
    recorded = (manifest or {}).get("data_sha256", {})
    return [
        path for path in paths if path and path in recorded and Path(path).is_file() and sha256(path) != recorded[path]
    ]


def build_manifest(configs: dict, data_files: list[str | None], started: str) -> dict:
    """What produced a run: every resolved config section, versions, commit, data sha256, device, start/end."""
    return {
        "config": {name: _plain(config) for name, config in configs.items()},
        "versions": package_versions(),
        "python": platform.python_version(),
        "git_commit": git_commit(),
        "data_sha256": {str(path): sha256(path) for path in data_files if path and Path(path).is_file()},
        "device": device_description(),
        "started": started,
        "finished": now(),
    }
