"""`python tests/crash_worker.py POINT ARGS...`: run `w2s ARGS` and SIGKILL this process at POINT, as an
out-of-memory kill, a pre-empted node or a power cut would (no Python cleanup runs):

    write:GLOB   just before the run writes a file or folder whose path matches GLOB
    backward:N   inside the N-th backward pass of any training loop
"""

import fnmatch
import os
import signal
import sys


def _die() -> None:
    sys.stdout.flush()
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


def main() -> int:
    point, args = sys.argv[1], sys.argv[2:]
    kind, _, arg = point.partition(":")
    if kind == "write":  # patched before anything imports the name from rundir
        from pipeline import rundir

        original = rundir.atomic_write

        def atomic_write(target, write):
            if fnmatch.fnmatch(str(target), arg):
                _die()
            return original(target, write)

        rundir.atomic_write = atomic_write
    elif kind == "backward":
        import accelerate

        calls, original = [0], accelerate.Accelerator.backward

        def backward(self, loss, **kw):
            calls[0] += 1
            if calls[0] >= int(arg):
                _die()
            return original(self, loss, **kw)

        accelerate.Accelerator.backward = backward
    else:
        raise SystemExit(f"unknown kill point {point!r}")
    from pipeline.cli import main as cli

    return cli(args)


if __name__ == "__main__":
    sys.exit(main())
