"""Exact tests for lab.threads: which thread count torch gets, and that it is set."""

import os
import runpy
import subprocess
import sys

import pytest
import torch

from lab.threads import choose_threads, set_torch_threads, usable_cpus


@pytest.mark.parametrize(
    ("env", "cpus", "expected"),
    [
        ({}, 2, 2),  # nothing set: every usable CPU
        ({}, 0, 1),  # a machine that reports no CPUs still gets one thread
        ({"OMP_NUM_THREADS": "1"}, 2, 1),
        ({"OMP_NUM_THREADS": "4,2"}, 8, 4),  # OpenMP's nested form: the outer level
        ({"OMP_NUM_THREADS": "16"}, 2, 2),  # never more than the usable CPUs
        ({"OMP_NUM_THREADS": "lots"}, 3, 3),  # not ours to validate: ignored
        ({"LAB_THREADS": "1", "OMP_NUM_THREADS": "2"}, 2, 1),  # LAB_THREADS wins
        ({"LAB_THREADS": " 3 "}, 4, 3),
        ({"LAB_THREADS": "8"}, 2, 2),
        ({"LAB_THREADS": ""}, 2, 2),  # set but empty: as if unset
        ({"LOCAL_WORLD_SIZE": "2"}, 8, 4),  # two processes on one machine share it
        ({"LOCAL_WORLD_SIZE": "4"}, 2, 1),
        ({"LOCAL_WORLD_SIZE": "2", "OMP_NUM_THREADS": "3"}, 8, 3),
    ],
)
def test_choose_threads(env, cpus, expected):
    assert choose_threads(env, cpus) == expected


@pytest.mark.parametrize(("busy", "expected"), [(0.0, 2), (0.4, 2), (0.8, 1), (1.7, 1), (6.0, 1)])
def test_a_busy_machine_gets_fewer_threads(busy, expected):
    assert choose_threads({}, 2, busy) == expected
    assert choose_threads({"OMP_NUM_THREADS": "2"}, 2, busy) == 2  # an explicit choice stands


@pytest.mark.parametrize("value", ["0", "-2", "two", "1.5"])
def test_bad_lab_threads_is_named(value):
    with pytest.raises(ValueError, match=rf"LAB_THREADS must be a positive integer, got '{value}'"):
        choose_threads({"LAB_THREADS": value}, 4)


def test_usable_cpus_is_the_affinity_mask():
    expected = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert usable_cpus() == expected >= 1


def test_set_torch_threads_sets_torch_and_can_be_called_again(monkeypatch):
    before = torch.get_num_threads()
    try:
        monkeypatch.setenv("LAB_THREADS", "1")
        assert set_torch_threads() == 1 and torch.get_num_threads() == 1
        # Again, after parallel work has started: inter-op threads can no longer change.
        torch.ones(64, 64) @ torch.ones(64, 64)
        monkeypatch.delenv("LAB_THREADS")
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
        monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
        monkeypatch.setattr("lab.threads.load_average", lambda: 0.0)
        assert set_torch_threads() == torch.get_num_threads() == usable_cpus()
        assert set_torch_threads(1) == torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


def test_interop_threads_set_to_one_in_a_fresh_process():
    code = "from lab.threads import set_torch_threads; import torch; set_torch_threads(); "
    code += "print(torch.get_num_threads(), torch.get_num_interop_threads())"
    env = os.environ | {"LAB_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.split() == ["1", "1"], out.stderr


class Stop(Exception):
    """Raised by a stand-in to end an entry point once it has set the threads."""


def test_entry_points_set_threads_first(monkeypatch):
    import apps.arena
    import lab.cli
    import lab.notebook
    import lab.threads

    calls = []
    monkeypatch.setattr(lab.threads, "set_torch_threads", lambda: calls.append("threads"))
    monkeypatch.setattr(lab.cli, "main", lambda: calls.append("main") or 0)
    with pytest.raises(SystemExit):
        runpy.run_module("lab", run_name="__main__")
    assert calls == ["threads", "main"]

    def stop():
        raise Stop

    for module in (lab.notebook, apps.arena):
        monkeypatch.setattr(module, "set_torch_threads", stop)
    with pytest.raises(Stop):
        lab.notebook.notebook_setup("tiny")
    with pytest.raises(Stop):
        apps.arena.main(["--run", "nowhere"])


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_side_by_side_runs_two_tasks_at_once_each_on_half_the_threads(two_threads):
    import threading

    from lab.threads import side_by_side

    both_in = threading.Barrier(2, timeout=10)  # passes only if the two tasks run at once

    def task(value):
        both_in.wait()
        return value, threading.current_thread().name, torch.get_num_threads()

    (a, name_a, threads_a), (b, name_b, threads_b) = side_by_side(
        lambda: task("a"), lambda: task("b")
    )
    assert (a, b) == ("a", "b") and name_a != name_b and threads_a == threads_b == 1
    assert torch.get_num_threads() == 2  # the caller's count is its own...
    later = []  # ...and a thread started afterwards (the arena's next Retrain job) gets it too
    thread = threading.Thread(target=lambda: later.append(torch.get_num_threads()))
    thread.start()
    thread.join()
    assert later == [2]


def test_side_by_side_keeps_grad_mode_and_raises_after_every_task_ended(two_threads):
    import time

    from lab.threads import side_by_side

    with torch.no_grad():
        assert side_by_side(torch.is_grad_enabled, torch.is_grad_enabled) == [False, False]
    assert side_by_side(torch.is_grad_enabled, torch.is_grad_enabled) == [True, True]
    ended = []

    def fail():
        raise ValueError("bad task")

    def slow():
        time.sleep(0.2)
        ended.append(True)

    with pytest.raises(ValueError, match="bad task"):
        side_by_side(fail, slow)
    assert ended == [True]


@pytest.mark.parametrize("threads", [2, 4])
def test_side_by_side_inside_a_task_runs_in_turn_on_the_tasks_thread(threads):
    import threading

    from lab.threads import side_by_side

    def name():
        return threading.current_thread().name

    both_in = threading.Barrier(2, timeout=10)  # both workers busy with the outer tasks

    def nested():  # waiting for a worker here would never end
        both_in.wait()
        return name(), side_by_side(name, name)

    before, done = torch.get_num_threads(), []
    try:
        torch.set_num_threads(threads)  # 4: each outer task has 2 threads, enough to side by side
        caller = threading.Thread(target=lambda: done.append(side_by_side(nested, nested)))
        caller.start()
        caller.join(timeout=20)
        assert not caller.is_alive(), "a side_by_side call inside a task waited for itself"
    finally:
        torch.set_num_threads(before)
    (outer_a, inner_a), (outer_b, inner_b) = done[0]
    assert outer_a.startswith("lab-side") and outer_b.startswith("lab-side") and outer_a != outer_b
    assert inner_a == [outer_a, outer_a] and inner_b == [outer_b, outer_b]  # in turn, right there


def test_side_by_side_runs_in_turn_here_on_one_thread_or_when_told():
    import threading

    from lab.threads import side_by_side

    here = threading.current_thread().name
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert side_by_side(lambda: threading.current_thread().name) == [here]
        assert set(side_by_side(*[lambda: threading.current_thread().name] * 2)) == {here}
        torch.set_num_threads(2)
        names = side_by_side(*[lambda: threading.current_thread().name] * 2, at_once=False)
        assert set(names) == {here}
    finally:
        torch.set_num_threads(before)
