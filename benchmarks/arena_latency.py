"""Arena latency under load: vote p50/p95 with N concurrent clients, and answer time for 3 models.

    python benchmarks/arena_latency.py --run runs/tiny --clients 30 --rounds 5

Serves the arena on a local port with a throwaway vote database, then drives it through
its HTTP API (`gradio_client`), as a classroom's browsers would.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from gradio_client import Client

from apps.arena import build_app
from apps.guard import Classroom
from apps.handlers import load_arena

SETTINGS = (0.7, 1.0, 64, 0)  # temperature, top-p, max tokens, seed


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation."""
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def client_session(url: str, rounds: int, i: int) -> tuple[list[float], list[float]]:
    """One student: `rounds` battles, each followed by a vote; (battle seconds, vote seconds)."""
    client = Client(url, verbose=False)
    battles, votes = [], []
    for r in range(rounds):
        start = time.perf_counter()
        client.predict(f"What is {i} plus {r}?", *SETTINGS, api_name="/battle")
        battles.append(time.perf_counter() - start)
        start = time.perf_counter()
        message = client.predict(api_name="/battle_tie")[-1]
        votes.append(time.perf_counter() - start)
        assert "Vote #" in message, message
    return battles, votes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=Path("runs/tiny"))
    parser.add_argument("--clients", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--concurrency", type=int, default=8, help="queue workers per event")
    args = parser.parse_args()

    db = Path(tempfile.mkdtemp()) / "arena.sqlite"
    arena = load_arena(args.run, {}, db, Classroom(min_seconds_between_votes=0))
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

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=args.clients) as pool:
        results = list(pool.map(lambda i: client_session(url, args.rounds, i), range(args.clients)))
    wall = time.perf_counter() - start
    battles = [t for b, _ in results for t in b]
    votes = [t for _, v in results for t in v]
    stored = arena.store.count()
    demo.close()

    print(f"models: {models}   device: {arena.pool.device}")
    print(
        f"answer latency, 3 models x {SETTINGS[2]} tokens max: "
        f"median {statistics.median(answer_times):.2f} s (5 prompts, one client)"
    )
    print(f"{args.clients} concurrent clients x {args.rounds} battles + votes in {wall:.1f} s")
    print(
        f"vote latency: p50 {1000 * percentile(votes, 50):.0f} ms, "
        f"p95 {1000 * percentile(votes, 95):.0f} ms (n={len(votes)})"
    )
    print(
        f"battle latency (2 answers, queued): p50 {percentile(battles, 50):.2f} s, "
        f"p95 {percentile(battles, 95):.2f} s"
    )
    print(f"votes stored: {stored} of {len(votes)} acknowledged")


if __name__ == "__main__":
    main()
