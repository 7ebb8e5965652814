"""The arena's vote store: one append-only SQLite row per vote, and its converters.

Votes become battles for the leaderboard (`lab.leaderboard.compute_battles`) and explicit
prompt/chosen/rejected pairs for reward modelling (`to_preferences`, `export_preferences`).
Every operation opens its own connection, so one `VoteStore` serves Gradio's thread pool and
several processes can share one file; SQLite's WAL mode lets readers and a writer overlap.
"""

from __future__ import annotations

import json
import numbers
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import datasets
import pandas as pd

# OUTCOMES ("win", "tie", "both_bad") lives beside the maths that says what each means.
from lab.leaderboard import OUTCOMES

# The table's layout and its reading live in the lab, which reads the file without the app.
from lab.votes_db import (
    COLUMNS,
    GROUP_NAME,
    GROUP_RULE,
    SCHEMA_VERSION,
    check_votes_table,
    quoted,
    schema_version,
    select_votes,
    to_preferences,
)

MODES = ("compare", "battle", "simulated")

# A burst of votes queues for SQLite's single write lock instead of failing with "locked".
BUSY_TIMEOUT_S = 60.0
SCHEMA = (
    """CREATE TABLE votes (
        id INTEGER PRIMARY KEY,
        time TEXT NOT NULL,          -- UTC ISO 8601, fixed width, so text order is time order
        annotator TEXT NOT NULL,
        mode TEXT NOT NULL,
        prompt TEXT NOT NULL,
        models TEXT NOT NULL,        -- JSON list of names, display order
        responses TEXT NOT NULL,     -- JSON list, same length as models
        outcome TEXT NOT NULL,
        winner INTEGER,              -- index into models, NULL unless outcome = 'win'
        decoding TEXT NOT NULL,      -- JSON object
        "group" TEXT NOT NULL DEFAULT ''  -- the voter's class or section, '' when none
    )""",
    "CREATE INDEX votes_by_annotator ON votes (annotator, time)",
    "CREATE INDEX votes_by_time ON votes (time)",
    # Append-only in the file itself, not just in this API.
    "CREATE TRIGGER votes_no_update BEFORE UPDATE ON votes "
    "BEGIN SELECT RAISE(ABORT, 'votes are append-only'); END",
    "CREATE TRIGGER votes_no_delete BEFORE DELETE ON votes "
    "BEGIN SELECT RAISE(ABORT, 'votes are append-only'); END",
    "CREATE TABLE schema_version (version INTEGER NOT NULL)",
)
# Version 1 -> 2: votes get a group. Adding a column fires no trigger; old votes get ''.
MIGRATE_1_TO_2 = (
    """ALTER TABLE votes ADD COLUMN "group" TEXT NOT NULL DEFAULT ''""",
    "UPDATE schema_version SET version = 2",
)


def _bad(field: str, problem: str) -> ValueError:
    return ValueError(f"Vote.{field}: {problem}")


def _names(value: object, field: str) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise _bad(field, f"expected a list of strings, got {value!r:.60}")
    if not all(isinstance(v, str) for v in value):
        raise _bad(field, f"every item must be a string, got {value!r:.80}")
    return tuple(value)


@dataclass(frozen=True)
class Vote:
    """One judgment: a prompt, the responses of two or more models, and what the annotator chose."""

    annotator: str
    """Pseudonymous id of the student (kept by their browser) or of the simulated annotator."""
    mode: str
    """How the vote was cast, one of MODES."""
    prompt: str
    """The user prompt every model answered."""
    models: tuple[str, ...]
    """Two or more distinct model names, in display order."""
    responses: tuple[str, ...]
    """One response per model, same order (may be empty: a model can say nothing)."""
    outcome: str
    """One of OUTCOMES: "win", "tie" or "both_bad"."""
    winner: int | None = None
    """Index into models of the preferred response; required iff outcome == "win"."""
    decoding: dict = field(default_factory=dict)
    """Decoding settings: temperature, top_p, max_new_tokens, seed."""
    group: str = ""
    """The voter's class or section ('' when none): feedback rounds can learn each group's taste."""

    def __post_init__(self) -> None:
        # Lists are accepted and frozen into tuples, so a Vote never changes after validation.
        object.__setattr__(self, "models", _names(self.models, "models"))
        object.__setattr__(self, "responses", _names(self.responses, "responses"))
        if not isinstance(self.annotator, str) or not self.annotator.strip():
            raise _bad("annotator", f"expected a non-empty string, got {self.annotator!r}")
        if self.mode not in MODES:
            raise _bad("mode", f"unknown mode {self.mode!r}, expected one of {MODES}")
        if not isinstance(self.prompt, str) or not self.prompt.strip():
            raise _bad("prompt", f"empty prompt: {self.prompt!r:.60}")
        if len(self.models) < 2:
            raise _bad("models", f"need at least 2 models, got {len(self.models)}")
        if len(set(self.models)) != len(self.models) or not all(m.strip() for m in self.models):
            raise _bad("models", f"names must be distinct and non-empty, got {self.models}")
        if len(self.responses) != len(self.models):
            raise _bad(
                "responses", f"{len(self.responses)} responses for {len(self.models)} models"
            )
        if self.outcome not in OUTCOMES:
            raise _bad("outcome", f"unknown outcome {self.outcome!r}, expected one of {OUTCOMES}")
        self._check_winner()
        if not isinstance(self.group, str) or not (
            self.group == "" or GROUP_NAME.fullmatch(self.group)
        ):
            raise _bad(
                "group",
                f"expected '' or a group's name ({GROUP_RULE}), got {repr(self.group)[:42]}",
            )
        if not isinstance(self.decoding, dict):
            raise _bad("decoding", f"expected a dict, got {type(self.decoding).__name__}")
        try:
            json.dumps(self.decoding)
        except (TypeError, ValueError) as e:
            raise _bad("decoding", f"not JSON-serialisable: {e}") from None

    def _check_winner(self) -> None:
        if self.outcome != "win":
            if self.winner is not None:
                raise _bad("winner", f"must be None for outcome {self.outcome!r}")
            return
        if self.winner is None:
            raise _bad("winner", "missing: outcome 'win' needs the index of the winning model")
        if isinstance(self.winner, bool) or not isinstance(self.winner, numbers.Integral):
            raise _bad("winner", f"expected an int index, got {self.winner!r}")
        if not 0 <= self.winner < len(self.models):
            raise _bad("winner", f"index {self.winner} out of range for {len(self.models)} models")
        object.__setattr__(self, "winner", int(self.winner))  # numpy ints become plain ints


def _utc_iso(unix_time: float) -> str:
    """Unix time -> '2025-01-31T12:00:00.000000+00:00' (fixed width, sorts as text)."""
    return datetime.fromtimestamp(unix_time, timezone.utc).isoformat(timespec="microseconds")


class VoteStore:
    """Append-only SQLite store of votes; many threads and processes may add at once."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.created = not self.path.exists()  # this store made the file (`remove_if_unused`)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self.path.is_file() and self.path.stat().st_size:
            with self._connect() as conn:  # reading only: a foreign file is refused untouched
                if (version := schema_version(conn, self.path)) is not None:
                    check_votes_table(conn, version, self.path)
        self._enable_wal()
        with self._write() as conn:  # the write lock: one process creates the schema
            self._check_or_create_schema(conn)

    def _enable_wal(self) -> None:
        """WAL mode (persistent in the file): readers never block the writer, nor it them.

        Switching the journal mode can fail with "database is locked" at once, without
        waiting for the busy timeout, while another process opens the same new file; retry.
        """
        deadline = time.monotonic() + BUSY_TIMEOUT_S
        while True:
            try:
                with self._connect() as conn:
                    conn.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # A fresh connection per operation: sqlite3 connections must not cross threads.
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        try:
            yield conn
        finally:
            conn.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """A connection inside a transaction that holds the write lock from its start."""
        with self._connect() as conn:
            # IMMEDIATE takes the lock now (waiting up to the busy timeout), so the
            # transaction can never fail later on a read-to-write upgrade.
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def _check_or_create_schema(self, conn: sqlite3.Connection) -> None:
        """Create the schema in an empty file, migrate a version-1 file in place, else check it."""
        version = schema_version(conn, self.path)  # another version or a foreign file raises
        if version is None:
            for statement in SCHEMA:
                conn.execute(statement)
            conn.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
        elif version == 1:
            for statement in MIGRATE_1_TO_2:
                conn.execute(statement)

    def add(self, vote: Vote) -> int:
        """Append `vote` and return its row id, only once the row is committed (the ack)."""
        with self._write() as conn:
            # Stamped under the lock, so time order and id order agree.
            cursor = conn.execute(
                f"INSERT INTO votes ({quoted(COLUMNS[1:])}) VALUES ({', '.join('?' * 10)})",
                (
                    _utc_iso(time.time()),
                    vote.annotator,
                    vote.mode,
                    vote.prompt,
                    json.dumps(list(vote.models), ensure_ascii=False),
                    json.dumps(list(vote.responses), ensure_ascii=False),
                    vote.outcome,
                    vote.winner,
                    json.dumps(vote.decoding, ensure_ascii=False),
                    vote.group,
                ),
            )
        return int(cursor.lastrowid)

    def votes(self) -> pd.DataFrame:
        """Every vote, oldest first: models/responses as lists, decoding as a dict, winner Int64."""
        with self._connect() as conn:
            return select_votes(conn, SCHEMA_VERSION, self.path)

    def count(self, annotator: str | None = None, since: float | None = None) -> int:
        """Votes in the store, optionally only by `annotator` and/or from unix time `since` on."""
        where, params = [], []
        if annotator is not None:
            where.append("annotator = ?")
            params.append(annotator)
        if since is not None:
            where.append("time >= ?")
            params.append(_utc_iso(since))
        sql = "SELECT COUNT(*) FROM votes" + (" WHERE " + " AND ".join(where) if where else "")
        with self._connect() as conn:
            return int(conn.execute(sql, params).fetchone()[0])

    def remove_if_unused(self) -> bool:
        """Delete the store's files (with its write-ahead log) if this store made them and they
        hold no vote (an arena that failed to start); True if so. A file that was there before,
        or a vote another process added since, keeps it."""
        if not self.created or self.count():
            return False
        for suffix in ("", "-wal", "-shm"):
            self.path.with_name(self.path.name + suffix).unlink(missing_ok=True)
        return True


def export_preferences(votes: pd.DataFrame, out_dir: Path) -> dict[str, Path]:
    """Write preferences.jsonl and a `save_to_disk` folder preferences_dataset under `out_dir`."""
    rows = to_preferences(votes)
    if not rows:
        # An empty file would only fail later, in load_preferences; say why now.
        raise ValueError("no preference pairs to export: need 'win' votes with distinct responses")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    jsonl, folder = out_dir / "preferences.jsonl", out_dir / "preferences_dataset"
    partial = out_dir / "preferences.jsonl.partial"  # a reader never sees half a file
    partial.write_text(
        "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8"
    )
    partial.replace(jsonl)
    datasets.Dataset.from_list(rows).save_to_disk(str(folder))
    return {"jsonl": jsonl, "dataset": folder}
