"""The run lock: one `w2s run` per run directory at a time.

The main process creates `<run>/.w2s-lock` with O_EXCL, holding its pid, host, start time and command;
a second run on the same directory finds it and refuses (exit 2, naming that process). A lock whose
process is gone (same host, pid not alive: a killed run) is stale and taken over, as is an empty or
unreadable one (a run killed between creating and writing it). Looking, taking over and creating happen
under an flock on the run directory itself, so two runs starting together cannot both decide a lock is
stale, nor read one that is being written (where flock is missing, as on Windows, without it). Every
rank learns the main process's verdict (`share`), so an accelerate launch refuses on all ranks together.
"""

import json
import os
import socket
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable

from pipeline.errors import UserError

NAME = ".w2s-lock"


def _alive(pid: int) -> bool:
    if pid <= 0:  # os.kill(0 or -1, 0) signals a whole group / every process: never a lock's holder
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _holder(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _pid(holder: dict) -> int:
    try:
        return int(holder.get("pid", -1))
    except (TypeError, ValueError):
        return -1


@contextmanager
def _guard(run_dir: Path):
    """An exclusive flock on the run directory for the block (released when its descriptor closes)."""
    try:
        import fcntl

        fd = os.open(run_dir, os.O_RDONLY)
    except (ImportError, OSError):
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:  # a file system without flock: the O_EXCL create alone
            pass
        yield
    finally:
        os.close(fd)


def acquire(run_dir: Path) -> tuple[str, str]:
    """Take the lock of `run_dir` (created if missing): ("", note) when taken (the note says when a stale
    lock was taken over), else (why not, "")."""
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError:  # not creatable: no run can use it either, and preflight names the problem
        return "", ""
    path = run_dir / NAME
    me = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S"),
          "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])}
    with _guard(run_dir):
        return _take(run_dir, path, me)


def _take(run_dir: Path, path: Path, me: dict) -> tuple[str, str]:
    note = ""
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            other = _holder(path)
            if not isinstance(other, dict):  # empty or not JSON, and no writer holds the guard: debris of a kill
                note = "took over an unreadable lock (left by a run killed while taking it)"
                path.unlink(missing_ok=True)
                continue
            if other.get("host") == me["host"] and not _alive(_pid(other)):
                note = f"took over the stale lock of process {other.get('pid')} (no longer running)"
                path.unlink(missing_ok=True)
                continue
            where = "" if other.get("host") == me["host"] else f" on host {other.get('host')}"
            return (f"{run_dir} is in use by another run: process {other.get('pid')}{where}, started "
                    f"{other.get('started')} ({other.get('command')})"), ""
        except OSError:  # a folder we cannot write: preflight names the problem
            return "", ""
        with os.fdopen(fd, "w") as f:
            json.dump(me, f)
        return "", note
    return f"could not take the lock {path}", ""


def release(run_dir: Path) -> None:
    """Remove the lock if this process holds it."""
    path = run_dir / NAME
    held = _holder(path)
    if held and held.get("pid") == os.getpid() and held.get("host") == socket.gethostname():
        path.unlink(missing_ok=True)


@contextmanager
def run_lock(run_dir: Path, is_main: bool, share: Callable[[str], str] = lambda msg: msg, log=print):
    """Hold the lock of `run_dir` for the block (main process; `share` gives every rank its verdict). Folders
    this created that hold nothing when the block ends (a recipe refused by preflight) are removed again."""
    run_dir = Path(run_dir)
    new = []  # folders the lock will create (the run directory and missing parents), deepest first
    d = run_dir.absolute()
    while not d.exists() and d != d.parent:
        new.append(d)
        d = d.parent
    why, note = acquire(run_dir) if is_main else ("", "")
    why = share(why)
    if why:
        raise UserError(why, "wait for it to finish, or stop it; a lock left by a run on another machine "
                             f"that is no longer running can be deleted: {run_dir / NAME}")
    if note:
        log(f"[lock] {note}")
    try:
        yield
    finally:
        if is_main:
            release(run_dir)
            for d in new:  # a refused recipe leaves no empty folders behind
                if not d.is_dir() or any(d.iterdir()):
                    break
                d.rmdir()
