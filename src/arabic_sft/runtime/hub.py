"""The Hugging Face Hub, asked once whether it can be reached: when it cannot, the process goes offline (cached
models still load) instead of retrying every download for about a minute."""

import functools
import os
import socket
import sys
from pathlib import Path
from urllib.parse import urlparse

import huggingface_hub.constants as hub_constants


def is_local(name: str) -> bool:
    """Whether `name` is a path on this machine rather than a Hub id: it exists, starts like a path, has more parts
    than a Hub id's `org/name`, or its first part is a directory here (`models/x`, `results/x/model`)."""
    path = Path(name)
    return (
        name.startswith((".", "/", "~"))
        or path.exists()
        or len(path.parts) > 2
        or (len(path.parts) == 2 and Path(path.parts[0]).is_dir())
    )


@functools.cache
def hub_is_reachable(timeout: float = 3.0) -> bool:
    """Whether a TCP connection to the Hub's endpoint opens within `timeout` seconds (once per process); when not,
    offline mode is switched on for this process and one line says so."""
    if hub_constants.is_offline_mode():
        return False
    if endpoint_answers(timeout):
        return True
    os.environ["HF_HUB_OFFLINE"] = "1"  # what `datasets` reads when it is imported later
    hub_constants.HF_HUB_OFFLINE = True  # what huggingface_hub and transformers read from now on
    if "datasets" in sys.modules:  # imported already: its own flag, or it retries each download
        sys.modules["datasets"].config.HF_HUB_OFFLINE = True
    host = urlparse(hub_constants.ENDPOINT).hostname
    print(f"note: {host} cannot be reached: offline, using locally cached models only", file=sys.stderr)
    return False


def endpoint_answers(timeout: float = 3.0) -> bool:
    """Whether a TCP connection to the Hub's endpoint (HF_ENDPOINT) opens within `timeout` seconds; changes nothing."""
    endpoint = urlparse(hub_constants.ENDPOINT)
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        socket.create_connection((endpoint.hostname, port), timeout=timeout).close()
        return True
    except OSError:
        return False
