"""The run lock: a second run on a directory in use refuses with exit 2 naming the other process; a lock
left by a killed run is taken over; the lock goes away when a run ends, also when it fails."""

import json
import os
import socket
import subprocess
import sys

import yaml

from pipeline.cli import main
from pipeline.lock import NAME, acquire, release


def _run_dir(recipe):
    cfg = yaml.safe_load(recipe.read_text())
    return os.path.join(cfg["output_dir"], cfg["name"])


def _lock(run_dir, pid, host=None):
    os.makedirs(run_dir, exist_ok=True)
    with open(os.path.join(run_dir, NAME), "w") as f:
        json.dump({"pid": pid, "host": host or socket.gethostname(), "started": "2026-12-03 10:00:00",
                   "command": "w2s run recipes/quickstart.yaml"}, f)


def test_a_run_in_use_refuses_and_a_stale_lock_is_taken_over(tiny_recipe, capsys):
    run_dir = _run_dir(tiny_recipe)
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        _lock(run_dir, other.pid)
        assert main(["run", str(tiny_recipe), "--no-progress", "theory.enabled=false"]) == 2
        err = capsys.readouterr().err
        assert f"is in use by another run: process {other.pid}" in err and "Traceback" not in err
        assert sorted(os.listdir(run_dir)) == [NAME]  # nothing written beside the other run's lock
    finally:
        other.kill()
        other.wait()
    # the process is gone: its lock is stale, taken over, and removed when this run ends
    assert main(["run", str(tiny_recipe), "--no-progress", "theory.enabled=false"]) == 0
    out = capsys.readouterr().out
    assert f"took over the stale lock of process {other.pid}" in out
    assert os.path.exists(os.path.join(run_dir, "results.json")) and not os.path.exists(os.path.join(run_dir, NAME))


def test_a_lock_from_another_host_refuses_and_a_failed_run_leaves_no_lock(tiny_recipe, tmp_path, capsys):
    run_dir = _run_dir(tiny_recipe)
    _lock(run_dir, 1, host="gpu-node-7")
    assert main(["run", str(tiny_recipe), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "on host gpu-node-7" in err and NAME in err  # the hint says which file to delete
    os.remove(os.path.join(run_dir, NAME))
    os.rmdir(run_dir)
    assert main(["run", str(tiny_recipe), "--no-progress", "data.text_field=body"]) == 2  # preflight fails
    assert not os.path.exists(run_dir)  # no lock, no empty folder left behind
    assert acquire(tmp_path / "r") == ("", "")
    assert f"process {os.getpid()}" in acquire(tmp_path / "r")[0]  # held by a live process (this one)
    release(tmp_path / "r")
    assert not (tmp_path / "r" / NAME).exists()


def test_a_run_directory_of_other_data_is_not_overwritten_without_force(tiny_recipe, capsys):
    run_dir = _run_dir(tiny_recipe)
    assert main(["run", str(tiny_recipe), "--no-progress", "theory.enabled=false"]) == 0
    before = open(os.path.join(run_dir, "results.json")).read()
    capsys.readouterr()
    assert main(["run", str(tiny_recipe), "--no-progress", "theory.enabled=false", "data.n_test=50"]) == 2
    err = capsys.readouterr().err
    assert "holds the results of a run on other data" in err and "data.n_test: 60 -> 50" in err
    assert "name=" in err and "--force" in err and "Traceback" not in err
    assert open(os.path.join(run_dir, "results.json")).read() == before  # untouched
    assert not os.path.exists(os.path.join(run_dir, NAME))  # and the lock released
    # another setting of the same experiment reruns what it changes; --force replaces the results
    assert main(["run", str(tiny_recipe), "--no-progress", "theory.enabled=false", "strong.head.cv_folds=2"]) == 0
    assert main(["run", str(tiny_recipe), "--no-progress", "theory.enabled=false", "data.n_test=50", "--force"]) == 0
    assert json.load(open(os.path.join(run_dir, "results.json")))["n_test"] == 50


def test_a_lock_file_left_empty_by_a_kill_is_taken_over(tmp_path):
    """A run killed between creating the lock and writing it leaves an empty file: that is debris, not a
    run in use (its pid used to read as -1, and os.kill(-1, 0) succeeds, so every later run refused)."""
    run_dir = tmp_path / "r"
    run_dir.mkdir()
    for debris in ("", "{not json", '{"pid": "x", "host": "%s"}' % socket.gethostname()):
        (run_dir / NAME).write_text(debris)
        why, note = acquire(run_dir)
        assert why == "" and "took over" in note, (debris, why)
        assert json.loads((run_dir / NAME).read_text())["pid"] == os.getpid()
        release(run_dir)
        assert not (run_dir / NAME).exists()


def test_a_lock_being_written_under_the_guard_is_waited_for_not_taken_over(tmp_path):
    """Two runs starting together: while one holds the run directory's flock (it is creating and writing
    its lock), the other waits, then reads the finished lock and refuses; it never sees the empty file."""
    import fcntl
    import threading

    run_dir = tmp_path / "r"
    run_dir.mkdir()
    fd = os.open(run_dir, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    (run_dir / NAME).write_text("")  # the other run, between O_CREAT and its write
    verdict = []
    waiter = threading.Thread(target=lambda: verdict.append(acquire(run_dir)))
    waiter.start()
    waiter.join(0.5)
    assert waiter.is_alive() and not verdict  # waiting for the guard
    (run_dir / NAME).write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                            "started": "now", "command": "w2s run other.yaml"}))
    os.close(fd)  # the other run has its lock
    waiter.join(5)
    why, note = verdict[0]
    assert "is in use by another run" in why and "w2s run other.yaml" in why and note == ""
