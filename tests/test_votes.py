"""Exact tests for apps.votes: validation, the SQLite store under concurrent writers, converters."""

import multiprocessing
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import datasets
import pandas as pd
import pytest

from apps.votes import (
    SCHEMA,
    SCHEMA_VERSION,
    Vote,
    VoteStore,
    export_preferences,
    to_preferences,
)
from lab.data import load_preferences
from lab.leaderboard import compute_battles, compute_bt, compute_model_counts
from lab.votes_db import left_out_note, pairs_to_battles, read_votes, unpaired_wins

DECODING = {"temperature": 0.7, "top_p": 0.9, "max_new_tokens": 64, "seed": 1}


def vote(**changes):
    """A valid three-model "win" vote, with some fields changed."""
    fields = {
        "annotator": "u1",
        "mode": "battle",
        "prompt": "Capital of Zubia?",
        "models": ("sft", "ppo", "base"),
        "responses": ("Zubville.", "Zubville, on the river.", "Zub"),
        "outcome": "win",
        "winner": 1,
        "decoding": DECODING,
    }
    return Vote(**(fields | changes))


@pytest.fixture
def store(tmp_path):
    return VoteStore(tmp_path / "arena" / "votes.db")


def stored(tmp_path, *votes):
    """The votes table the app would read after adding `votes`."""
    store = VoteStore(tmp_path / "converters.db")
    for v in votes:
        store.add(v)
    return store.votes()


# ---------------------------------------------------------------- Vote validation


@pytest.mark.parametrize(
    ("changes", "field", "problem"),
    [
        ({"outcome": "draw"}, "outcome", "unknown outcome 'draw'"),
        ({"winner": 3}, "winner", "index 3 out of range for 3 models"),
        ({"winner": -1}, "winner", "out of range"),
        ({"winner": None}, "winner", "missing"),
        ({"winner": True}, "winner", "expected an int index"),
        ({"outcome": "tie"}, "winner", "must be None for outcome 'tie'"),
        ({"responses": ("a", "b")}, "responses", "2 responses for 3 models"),
        ({"prompt": "  "}, "prompt", "empty prompt"),
        ({"models": ("sft",), "responses": ("a",), "winner": 0}, "models", "at least 2"),
        ({"models": ("sft", "sft", "ppo")}, "models", "distinct"),
        ({"models": "sft,ppo"}, "models", "expected a list of strings"),
        ({"responses": ("a", None, "c")}, "responses", "must be a string"),
        ({"mode": "arena"}, "mode", "unknown mode 'arena'"),
        ({"annotator": ""}, "annotator", "non-empty string"),
        ({"group": " terse"}, "group", "a group.s name"),
        ({"group": None}, "group", "a group.s name"),
        ({"decoding": {"seed": object()}}, "decoding", "not JSON-serialisable"),
    ],
)
def test_vote_validation(changes, field, problem):
    with pytest.raises(ValueError, match=f"Vote.{field}: .*{problem}"):
        vote(**changes)


def test_vote_freezes_lists_into_tuples():
    v = vote(models=["a", "b"], responses=["x", "y"], winner=0)
    assert v.models == ("a", "b") and v.responses == ("x", "y")
    assert vote(outcome="both_bad", winner=None, responses=("", "", "")).outcome == "both_bad"


# ---------------------------------------------------------------- the store


def test_round_trip(store):
    votes = [
        vote(),
        vote(annotator="u2", mode="compare", outcome="tie", winner=None, models=("b", "a"),
             responses=("ünïcode ✓", "x"), decoding={}),
    ]  # fmt: skip
    ids = [store.add(v) for v in votes]
    table = store.votes()
    assert ids == table["id"].tolist() == [1, 2]
    assert table.columns.tolist() == [
        "id", "time", "annotator", "mode", "prompt", "models", "responses", "outcome", "winner",
        "decoding", "group",
    ]  # fmt: skip
    for row, v in zip(table.itertuples(index=False), votes, strict=True):
        winner = None if pd.isna(row.winner) else row.winner
        assert Vote(row.annotator, row.mode, row.prompt, row.models, row.responses,
                    row.outcome, winner, row.decoding) == v  # fmt: skip
    assert table["models"][0] == ["sft", "ppo", "base"]  # a list, as documented
    assert table["winner"].tolist() == [1, pd.NA]
    stamp = datetime.fromisoformat(table["time"][0])
    assert stamp.tzinfo == timezone.utc and abs(stamp.timestamp() - time.time()) < 60


def test_reopening_keeps_rows(tmp_path):
    path = tmp_path / "votes.db"
    first = VoteStore(path)
    first.add(vote())
    again = VoteStore(path)
    assert again.add(vote(annotator="u2")) == 2
    assert again.votes()["annotator"].tolist() == ["u1", "u2"]


def test_empty_store(store):
    table = store.votes()
    assert table.empty and "models" in table.columns and store.count() == 0
    assert compute_battles(table, modes=None).columns.tolist() == ["model_a", "model_b", "winner"]


def test_wal_mode_is_on(store):
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_schema_version_mismatch_is_refused(store):
    with sqlite3.connect(store.path) as conn:
        conn.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    with pytest.raises(ValueError, match=rf"schema version \[{SCHEMA_VERSION + 1}\].*reads"):
        VoteStore(store.path)


def test_a_vote_keeps_its_group(store, tmp_path):
    store.add(vote(group="terse"))
    store.add(vote())
    for bad in ("../x", "a b", "<b>x</b>", "x" * 25, "\u202e", " terse", 3):
        with pytest.raises(ValueError, match="group"):  # it would name a round's folders
            store.add(vote(group=bad))
    table = store.votes()
    assert table["group"].tolist() == ["terse", ""]
    assert [p["group"] for p in to_preferences(table)] == ["terse", "terse", "", ""]
    assert read_votes(store.path).equals(table)  # the lab's read-only reader sees the same


VERSION_1_TABLE = """CREATE TABLE votes (
    id INTEGER PRIMARY KEY, time TEXT NOT NULL, annotator TEXT NOT NULL, mode TEXT NOT NULL,
    prompt TEXT NOT NULL, models TEXT NOT NULL, responses TEXT NOT NULL, outcome TEXT NOT NULL,
    winner INTEGER, decoding TEXT NOT NULL)"""


def version_1_file(path):
    """A vote store as schema version 1 wrote it (no group column), holding one vote."""
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        for statement in (VERSION_1_TABLE, *SCHEMA[1:]):
            conn.execute(statement)
        conn.execute("INSERT INTO schema_version VALUES (1)")
        conn.execute(
            "INSERT INTO votes (time, annotator, mode, prompt, models, responses, outcome, "
            """winner, decoding) VALUES ('t', 'u1', 'battle', 'p', '["a", "b"]', '["x", "y"]', """
            "'win', 0, '{}')"
        )
    return path


def test_a_version_1_file_is_read_as_is_and_migrated_in_place(tmp_path):
    path = version_1_file(tmp_path / "v1.db")
    with sqlite3.connect(path) as conn:
        assert "group" not in [r[1] for r in conn.execute("PRAGMA table_info(votes)")]
    assert read_votes(path)["group"].tolist() == [""]  # the lab reads it without changing it
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(1,)]
    store = VoteStore(path)  # the app migrates it
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
        for sql in ("UPDATE votes SET outcome = 'tie'", "DELETE FROM votes"):
            with pytest.raises(sqlite3.DatabaseError, match="append-only"):
                conn.execute(sql)  # the triggers survive the migration
    store.add(vote(group="warm"))
    assert store.votes()["group"].tolist() == ["", "warm"]
    assert VoteStore(path).count() == 2  # reopening a migrated file changes nothing


def test_another_version_is_refused_by_reader_and_store_unchanged(store):
    store.add(vote())
    with sqlite3.connect(store.path) as conn:
        conn.execute("UPDATE schema_version SET version = 7")
    before = store.path.read_bytes()
    for open_it in (VoteStore, read_votes):
        with pytest.raises(ValueError) as error:
            open_it(store.path)
        message = str(error.value)
        assert str(store.path) in message and "[7]" in message and "version 2" in message
        assert "\n" not in message
    assert store.path.read_bytes() == before
    with pytest.raises(FileNotFoundError, match="no vote database"):
        read_votes(store.path.parent / "missing.db")


def test_a_foreign_database_is_refused_and_left_as_it_was(tmp_path):
    with sqlite3.connect(tmp_path / "other.db") as conn:
        conn.execute("CREATE TABLE users (name TEXT)")
    before = (tmp_path / "other.db").read_bytes()
    with pytest.raises(ValueError, match=r"not a vote store \(tables \['users'\]"):
        VoteStore(tmp_path / "other.db")
    assert (tmp_path / "other.db").read_bytes() == before  # not even switched to WAL
    (tmp_path / "text.db").write_text("not a database")
    with pytest.raises(ValueError, match=r"text.db: not a readable vote store \(file is not"):
        read_votes(tmp_path / "text.db")


def test_a_votes_table_without_a_column_names_it(store):
    store.add(vote(group="terse"))
    with sqlite3.connect(store.path) as conn:  # a store some other tool rewrote
        conn.execute('ALTER TABLE votes RENAME COLUMN "group" TO team')
    with pytest.raises(ValueError, match=r"the votes table has no column 'group'"):
        read_votes(store.path)
    with sqlite3.connect(store.path) as conn:
        conn.execute('ALTER TABLE votes RENAME COLUMN team TO "group"')
        for trigger in [
            r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='trigger'")
        ]:
            conn.execute(f"DROP TRIGGER {trigger}")
        conn.execute("UPDATE votes SET models = 'oops'")
    with pytest.raises(ValueError, match=r"vote 1, column 'models': not JSON: 'oops'"):
        read_votes(store.path)


@pytest.mark.parametrize(
    ("sql", "words"),
    [
        ("winner = 5", r"vote 1, column 'winner': 5 is not the index of one of its 3 models"),
        ("responses = '[1, 2, 3]'", r"vote 1, column 'responses': expected a list of texts"),
        ("models = '\"sft\"'", r"vote 1, column 'models': expected a list of names"),
        ('responses = \'["a", "b"]\'', r"vote 1, 3 models but 2 responses"),
        ("outcome = 'maybe'", r"vote 1, column 'outcome': expected one of win, tie, both_bad"),
        ("winner = 0.5", r"vote 1, column 'winner': expected an integer index or nothing, got 0.5"),
        ("winner = 'x'", r"vote 1, column 'winner': expected an integer index or nothing, got 'x'"),
        ("prompt = '  '", r"vote 1, column 'prompt': expected a non-empty text"),
        ('models = \'["sft", "sft", "base"]\'', r"vote 1, column 'models': expected two or more"),
    ],
)
def test_a_vote_row_edited_by_hand_is_named_not_learnt_from(store, sql, words):
    store.add(vote())
    with sqlite3.connect(store.path) as conn:
        for (trigger,) in conn.execute("SELECT name FROM sqlite_master WHERE type='trigger'"):
            conn.execute(f"DROP TRIGGER {trigger}")
        conn.execute(f"UPDATE votes SET {sql}")
    with pytest.raises(ValueError, match=f"{store.path}: {words}"):
        read_votes(store.path)  # the round's input: it crashed with an IndexError before


def test_a_store_without_its_votes_table_is_refused_untouched(store):
    with sqlite3.connect(store.path) as conn:
        conn.execute("DROP TABLE votes")
    before = store.path.read_bytes()
    for open_it in (VoteStore, read_votes):
        with pytest.raises(ValueError, match="a vote store without its votes table"):
            open_it(store.path)
    assert store.path.read_bytes() == before


def test_votes_are_append_only_in_the_file_too(store):
    store.add(vote())
    with sqlite3.connect(store.path) as conn:
        for sql in ("UPDATE votes SET outcome = 'tie'", "DELETE FROM votes"):
            with pytest.raises(sqlite3.DatabaseError, match="append-only"):
                conn.execute(sql)
    assert store.votes()["outcome"].tolist() == ["win"]


def test_count_by_annotator_and_since(store):
    store.add(vote(annotator="u1"))
    store.add(vote(annotator="u2"))
    time.sleep(0.01)
    since = time.time()
    time.sleep(0.01)
    store.add(vote(annotator="u1"))
    assert store.count() == 3
    assert store.count(annotator="u1") == 2 and store.count(annotator="nobody") == 0
    assert store.count(since=since) == 1
    assert store.count(annotator="u2", since=since) == 0
    assert store.count(since=since + 3600) == 0


def _writer(target, name, n, start, results):
    """Wait for the start signal, add `n` votes to a store (or a path), report the ids."""
    try:
        start.wait(timeout=30)
        store = target if isinstance(target, VoteStore) else VoteStore(target)
        ids = [store.add(vote(annotator=name, prompt=f"{name}/{j}")) for j in range(n)]
        results.put((name, ids))
    except BaseException as e:  # the parent must hear about it, not hang waiting
        results.put((name, repr(e)))


def _context():
    # fork is fast (no re-import); the processes start before any writer thread exists.
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def _run_writers(ctx, process_args, thread_args):
    """Start every writer, release them together, return {name: acknowledged ids}."""
    start, results = ctx.Event(), ctx.Queue()
    processes = [ctx.Process(target=_writer, args=(*a, start, results)) for a in process_args]
    for p in processes:
        p.start()
    with ThreadPoolExecutor(max_workers=max(1, len(thread_args))) as pool:
        for a in thread_args:
            pool.submit(_writer, *a, start, results)
        start.set()
    acked = dict(results.get(timeout=60) for _ in range(len(process_args) + len(thread_args)))
    for p in processes:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert not [ids for ids in acked.values() if isinstance(ids, str)], acked
    return acked


def test_concurrent_writers_threads_and_processes(store):
    acked = _run_writers(
        _context(),
        [(store.path, f"p{i}", 25) for i in range(4)],  # 4 processes, each its own VoteStore
        [(store, f"t{i}", 50) for i in range(8)],  # 8 threads sharing one, as Gradio's pool does
    )
    table = store.votes()
    all_ids = [i for ids in acked.values() for i in ids]
    assert len(all_ids) == len(set(all_ids)) == 8 * 50 + 4 * 25 == len(table) == store.count()
    prompt_of = dict(zip(table["id"], table["prompt"], strict=True))
    for name, ids in acked.items():
        # every acknowledged id holds exactly the vote that was acknowledged with it
        assert [prompt_of[i] for i in ids] == [f"{name}/{j}" for j in range(len(ids))]
        assert store.count(annotator=name) == len(ids)
    assert table["time"].is_monotonic_increasing  # stamped under the write lock


def test_concurrent_opening_of_a_new_file(tmp_path):
    # Several app processes starting at once: exactly one creates the schema.
    path = tmp_path / "new" / "votes.db"
    acked = _run_writers(_context(), [(path, f"p{i}", 1) for i in range(4)], [(path, "t", 1)])
    assert sorted(i for ids in acked.values() for i in ids) == [1, 2, 3, 4, 5]
    assert VoteStore(path).count() == 5


# ---------------------------------------------------------------- votes -> battles


def test_to_battles_three_models(tmp_path):
    table = stored(
        tmp_path,
        vote(winner=1),  # ppo beats sft and base; sft vs base not compared
        vote(outcome="tie", winner=None),
        vote(outcome="both_bad", winner=None),
    )
    ties = [("sft", "ppo", "tie"), ("sft", "base", "tie"), ("ppo", "base", "tie")]
    assert compute_battles(table, modes=None).values.tolist() == [
        ["sft", "ppo", "model_b"],
        ["ppo", "base", "model_a"],
        *map(list, ties),  # both_bad says neither is better, not that they are equal: nothing
    ]


def test_votes_to_leaderboard(tmp_path):
    table = stored(tmp_path, *[vote(winner=1)] * 3, vote(winner=0))
    assert list(compute_bt(compute_battles(table, modes=None)).index) == ["ppo", "sft", "base"]


# ---------------------------------------------------------------- votes -> preference pairs


def test_to_preferences_three_models(tmp_path):
    table = stored(
        tmp_path,
        vote(winner=1),
        vote(outcome="tie", winner=None),
        vote(outcome="both_bad", winner=None),
        vote(winner=0, responses=("same", " same\n", "other")),  # identical text: skipped
        vote(winner=2, responses=("", "b", "c")),  # a blank rejected: skipped
    )
    pairs = to_preferences(table)
    assert [(p["chosen"], p["rejected"]) for p in pairs] == [
        ("Zubville, on the river.", "Zubville."),
        ("Zubville, on the river.", "Zub"),
        ("same", "other"),
        ("c", "b"),
    ]
    assert pairs[0] == {
        "prompt": "Capital of Zubia?",
        "chosen": "Zubville, on the river.",
        "rejected": "Zubville.",
        "chosen_model": "ppo",
        "rejected_model": "sft",
        "annotator": "u1",
        "mode": "battle",
        "vote_id": 1,
        "group": "",
    }
    assert [p["vote_id"] for p in pairs] == [1, 1, 4, 5]
    # ...and what was left out is said, vote by vote (nothing dropped silently).
    assert unpaired_wins(table) == [
        "vote 4: the two answers are the same text",
        "vote 5: sft's answer is blank",
    ]
    assert left_out_note(table, shown=1) == (
        " (2 pairs of win votes left out: vote 4: the two answers are the same text; …)"
    )
    assert left_out_note(stored(tmp_path / "clean", vote(winner=1))) == ""
    assert left_out_note(table, group="terse") == ""  # a round on one group reads its votes only


def test_export_round_trips_through_load_preferences(tmp_path):
    table = stored(tmp_path, vote(winner=1), vote(outcome="tie", winner=None),
                   vote(prompt="ünï ✓", winner=0))  # fmt: skip
    paths = export_preferences(table, tmp_path / "export")
    assert paths == {
        "jsonl": tmp_path / "export" / "preferences.jsonl",
        "dataset": tmp_path / "export" / "preferences_dataset",
    }
    pairs = to_preferences(table)
    assert load_preferences(paths["jsonl"]).to_list() == pairs
    assert datasets.load_from_disk(str(paths["dataset"])).to_list() == pairs
    # Exporting again (more votes since) replaces both.
    more = stored(tmp_path, vote(winner=1), vote(winner=2))
    export_preferences(more, tmp_path / "export")
    assert load_preferences(paths["jsonl"]).num_rows == len(to_preferences(more)) == 8


def test_export_without_pairs_says_why(tmp_path):
    with pytest.raises(ValueError, match="no preference pairs"):
        export_preferences(stored(tmp_path, vote(outcome="tie", winner=None)), tmp_path / "x")


def test_pairs_become_battles_that_the_chosen_model_wins():
    def pair(chosen: str, rejected: str) -> dict:
        return {
            "prompt": "p",
            "chosen": "a",
            "rejected": "b",
            "chosen_model": chosen,
            "rejected_model": rejected,
        }

    pairs = [pair("sft", "base"), pair("ppo", "base"), pair("base", "ppo"), pair("ppo", "sft")]
    pairs.append({"prompt": "p", "chosen": "a", "rejected": "b"})  # exported without models
    table = compute_model_counts(pairs_to_battles(pairs)).set_index("model")
    assert table["battles"].to_dict() == {"base": 3, "ppo": 3, "(unknown)": 2, "sft": 2}
    assert table["wins"].to_dict() == {"base": 1, "ppo": 2, "(unknown)": 1, "sft": 1}
    assert table["ties"].sum() == 0
    with pytest.raises(ValueError, match="no preference pairs"):
        pairs_to_battles([])
