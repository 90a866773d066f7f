#!/usr/bin/env python3
"""A real Slurm cluster on this one host, to run the sbatch scripts where there is no cluster (the tests do).

    python3 scripts/slurm/local_cluster.py start /tmp/slurm --nodes 2  # says: export SLURM_CONF=/tmp/slurm/slurm.conf
    SLURM_CONF=/tmp/slurm/slurm.conf sbatch --nodes=2 ... scripts/slurm/train_multinode.sbatch demo
    python3 scripts/slurm/local_cluster.py stop /tmp/slurm  # cancels its jobs, stops each daemon by its pid

It starts munged (a key of its own), slurmctld and one slurmd per node (Debian's slurm-wlm runs several slurmd on one
host with `slurmd -N NAME`; each node is named n0, n1, … with address 127.0.0.1 and this host's cores), with every
file — config, state, logs, sockets, pid files — in the folder given, on ports found free. Needs Debian's slurm-wlm
and munge (`make slurm` installs them) and root, as CI has. Standard library only: it runs before any setup.
"""

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path


DAEMONS = ("munged", "slurmctld", "slurmd", "sbatch", "scontrol", "sinfo", "scancel")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def config(folder: Path, nodes: int, cpus: int) -> str:
    names = [f"n{index}" for index in range(nodes)]
    node_lines = "\n".join(
        f"NodeName={name} NodeHostname=localhost NodeAddr=127.0.0.1 Port={free_port()} CPUs={cpus} State=UNKNOWN"
        for name in names
    )
    return f"""# Written by scripts/slurm/local_cluster.py: a cluster of {nodes} node(s) on this host (127.0.0.1).
ClusterName=local
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={free_port()}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
# cred_expire: how long a requeued job waits before it may start again (Slurm's default, 120 s, is for real
# clusters; starting sooner by hand fails with "Job credential revoked" while the nodes still hold the old one).
AuthInfo=socket={folder}/socket/munge.socket,cred_expire=15
StateSaveLocation={folder}/state
SlurmdSpoolDir={folder}/spool/%n
SlurmctldPidFile={folder}/slurmctld.pid
SlurmdPidFile={folder}/slurmd-%n.pid
SlurmctldLogFile={folder}/logs/slurmctld.log
SlurmdLogFile={folder}/logs/slurmd-%n.log
# No cgroups in a container: processes are tracked through /proc, tasks are not bound to cores.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
KillWait=10
# A pending job whose begin time has come (a requeued one) starts at the next scheduling pass: every 2 s, not 60.
SchedulerParameters=sched_interval=2
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MailProg=/bin/true
{node_lines}
PartitionName=local Nodes={",".join(names)} Default=YES MaxTime=INFINITE State=UP
"""


def pid_files(folder: Path) -> list[Path]:
    """The daemons' pid files, the order they are stopped in: the nodes, the controller, munged."""
    return [*sorted(folder.glob("slurmd-*.pid")), folder / "slurmctld.pid", folder / "munge" / "munged.pid"]


def log_tails(folder: Path) -> str:
    return "\n".join(f"--- {log}\n{log.read_text(errors='replace')[-1500:]}" for log in sorted(folder.glob("logs/*")))


def start(folder: Path, nodes: int, cpus: int, timeout: float) -> None:
    missing = [name for name in DAEMONS if shutil.which(name) is None]
    if missing:
        sys.exit(f"error: {', '.join(missing)} not found: install Debian's slurm-wlm and munge (make slurm)")
    if os.geteuid() != 0:
        sys.exit("error: the local cluster's daemons run as root (as CI does): run this as root")
    if any(path.exists() for path in pid_files(folder)):
        sys.exit(f"error: {folder} holds a cluster's pid files: stop it first (local_cluster.py stop {folder})")
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o755)  # munged wants every folder above its socket searchable by all
    for name in ("state", "logs", "socket", "munge", *(f"spool/n{index}" for index in range(nodes))):
        (folder / name).mkdir(parents=True, exist_ok=True)
    (folder / "socket").chmod(0o755)
    (folder / "munge").chmod(0o700)
    key = folder / "munge" / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o600)
    conf = folder / "slurm.conf"
    conf.write_text(config(folder.resolve(), nodes, cpus), encoding="utf-8")
    environment = {**os.environ, "SLURM_CONF": str(conf)}

    def run(*command: str) -> None:
        result = subprocess.run(command, env=environment, capture_output=True, text=True)
        if result.returncode != 0:
            sys.exit(f"error: {' '.join(command[:1])} failed: {(result.stderr or result.stdout).strip()}")

    run("munged", f"--key-file={key}", f"--socket={folder}/socket/munge.socket",
        f"--pid-file={folder}/munge/munged.pid", f"--log-file={folder}/logs/munged.log",
        f"--seed-file={folder}/munge/munged.seed")  # fmt: skip
    run("slurmctld", "-f", str(conf))
    for index in range(nodes):
        run("slurmd", "-f", str(conf), "-N", f"n{index}")
    deadline = time.monotonic() + timeout
    states: list[str] = []
    while time.monotonic() < deadline:
        listed = subprocess.run(["sinfo", "-h", "-N", "-o", "%N %T"], env=environment, capture_output=True, text=True)
        states = listed.stdout.split()[1::2]
        if len(states) == nodes and all(state == "idle" for state in states):
            print(f"a Slurm cluster of {nodes} node(s) is up; for sbatch, squeue, scancel:")
            print(f"export SLURM_CONF={conf}")
            return
        time.sleep(0.5)
    stop(folder)
    sys.exit(f"error: the nodes were not idle within {timeout:.0f} s (states {states}); logs:\n{log_tails(folder)}")


def stop(folder: Path, timeout: float = 30) -> None:
    """Cancel the cluster's jobs (their steps end within KillWait), then SIGTERM each daemon by the pid it wrote."""
    conf = folder / "slurm.conf"
    if conf.exists() and (folder / "slurmctld.pid").exists():
        environment = {**os.environ, "SLURM_CONF": str(conf)}
        subprocess.run(["scancel", "--full", "--user", "root"], env=environment, capture_output=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            queue = subprocess.run(["squeue", "-h"], env=environment, capture_output=True, text=True)
            if queue.returncode != 0 or not queue.stdout.strip():
                break
            time.sleep(0.5)
    stopped = []
    for path in pid_files(folder):
        if not path.exists():
            continue
        pid = int(path.read_text().split()[0])
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            path.unlink(missing_ok=True)
            continue
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and alive(pid):
            time.sleep(0.1)
        if alive(pid):
            os.kill(pid, signal.SIGKILL)
        path.unlink(missing_ok=True)
        stopped.append(f"{path.stem} ({pid})")
    print(f"stopped {', '.join(stopped) or 'nothing: no daemon was running'}")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    state = Path(f"/proc/{pid}/stat")  # a zombie has exited
    return not (state.exists() and state.read_text().split(")")[-1].split()[0] == "Z")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n\n", 1)[1],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("action", choices=["start", "stop"])
    parser.add_argument("folder", type=Path, help="where the cluster keeps every file (created)")
    parser.add_argument("--nodes", type=int, default=2, help="slurmd daemons, one node each (default 2)")
    parser.add_argument(
        "--cpus", type=int, default=os.cpu_count(), help="CPUs each node offers (default: this host's)"
    )
    parser.add_argument("--timeout", type=float, default=60, help="seconds to wait for the nodes (default 60)")
    args = parser.parse_args()
    if args.action == "start":
        start(args.folder.resolve(), args.nodes, args.cpus, args.timeout)
    else:
        stop(args.folder.resolve())


if __name__ == "__main__":
    main()
