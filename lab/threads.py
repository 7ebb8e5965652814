"""How many threads torch uses: chosen once per process, at the entry points, from the machine.

torch's default can oversubscribe a small or shared machine (a PPO update took 25 s instead of
3.5 s on a loaded 2-core box), so the lab picks the count deliberately: `LAB_THREADS` if set,
else `OMP_NUM_THREADS`, else the CPUs this process may run on that other work is not already
using (the load average when it starts), shared among the processes of a launch on this machine
(`LOCAL_WORLD_SIZE`); always between 1 and those CPUs. Set `LAB_THREADS` for runs that must
repeat to the last digit: the thread count can change a float sum's last bits.

`side_by_side` runs independent pieces of work (two networks' forwards and backwards) two at a
time, each on half of those threads: a tiny model's ops are too small to spread over cores.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Any

import torch


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def _positive_int(text: str) -> int | None:
    """`"4"` -> 4; OpenMP's nested form `"4,2"` -> 4; anything else -> None."""
    head = text.split(",")[0].strip()
    return int(head) if head.isdigit() and int(head) > 0 else None


def choose_threads(env: Mapping[str, str], cpus: int, busy: float = 0.0) -> int:
    """Intra-op threads for torch: LAB_THREADS, else OMP_NUM_THREADS, else the CPUs that `busy`
    other work (the load average) leaves free; always in [1, cpus]."""
    cpus = max(1, cpus)
    if env.get("LAB_THREADS", "").strip():
        n = _positive_int(env["LAB_THREADS"])
        if n is None:
            raise ValueError(f"LAB_THREADS must be a positive integer, got {env['LAB_THREADS']!r}")
    elif (n := _positive_int(env.get("OMP_NUM_THREADS", ""))) is None:
        # Processes launched together on one machine share its CPUs.
        n = cpus // (_positive_int(env.get("LOCAL_WORLD_SIZE", "")) or 1)
        # Threads that wait for a core another process holds spin instead of working: on a
        # loaded 2-core machine a second thread made a pretraining step 20x slower, not faster.
        n = min(n, cpus - round(busy))
    # More threads than cores only makes them wait on each other.
    return min(max(1, n), cpus)


def load_average() -> float:
    """The machine's one-minute load average (0 where the OS has none)."""
    return os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0


def set_torch_threads(n: int | None = None) -> int:
    """Set torch's intra-op threads (`choose_threads` unless `n` given) and 1 inter-op; return n."""
    n = choose_threads(os.environ, usable_cpus(), load_average()) if n is None else max(1, n)
    torch.set_num_threads(n)
    # The lab runs no inter-op parallel work; one such thread is one fewer to contend. torch
    # allows setting it once, before any parallel work started: later calls keep what is there.
    with contextlib.suppress(RuntimeError):
        torch.set_num_interop_threads(1)
    return n


_POOLS: dict[int, ThreadPoolExecutor] = {}  # process id -> its two workers
WORKERS = "lab-side"  # the workers' thread names start with this


def _pool() -> ThreadPoolExecutor:
    """Two worker threads, made once per process: a forked child gets its own, since the
    parent's workers do not exist in it."""
    if os.getpid() not in _POOLS:
        _POOLS[os.getpid()] = ThreadPoolExecutor(2, WORKERS)
    return _POOLS[os.getpid()]


def _run(task: Callable[[], Any], threads: int, grad: bool) -> Any:
    torch.set_num_threads(threads)  # this worker's own count (torch keeps one per thread)...
    with torch.set_grad_enabled(grad):  # ...and grad mode, also per thread: the caller's
        return task()


def side_by_side(*tasks: Callable[[], Any], at_once: bool = True) -> list:
    """The results of `tasks`, in order: two at a time, each on half of torch's threads, where
    the caller has 2 or more and `at_once`; else one after another in the calling thread.

    The tasks must not touch what another one touches (two separate networks: yes; two LoRA
    adapters of one network: no). On the tiny models one op is too small to spread over two
    cores: a PPO update took as long on 2 threads as on 1 (1.2 s), and 0.9 s with the policy's
    and the value function's forwards and backwards side by side (torch releases Python's lock
    inside each op). Each task sees the same thread count every time, so its numbers repeat.
    A call from inside a task runs its tasks in turn (both workers may be busy with the outer
    call's tasks: waiting for one would never end); calls from two threads at once share the
    two workers, and their tasks queue for them.
    """
    threads = torch.get_num_threads()
    inside = threading.current_thread().name.startswith(WORKERS)
    if not at_once or threads < 2 or len(tasks) < 2 or inside:
        return [task() for task in tasks]
    grad = torch.is_grad_enabled()
    futures = [_pool().submit(_run, task, threads // 2, grad) for task in tasks]
    try:
        wait(futures)  # every task has finished before an error from one of them is raised
    except KeyboardInterrupt:  # the caller saves a checkpoint next: let the tasks end first
        wait(futures)
        raise
    finally:  # setting a worker's count also set torch's default for new threads: put it back
        torch.set_num_threads(threads)
    return [future.result() for future in futures]
