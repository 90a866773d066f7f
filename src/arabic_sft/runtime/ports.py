"""A port on 127.0.0.1 for a local server (make serve, make chat): checked before anything loads."""

import socket

from arabic_sft.runtime.errors import UserError


def port_is_free(port: int) -> bool:
    """Whether nothing listens on 127.0.0.1:`port` (connections of a server just stopped, in TIME_WAIT, don't count:
    the servers bind with SO_REUSEADDR too)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def check_port(port: int) -> None:
    """One line, before any model loads, for a port out of range or in use."""
    if not 0 < port < 65536:
        raise UserError(f"--port {port}: give a port from 1 to 65535")
    if not port_is_free(port):
        raise UserError(f"port {port} is in use on 127.0.0.1: give another (PORT={port + 1})")
