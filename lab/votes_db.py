"""The arena's vote database as the lab reads it: the table's layout, and votes -> preference pairs.

The arena (`apps.votes.VoteStore`) writes the file; the lab only reads it, opened read-only,
so a headless feedback round never changes the votes. Schema version 2 added each vote's
`group` (a class, a section: '' when none); a version-1 file reads as if every group were ''.
"""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pandas as pd

from lab.leaderboard import BATTLE_COLUMNS, OUTCOMES

GROUP_NAME = re.compile(r"(?!(?i:before|all)\Z)[A-Za-z0-9_-]{1,24}")  # reserved: round labels
"""A voters' group as votes store it: a feedback round names the group's folders after it."""
GROUP_RULE = "letters, digits, - or _, at most 24 characters; 'before' and 'all' are reserved"

SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)  # 1: before votes had a group
COLUMNS = (
    "id", "time", "annotator", "mode", "prompt", "models", "responses", "outcome", "winner",
    "decoding", "group",
)  # fmt: skip
JSON_COLUMNS = ("models", "responses", "decoding")
UNKNOWN_MODEL = "(unknown)"  # a pair that does not say which model wrote an answer


def quoted(columns: tuple[str, ...]) -> str:
    """Column names for SQL, each quoted: `group` is an SQL keyword."""
    return ", ".join(f'"{c}"' for c in columns)


def schema_version(conn: sqlite3.Connection, path: Path) -> int | None:
    """The file's schema version (1 or 2), None for an empty file; anything else raises."""
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    if not tables:
        return None
    if "schema_version" not in tables:
        raise ValueError(f"{path}: not a vote store (tables {sorted(tables)}, no schema_version)")
    found = [r[0] for r in conn.execute("SELECT version FROM schema_version")]
    if len(found) != 1 or found[0] not in READABLE_VERSIONS:
        raise ValueError(
            f"{path}: vote store has schema version {found}, this code reads version "
            f"{SCHEMA_VERSION} (and migrates 1); use another file or update the lab"
        )
    return found[0]


def as_frame(rows: list[tuple], path: Path | str = "votes") -> pd.DataFrame:
    """Rows in `COLUMNS` order -> the votes table: JSON columns decoded, winner nullable Int64."""
    winner = COLUMNS.index("winner")
    for row in rows:  # before the cast, which would name neither the vote nor the value
        if not (row[winner] is None or type(row[winner]) is int):
            raise ValueError(
                f"{path}: vote {row[0]}, column 'winner': expected an integer index or "
                f"nothing, got {row[winner]!r:.40}"
            )
    table = pd.DataFrame(rows, columns=list(COLUMNS))
    for column in JSON_COLUMNS:
        table[column] = [decoded(text, path, vote_id, column) for vote_id, text in
                         zip(table["id"], table[column], strict=True)]  # fmt: skip
    table["winner"] = table["winner"].astype("Int64")  # nullable: <NA> unless a "win"
    for vote in table.itertuples(index=False):
        if problem := vote_problem(vote):
            raise ValueError(f"{path}: vote {vote.id}, {problem}")
    return table


def vote_problem(vote) -> str | None:
    """What is wrong with one row of the votes table (a file edited by hand), or None: the
    arena writes only rows its `Vote` checked, but a round must not learn from a broken one."""
    models, responses = vote.models, vote.responses
    if not (isinstance(models, list) and all(isinstance(m, str) for m in models)):
        return f"column 'models': expected a list of names, got {models!r:.60}"
    if not (isinstance(responses, list) and all(isinstance(r, str) for r in responses)):
        return f"column 'responses': expected a list of texts, got {responses!r:.60}"
    if len(models) < 2 or len(set(models)) != len(models) or not all(m.strip() for m in models):
        return f"column 'models': expected two or more distinct names, got {models!r:.60}"
    if len(models) != len(responses):
        return f"{len(models)} models but {len(responses)} responses"
    if not isinstance(vote.prompt, str) or not vote.prompt.strip():
        return f"column 'prompt': expected a non-empty text, got {vote.prompt!r:.40}"
    if vote.outcome not in OUTCOMES:
        return f"column 'outcome': expected one of {', '.join(OUTCOMES)}, got {vote.outcome!r:.40}"
    if vote.outcome == "win" and (pd.isna(vote.winner) or not 0 <= vote.winner < len(models)):
        return f"column 'winner': {vote.winner} is not the index of one of its {len(models)} models"
    return None


def decoded(text: str, path: Path | str, vote_id: int, column: str):
    """One JSON cell of the votes table; a broken one raises, naming the vote and column."""
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        raise ValueError(
            f"{path}: vote {vote_id}, column {column!r}: not JSON: {text!r:.60}"
        ) from None


def check_votes_table(
    conn: sqlite3.Connection, version: int, path: Path | str = "votes"
) -> tuple[str, ...]:
    """The columns a version's votes table has; a missing table or column raises, naming it."""
    columns = COLUMNS if version >= 2 else COLUMNS[:-1]
    have = {row[1] for row in conn.execute("PRAGMA table_info(votes)")}
    if not have:
        raise ValueError(f"{path}: a vote store without its votes table")
    if missing := [c for c in columns if c not in have]:
        raise ValueError(f"{path}: the votes table has no column {missing[0]!r}")
    return columns


def select_votes(
    conn: sqlite3.Connection, version: int, path: Path | str = "votes"
) -> pd.DataFrame:
    """Every vote, oldest first; a version-1 table's votes get group ''. A votes table without
    a column this version has raises, naming it (SQLite would read a quoted unknown column as
    its own name)."""
    columns = check_votes_table(conn, version, path)
    rows = conn.execute(f"SELECT {quoted(columns)} FROM votes ORDER BY id").fetchall()
    return as_frame([row if version >= 2 else (*row, "") for row in rows], path)


def read_votes(path: str | Path) -> pd.DataFrame:
    """The votes in the database at `path`, opened read-only (the file is never changed)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no vote database at {path}")
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        version = schema_version(conn, path)
        if version is None:
            raise ValueError(f"{path}: an empty file, not a vote store")
        return select_votes(conn, version, path)
    except sqlite3.DatabaseError as error:
        raise ValueError(f"{path}: not a readable vote store ({error})") from None
    finally:
        conn.close()


def win_pairs(vote) -> list[tuple[int, str | None]]:
    """A "win" vote's pairs, the winner against each other answer: (that answer's index, why the
    pair teaches nothing or None). Same text up to surrounding whitespace, or a blank answer,
    teaches no preference, and `lab.data.load_preferences` refuses both."""
    best, pairs = int(vote.winner), []
    chosen = vote.responses[best]
    for i, rejected in enumerate(vote.responses):
        if i == best:
            continue
        if not chosen.strip() or not rejected.strip():
            why = f"{vote.models[best if not chosen.strip() else i]}'s answer is blank"
        elif chosen.strip() == rejected.strip():
            why = "the two answers are the same text"
        else:
            why = None
        pairs.append((i, why))
    return pairs


def to_preferences(votes: pd.DataFrame) -> list[dict]:
    """ "win" votes -> standard prompt/chosen/rejected rows, the winner against each other model.

    Ties and both_bad give no pair; nor does a pair `win_pairs` finds nothing in (counted by
    `unpaired_wins`). Provenance rides along in extra columns.
    """
    rows = []
    for vote in votes.itertuples(index=False):
        if vote.outcome != "win":
            continue
        best = int(vote.winner)
        chosen = vote.responses[best]
        for i, why in win_pairs(vote):
            if why:
                continue
            model, rejected = vote.models[i], vote.responses[i]
            rows.append(
                {
                    "prompt": vote.prompt,
                    "chosen": chosen,
                    "rejected": rejected,
                    "chosen_model": vote.models[best],
                    "rejected_model": model,
                    "annotator": vote.annotator,
                    "mode": vote.mode,
                    "vote_id": int(vote.id),
                    "group": getattr(vote, "group", ""),
                }
            )
    return rows


def unpaired_wins(votes: pd.DataFrame) -> list[str]:
    """Each pair of a "win" vote that `to_preferences` leaves out, and why: "vote 7: ..."."""
    return [
        f"vote {vote.id}: {why}"
        for vote in votes.itertuples(index=False)
        if vote.outcome == "win"
        for _, why in win_pairs(vote)
        if why
    ]


def left_out_note(votes: pd.DataFrame, group: str | None = None, shown: int = 3) -> str:
    """`unpaired_wins` (of `group`'s votes if given) as a clause to append to a count: "" when
    none was left out."""
    left = unpaired_wins(votes if not group else votes[votes["group"] == group])
    if not left:
        return ""
    more = "; …" if len(left) > shown else ""
    return f" ({len(left)} pairs of win votes left out: {'; '.join(left[:shown])}{more})"


def pairs_to_battles(pairs: list[dict]) -> pd.DataFrame:
    """Preference pairs as the leaderboard's battles (the chosen answer's model beats the
    rejected one's), so that `leaderboard.compute_model_counts` says who the pairs are about:
    a model in most pairs that wins almost none (the base model, say) spends the class's votes
    on a preference nobody doubted."""
    if not pairs:
        raise ValueError("no preference pairs to count")
    rows = [
        (
            row.get("chosen_model") or UNKNOWN_MODEL,
            row.get("rejected_model") or UNKNOWN_MODEL,
            "model_a",
        )
        for row in pairs
    ]
    return pd.DataFrame(rows, columns=BATTLE_COLUMNS)
