"""The arena through its HTTP API (`gradio_client`), including many voters at once."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

from gradio_client import Client

from apps.handlers import MAX_COMPARE

SETTINGS = (0.7, 1.0, 16, 3)
VOTE_ID = re.compile(r"Vote #(\d+) saved")


def value(output) -> str:
    """A component's value from an API output (plain, or a `gr.update` dict)."""
    return output["value"] if isinstance(output, dict) else output


def battle_and_vote(url: str, i: int) -> int | None:
    """One client: a battle, then a vote; the acknowledged vote id (None if refused)."""
    client = Client(url, verbose=False)
    answers = client.predict(f"What is {i} plus 2?", *SETTINGS, api_name="/battle")
    assert all(value(a) for a in answers[:2])
    outcome = ("/battle_win_a", "/battle_win_b", "/battle_tie", "/battle_both_bad")[i % 4]
    message = client.predict(api_name=outcome)[-1]
    match = VOTE_ID.search(message)
    return int(match.group(1)) if match else None


def test_battle_vote_and_leaderboard_over_the_api(arena_server):
    arena, url = arena_server
    vote_id = battle_and_vote(url, 0)
    assert vote_id is not None
    row = arena.store.votes().set_index("id").loc[vote_id]
    assert row["mode"] == "battle" and row["outcome"] == "win" and row["winner"] == 0
    client = Client(url, verbose=False)
    *_, table, status = client.predict(api_name="/leaderboard")
    assert "votes" in status


def test_compare_over_the_api_reports_bad_input(arena_server):
    _, url = arena_server
    client = Client(url, verbose=False)
    *_, message = client.predict("", ["sft"], *SETTINGS, api_name="/compare")
    assert "type a prompt" in message
    out = client.predict(
        "What is 1 plus 1?", ["base", "sft", "ppo"], *SETTINGS, api_name="/compare"
    )
    prompt = "What is 1 plus 1?"  # values no slider sends reach the handler's own checks
    for settings, words in [
        (("abc", 1.0, 16, 3), "must be numbers"),
        ((5, 1.0, 16, 3), "Temperature must be"),
        ((0.7, 1.0, 16, 1.5), "The seed must be a whole number"),
    ]:
        assert words in client.predict(prompt, ["sft"], *settings, api_name="/compare")[-1]
    for n in ("abc", 2.5, 0):
        assert "Choose between 1 and" in client.predict("", n, "", "", api_name="/simulate")
    answers = [value(x) for x in out[:3]]  # the answer slots, then their stats lines
    stats = [value(x) for x in out[MAX_COMPARE : MAX_COMPARE + 3]]
    assert all(answers) and all("reward" in s for s in stats)


def test_many_voters_at_once_every_ack_is_stored_exactly_once(arena_server):
    arena, url = arena_server
    before = set(arena.store.votes()["id"])
    with ThreadPoolExecutor(max_workers=12) as pool:
        acks = list(pool.map(lambda i: battle_and_vote(url, i), range(24)))
    assert None not in acks and len(set(acks)) == 24
    stored = arena.store.votes()
    new = stored[~stored["id"].isin(before)]
    assert sorted(new["id"]) == sorted(acks)  # every ack stored, nothing stored twice or unacked


def test_a_model_added_while_the_arena_runs_is_asked_for_over_the_api(arena_server):
    arena, url = arena_server
    arena.pool.add("sft-again", str(arena.run_dir / "sft" / "model"))  # as a feedback round does
    try:
        client = Client(url, verbose=False)
        out = client.predict("What is 1 plus 1?", ["sft-again"], *SETTINGS, api_name="/compare")
        assert value(out[0]) and "reward" in value(out[MAX_COMPARE])
    finally:
        with arena.pool.lock:
            del arena.pool.models["sft-again"]
