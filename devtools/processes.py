"""Child processes of the development servers (the iRODS test server, the OIDC provider):
read the line a server prints once it listens, and stop it."""

from __future__ import annotations

import subprocess
import threading


def first_line(proc: subprocess.Popen[str], timeout: float) -> str:
    """The first line ``proc`` writes to its stdout pipe, or "" if none comes in
    ``timeout`` seconds (or the process exits first)."""
    stdout = proc.stdout
    if stdout is None:
        raise ValueError("the process was started without stdout=PIPE")
    box: list[str] = []
    reader = threading.Thread(target=lambda: box.append(stdout.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    return box[0] if box else ""


def stop(proc: subprocess.Popen[str], grace: float = 10.0) -> None:
    """SIGTERM, SIGKILL after ``grace`` seconds, reap it, close its stdout pipe."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()
