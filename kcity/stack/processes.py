"""Running the local stack's server processes, as an unprivileged user when we are root.

PostgreSQL refuses to run as root, and Mosquitto drops to its own user: when the stack is
started by root, each server runs as the user its Debian package created, and owns its
data directory.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

from kcity.errors import StackError


def is_root() -> bool:
    return os.geteuid() == 0


def run_as(user: str | None, argv: Sequence[str], *, check: bool = True) -> str:
    """Run a command (as `user` when root) and return its output; fail with one line."""
    cmd = list(argv)
    if user and is_root():
        cmd = ["runuser", "-u", user, "--", *cmd]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise StackError(f"{argv[0]}: {exc}") from exc
    if check and done.returncode != 0:
        detail = (done.stderr or done.stdout).strip().splitlines()
        raise StackError(
            f"{Path(argv[0]).name} failed: {detail[-1] if detail else done.returncode}"
        )
    return done.stdout


def give_to(user: str, *paths: Path) -> None:
    """Make `paths` (recursively) belong to `user` when we are root."""
    if not is_root():
        return
    entry = pwd.getpwnam(user)
    for top in paths:
        for path in [top, *top.rglob("*")]:
            os.chown(path, entry.pw_uid, entry.pw_gid)


def make_traversable(path: Path) -> None:
    """Let a server running as another user reach `path` (tests live in private temp dirs)."""
    if not is_root():
        return
    for part in [path, *path.parents]:
        if str(part) in ("/", "/tmp"):
            break
        mode = part.stat().st_mode
        if mode & 0o011 != 0o011:
            part.chmod(mode | 0o011)


def port_open(host: str, port: int, timeout: float = 0.3) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_port(host: str, port: int, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(host, port):
            return
        time.sleep(0.1)
    raise StackError(f"{what} did not start listening on {host}:{port} within {timeout:.0f} s")


def require_free(host: str, port: int, what: str, setting: str) -> None:
    """Before starting a server: a port already taken means another program would answer
    in its place (another K-City stack's broker refused our logins as "Not authorized")."""
    if port_open(host, port):
        raise StackError(
            f"port {port} on {host}, which {what} needs, is in use by another program"
            f" (another K-City stack?): stop it, or set {setting} to a free port"
        )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def read_pid(pid_file: Path) -> int | None:
    """The pid in `pid_file` if that process is alive."""
    try:
        pid = int(pid_file.read_text().split()[0])
        os.kill(pid, 0)
    except (OSError, ValueError, IndexError):
        return None
    return pid


def stop_pid(pid_file: Path, timeout: float = 20.0, sig: int = signal.SIGTERM) -> bool:
    """Signal the process in `pid_file` and wait for it to end; True if one was running."""
    pid = read_pid(pid_file)
    if pid is None:
        pid_file.unlink(missing_ok=True)
        return False
    os.kill(pid, sig)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except OSError:
            break
        _reap(pid)
        time.sleep(0.05)
    else:
        os.kill(pid, signal.SIGKILL)
    pid_file.unlink(missing_ok=True)
    return True


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def spawn(
    argv: Sequence[str],
    *,
    log: Path,
    pid_file: Path,
    env: dict[str, str] | None = None,
    user: str | None = None,
) -> int:
    """Start a detached background process writing its output to `log`."""
    cmd = list(argv)
    if user and is_root():
        cmd = ["runuser", "-u", user, "--", *cmd]
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        proc = subprocess.Popen(
            cmd,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
    pid_file.write_text(str(proc.pid))
    return proc.pid


def require(binary: str) -> str:
    found = shutil.which(binary)
    if not found:
        raise StackError(f"{binary} is not installed: run scripts/bootstrap")
    return found
