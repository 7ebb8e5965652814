"""Arena latency under load: one student's battles against a class battling at once, p50 and p95.

    python benchmarks/arena_latency.py --run runs/tiny --clients 30 --rounds 5
    python benchmarks/arena_latency.py --run runs/tiny --twin HuggingFaceTB/SmolLM2-135M

Serves the arena on a local port with a throwaway vote database, then drives it through
its HTTP API (`gradio_client`), as a classroom's browsers would: first one student alone,
then `--clients` students at once, in the same run. The students run in a process of their
own (their browsers are not on the server), so the server has the interpreter to itself.
Target: p95 with the class at once at most twice one student's p95 (concurrent requests for
one model are batched, `apps.batching`).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import socket
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

from gradio_client import Client

from apps.arena import build_app
from apps.guard import Classroom
from apps.loading import load_arena
from lab.models import load_tokenizer
from lab.twins import TWINS, make_twin

SETTINGS = (0.7, 1.0, 64, 0)  # temperature, top-p, max tokens, seed
TARGET = 2.0  # p95 with the class at once / p95 of one student alone


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation."""
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def client_session(url: str, rounds: int, i: int) -> tuple[list[float], list[float]]:
    """One student: `rounds` battles, each followed by a vote; (battle seconds, vote seconds)."""
    client = Client(url, verbose=False)
    battles, votes = [], []
    for r in range(rounds):
        start = time.perf_counter()
        outputs = client.predict(f"What is {i} plus {r}?", *SETTINGS, api_name="/battle")
        battles.append(time.perf_counter() - start)
        assert "could not answer" not in outputs[-1], outputs[-1]
        start = time.perf_counter()
        message = client.predict(api_name="/battle_tie")[-1]
        votes.append(time.perf_counter() - start)
        assert "Vote #" in message, message
    return battles, votes


def class_at_once(url: str, clients: int, rounds: int) -> tuple[list[float], list[float], float]:
    """`clients` students battling and voting at once: (battle seconds, vote seconds, wall)."""
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        results = list(pool.map(lambda i: client_session(url, rounds, i), range(clients)))
    wall = time.perf_counter() - start
    return [t for b, _ in results for t in b], [t for _, v in results for t in v], wall


def batch_sizes(arena) -> dict[str, tuple[float, int]]:
    """Per model: (mean, max) rows per forward pass since the last call; the record is cleared."""
    sizes = {}
    for name in arena.pool.available:
        batcher = arena.pool.models[name].batcher
        seen = list(batcher.batch_sizes)
        batcher.batch_sizes.clear()
        if seen:
            sizes[name] = (statistics.mean(seen), max(seen))
    return sizes


def line(label: str, seconds: list[float]) -> str:
    """p50 and p95 of `seconds`, with the count."""
    return (
        f"{label}: p50 {percentile(seconds, 50):.2f} s, p95 {percentile(seconds, 95):.2f} s "
        f"(n={len(seconds)})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=Path("runs/tiny"))
    parser.add_argument("--clients", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--alone", type=int, default=20, help="battles of the student alone")
    parser.add_argument("--concurrency", type=int, default=32, help="queue workers per event")
    parser.add_argument("--twin", help="serve two random twins of this hub model (lab.twins)")
    args = parser.parse_args()
    for name in ("clients", "rounds", "concurrency"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be 1 or more, got {getattr(args, name)}")
    if args.alone < 2:  # a percentile needs two battles
        parser.error(f"--alone must be 2 or more (a p95 needs two battles), got {args.alone}")
    if args.clients * args.rounds < 2:
        parser.error(
            f"--clients x --rounds must be 2 or more battles (a p95 needs two), "
            f"got {args.clients} x {args.rounds}"
        )
    if args.twin and args.twin not in TWINS:
        parser.error(f"--twin: no twin of {args.twin!r}; twins: {', '.join(TWINS)}")
    if not args.run.is_dir():
        parser.error(f"--run {args.run}: no such folder (make pipeline writes runs/tiny)")

    folder = Path(tempfile.mkdtemp())
    run, models = args.run, {}
    if args.twin:  # the real model's compute, the run's tokenizer; no reward model, no KL
        tokenizer = load_tokenizer(str(args.run / "sft" / "model"))
        run = None
        for seed in range(2):
            models[f"twin-{seed}"] = str(make_twin(args.twin, folder / str(seed), tokenizer, seed))
    arena = load_arena(run, models, folder / "arena.sqlite", Classroom(min_seconds_between_votes=0))
    demo = build_app(arena).queue(default_concurrency_limit=args.concurrency)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    _, url, _ = demo.launch(server_port=port, prevent_thread_lock=True, quiet=True)

    # Answer latency: one client, the three pipeline models, same prompt and seed.
    client, answer_times = Client(url, verbose=False), []
    models = arena.pool.available[:3]
    for r in range(5):
        start = time.perf_counter()
        client.predict(
            f"What is the capital of Zarnia? ({r})", models, *SETTINGS, api_name="/compare"
        )
        answer_times.append(time.perf_counter() - start)

    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=spawn) as students:
        alone, _, _ = students.submit(class_at_once, url, 1, args.alone).result()
        batch_sizes(arena)  # forget the warm-up's batches
        cpu = time.process_time()  # the server's threads only: the students are elsewhere
        battles, votes, wall = students.submit(
            class_at_once, url, args.clients, args.rounds
        ).result()
        cpu = time.process_time() - cpu
    batched = batch_sizes(arena)
    stored = arena.store.count()
    demo.close()

    print(f"models: {arena.pool.available}   device: {arena.pool.device}")
    print(
        f"answer latency, 3 models x {SETTINGS[2]} tokens max: "
        f"median {statistics.median(answer_times):.2f} s (5 prompts, one client)"
    )
    print(line("battle latency, 1 student alone", alone))
    print(line(f"battle latency, {args.clients} students at once", battles))
    ratio = percentile(battles, 95) / percentile(alone, 95)
    verdict = "met" if ratio <= TARGET else "MISSED"
    print(f"p95 ratio {args.clients} at once / alone: {ratio:.2f} (target <= {TARGET}: {verdict})")
    print(
        f"{args.clients} students x {args.rounds} battles + votes in {wall:.1f} s; rows per "
        "forward (mean / max): "
        + ", ".join(f"{name} {mean:.1f} / {top}" for name, (mean, top) in batched.items())
    )
    print(
        f"server CPU meanwhile: {cpu:.1f} s in {wall:.1f} s, "
        f"{1000 * cpu / len(battles):.0f} ms per battle + vote (models, web server, vote store)"
    )
    # The class's battles share the machine's cores: a battle that waits for all the others'
    # CPU cannot answer sooner than this, however well they are batched.
    cores = len(os.sched_getaffinity(0))
    floor = args.clients * (cpu / len(battles)) / cores
    print(
        f"CPU floor with {args.clients} at once on {cores} cores: {floor:.2f} s a battle, "
        f"{floor / percentile(alone, 95):.1f}x one student's p95 (server only; the students' "
        "clients share the cores too)"
    )
    print(
        f"vote latency: p50 {1000 * percentile(votes, 50):.0f} ms, "
        f"p95 {1000 * percentile(votes, 95):.0f} ms (n={len(votes)})"
    )
    print(f"votes stored: {stored - args.alone} of {len(votes)} acknowledged")


if __name__ == "__main__":
    main()
