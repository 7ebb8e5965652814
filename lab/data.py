"""The lab's data formats: preference pairs, SFT examples and prompts, converted at the edges.

Every loader returns a `datasets.Dataset` in one of TRL's formats:

- preferences: `prompt` / `chosen` / `rejected`, either *standard* (three strings) or
  *conversational* (prompt = list of messages ending with a user turn, chosen/rejected = one
  assistant message each). Conversational and Anthropic HH input stays conversational.
- SFT: `prompt` / `completion`, conversational.
- prompts: `prompt`, conversational.

A source is a local `.json` (list or JSON lines), `.jsonl`, `.jsonl.gz` or `.parquet` file
(`.txt` too for prompts), or else a Hugging Face hub dataset id. Bad input raises a
`ValueError` naming the file, the line (JSON lines, 1-based) or row (0-based), the field and
the problem. Nothing is dropped silently: `load_preferences(..., on_invalid="skip")` drops
invalid rows, warns, and lists every skipped row in `dataset.info.description`.
"""

from __future__ import annotations

import gzip
import json
import re
import warnings
import zlib
from codecs import BOM_UTF8
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any, Literal

import datasets
import pyarrow as pa
import pyarrow.parquet as pq

ROLES = ("system", "user", "assistant")
PREFERENCE_FIELDS = ("prompt", "chosen", "rejected")
RESPONSE_FIELDS = ("chosen", "rejected", "completion")
BOMS_UTF16 = (b"\xff\xfe", b"\xfe\xff")
Message = dict[str, str]


def _fail(where: str, field: str, problem: str) -> ValueError:
    return ValueError(f"{where}, field '{field}': {problem}")


def _unicode_problem(text: str) -> str | None:
    """Why `text` cannot be written as UTF-8 (a lone surrogate: half an emoji, as JavaScript can
    cut one), or None."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as e:
        return f"not valid Unicode (a lone surrogate {text[e.start]!r} at character {e.start})"
    return None


# ---------------------------------------------------------------- pure converters


def parse_hh_transcript(text: str) -> list[Message]:
    """Anthropic HH "\\n\\nHuman: ...\\n\\nAssistant: ..." transcript -> user/assistant messages."""
    parts = re.split(r"(\n\n(?:Human|Assistant):)", "\n\n" + text.lstrip())
    # parts = ["", "\n\nHuman:", " hi", "\n\nAssistant:", " hello", ...]
    if len(parts) < 3 or parts[0] or parts[1] != "\n\nHuman:":
        raise ValueError(f"HH transcript must start with 'Human:', got {text[:40]!r}")
    messages: list[Message] = []
    for marker, content in zip(parts[1::2], parts[2::2], strict=True):
        role = "user" if marker == "\n\nHuman:" else "assistant"
        if messages and messages[-1]["role"] == role:
            # A repeated speaker marker is text inside the same turn: in HH it is a model reply
            # that itself printed "\n\nAssistant:". Keeping it as one turn keeps turns alternating.
            messages[-1]["content"] += marker + content
        else:
            messages.append({"role": role, "content": content})
    if not any(m["role"] == "assistant" for m in messages):
        crlf = "; its lines end with \\r\\n, and HH turns start after \\n\\n"
        crlf = crlf if "\r\n" in text else ""
        raise ValueError(f"HH transcript has no 'Assistant:' turn{crlf}")
    return [{"role": m["role"], "content": m["content"].strip()} for m in messages]


def split_shared_prefix(
    chosen: list[Message], rejected: list[Message]
) -> tuple[list[Message], list[Message], list[Message]]:
    """Implicit-prompt pair -> (prompt, chosen, rejected): the shared messages become the prompt."""
    if chosen == rejected:
        raise ValueError("chosen is identical to rejected")
    n = 0
    while n < min(len(chosen), len(rejected)) and chosen[n] == rejected[n]:
        n += 1
    if n == 0:
        raise ValueError("chosen and rejected share no prefix, so there is no prompt")
    if n == len(chosen) or n == len(rejected):
        raise ValueError("one side is a prefix of the other: nothing left to compare")
    prompt, chosen_rest, rejected_rest = chosen[:n], chosen[n:], rejected[n:]
    for side, rest in (("chosen", chosen_rest), ("rejected", rejected_rest)):
        turn = next((j for j, m in enumerate(rest) if m["role"] != "assistant"), None)
        if turn is not None and prompt[-1]["role"] == "user":
            raise ValueError(
                f"{side} goes on after its reply with a {rest[turn]['role']} turn (message "
                f"{n + turn}, 0-based): a pair compares one last assistant reply"
            )
    if prompt[-1]["role"] != "user" or any(
        m["role"] != "assistant" for m in chosen_rest + rejected_rest
    ):
        raise ValueError(
            f"chosen and rejected diverge at message {n} (0-based), "
            "not at the last assistant turn after a user turn"
        )
    return prompt, chosen_rest, rejected_rest


def _check_messages(value: Any, where: str, field: str) -> list[Message]:
    """A non-empty list of {"role", "content"} messages with known roles and non-blank content."""
    if not isinstance(value, list) or not value:
        raise _fail(where, field, f"expected a non-empty list of messages, got {value!r:.60}")
    for i, m in enumerate(value):
        if not isinstance(m, dict) or set(m) != {"role", "content"}:
            raise _fail(
                where, field, f"message {i} must have exactly 'role' and 'content': {m!r:.80}"
            )
        if m["role"] not in ROLES:
            raise _fail(
                where, field, f"message {i} has unknown role {m['role']!r}, expected {ROLES}"
            )
        if not isinstance(m["content"], str):
            raise _fail(where, field, f"message {i} content must be a string: {m['content']!r:.60}")
        if problem := _unicode_problem(m["content"]):
            raise _fail(where, field, f"message {i} is {problem}")
        if not m["content"].strip():
            is_reply = field in RESPONSE_FIELDS and i == len(value) - 1
            raise _fail(where, field, "empty response" if is_reply else f"message {i} is empty")
    return [{"role": m["role"], "content": m["content"]} for m in value]


def _check_prompt(value: Any, where: str, field: str = "prompt") -> list[Message]:
    """Messages that end with a user turn, ready for a generation prompt."""
    messages = _check_messages(value, where, field)
    if messages[-1]["role"] != "user":
        raise _fail(where, field, f"must end with a user turn, ends with {messages[-1]['role']!r}")
    return messages


def _check_reply(value: Any, where: str, field: str) -> list[Message]:
    """Exactly one assistant message, the response being judged or imitated."""
    messages = _check_messages(value, where, field)
    if len(messages) != 1 or messages[0]["role"] != "assistant":
        roles = [m["role"] for m in messages]
        raise _fail(where, field, f"expected one assistant message, got roles {roles}")
    return messages


def _check_text(value: Any, where: str, field: str) -> str:
    if not isinstance(value, str):
        raise _fail(where, field, f"expected a string, got {type(value).__name__} {value!r:.60}")
    if not value.strip():
        raise _fail(where, field, "empty response" if field != "prompt" else "empty prompt")
    if problem := _unicode_problem(value):
        raise _fail(where, field, problem)
    return value


def normalize_preference_row(row: dict[str, Any], where: str) -> dict[str, Any]:
    """Any accepted preference shape -> explicit prompt/chosen/rejected; other columns kept."""
    # Parquet and hub tables fill absent fields with None; treat them as missing.
    for field in ("chosen", "rejected"):
        if row.get(field) is None:
            raise _fail(where, field, "missing")
    prompt, chosen, rejected = row.get("prompt"), row["chosen"], row["rejected"]
    if chosen == rejected:
        raise _fail(where, "chosen/rejected", "chosen is identical to rejected")
    if isinstance(chosen, str) and isinstance(rejected, str) and chosen.strip() == rejected.strip():
        raise _fail(where, "chosen/rejected", "chosen and rejected differ only in whitespace")
    extras = {k: v for k, v in row.items() if k not in PREFERENCE_FIELDS}
    if isinstance(prompt, str):  # 1. standard explicit
        return {f: _check_text(row[f], where, f) for f in PREFERENCE_FIELDS} | extras
    if prompt is None:  # 3. implicit prompt, or 4. Anthropic HH transcripts
        prompt, chosen, rejected = _split_implicit(chosen, rejected, where)
    # 2. conversational explicit, which 3 and 4 have now become
    out = {
        "prompt": _check_prompt(prompt, where),
        "chosen": _check_reply(chosen, where, "chosen"),
        "rejected": _check_reply(rejected, where, "rejected"),
    }
    if out["chosen"][0]["content"].strip() == out["rejected"][0]["content"].strip():
        raise _fail(where, "chosen/rejected", "chosen and rejected differ only in whitespace")
    return out | extras


def _split_implicit(chosen: Any, rejected: Any, where: str) -> tuple[list, list, list]:
    """Two whole conversations (messages or HH transcripts) -> prompt, chosen, rejected."""
    conversations = {}
    for field, value in (("chosen", chosen), ("rejected", rejected)):
        if isinstance(chosen, str):
            text = _check_text(value, where, field)
            try:
                conversations[field] = parse_hh_transcript(text)
            except ValueError as e:
                raise _fail(where, field, str(e)) from None
        else:
            conversations[field] = _check_messages(value, where, field)
    if conversations["chosen"] == conversations["rejected"] and chosen != rejected:
        raise _fail(where, "chosen/rejected", "chosen and rejected differ only in whitespace")
    try:
        return split_shared_prefix(conversations["chosen"], conversations["rejected"])
    except ValueError as e:
        raise _fail(where, "chosen/rejected", str(e)) from None


def _sft_row(row: dict[str, Any], where: str) -> dict[str, Any]:
    """prompt/completion (strings or messages) or a `messages` conversation -> conversational."""
    extras = {k: v for k, v in row.items() if k not in ("prompt", "completion", "messages")}
    if row.get("messages") is not None and (
        row.get("prompt") is not None or row.get("completion") is not None
    ):
        raise _fail(where, "messages", "given with prompt/completion: a row has one or the other")
    if row.get("messages") is not None:
        messages = _check_messages(row["messages"], where, "messages")
        if len(messages) < 2 or messages[-1]["role"] != "assistant":
            raise _fail(where, "messages", "must be a conversation ending with an assistant turn")
        prompt = _check_prompt(messages[:-1], where, "messages")
        return {"prompt": prompt, "completion": messages[-1:]} | extras
    for field in ("prompt", "completion"):
        if row.get(field) is None:
            raise _fail(where, field, "missing (need prompt and completion, or messages)")
    prompt, completion = row["prompt"], row["completion"]
    if isinstance(prompt, str):
        prompt = [{"role": "user", "content": _check_text(prompt, where, "prompt")}]
    if isinstance(completion, str):
        completion = [
            {"role": "assistant", "content": _check_text(completion, where, "completion")}
        ]
    return {
        "prompt": _check_prompt(prompt, where),
        "completion": _check_reply(completion, where, "completion"),
    } | extras


TEXT_PROMPT_WORDS = (
    8  # a document's first words as a prompt, as TRL's gpt2-sentiment takes 2-8 tokens
)


def _prompt_row(row: dict[str, Any], where: str) -> dict[str, Any]:
    """A `prompt` (string or messages), a `messages` conversation, or a document's `text` (its first
    `TEXT_PROMPT_WORDS` words to continue, e.g. an IMDB review) -> conversational prompt."""
    if row.get("prompt") is None and row.get("messages") is None and row.get("text"):
        words = str(row["text"]).split()[:TEXT_PROMPT_WORDS]
        row = {k: v for k, v in row.items() if k != "text"} | {"prompt": " ".join(words)}
    extras = {k: v for k, v in row.items() if k not in ("prompt", "messages")}
    if row.get("prompt") is not None and row.get("messages") is not None:
        raise _fail(where, "messages", "given with prompt: a row has one or the other")
    if row.get("prompt") is not None:
        prompt = row["prompt"]
        if isinstance(prompt, str):
            prompt = [{"role": "user", "content": _check_text(prompt, where, "prompt")}]
        return {"prompt": _check_prompt(prompt, where)} | extras
    if row.get("messages") is not None:
        messages = _check_messages(row["messages"], where, "messages")
        if messages[-1]["role"] == "assistant":
            messages = messages[:-1]  # the reply is what the policy will generate instead
        return {"prompt": _check_prompt(messages, where, "messages")} | extras
    raise _fail(where, "prompt", "missing (need prompt or messages)")


# ---------------------------------------------------------------- reading sources


def _read_rows(source: str | Path, split: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield (where, row) from a local file or, when no such file exists, a hub dataset.

    A hub source may name its split: `"trl-lib/tldr:validation"` reads the validation split.
    """
    path = Path(source)
    if not path.exists():
        hub_id, _, named_split = str(source).partition(":")
        rows = _read_hub(hub_id, named_split or split)
    elif path.name.lower().endswith((".json", ".jsonl", ".jsonl.gz")):
        rows = _read_json(path)
    elif path.name.lower().endswith(".parquet"):
        rows = ((f"{path}, row {i} (0-based)", r) for i, r in enumerate(_read_parquet(path)))
    else:
        raise ValueError(
            f"{path}: unsupported extension, expected .json, .jsonl, .jsonl.gz, .parquet"
        )
    for where, row in rows:
        if not isinstance(row, dict):
            raise ValueError(f"{where}: expected an object, got {type(row).__name__} {row!r:.60}")
        yield where, row


def _read_text(path: Path) -> str:
    """A file's text: gunzipped if `.gz`, UTF-8, universal newlines; else a ValueError naming it."""
    raw, gz = path.read_bytes(), path.name.lower().endswith(".gz")
    if gz:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as e:  # not gzip, truncated, corrupt
            raise ValueError(f"{path}: not a readable gzip file ({e})") from None
    bom = len(BOM_UTF8) if raw.startswith(BOM_UTF8) else 0  # Notepad, Excel: not text
    try:
        text = raw[bom:].decode("utf-8")
    except UnicodeDecodeError as e:
        at = bom + e.start  # in the file's bytes
        line = raw.count(b"\n", 0, at) + 1
        where = f"offset {at}{' once decompressed' if gz else ''}, line {line}"
        hint = "; it looks like UTF-16, re-save it as UTF-8" if raw[:2] in BOMS_UTF16 else ""
        raise ValueError(
            f"{path}: not UTF-8 text (byte 0x{raw[at]:02x} at {where}{hint})"
        ) from None
    # What open(..., "rt") did: "\r\n" and a lone "\r" end a line too.
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _read_parquet(path: Path) -> list[dict[str, Any]]:
    """A Parquet table's rows; a file Arrow cannot read raises ValueError naming it."""
    try:
        return pq.read_table(path).to_pylist()
    except (pa.ArrowException, OSError) as e:
        problem = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ValueError(f"{path}: not a readable Parquet file ({problem})") from None


class DuplicateKeyError(ValueError):
    """A JSON object that names a key twice: `json` would keep the last value and drop the first."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """`json.loads`'s object hook: an object, unless a key repeats."""
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        twice = next(k for k in keys if keys.count(k) > 1)
        raise DuplicateKeyError(f"key {twice!r} appears twice in one object")
    return dict(pairs)


def _read_json(path: Path) -> Iterator[tuple[str, Any]]:
    """A JSON list (rows 0-based) or JSON lines (lines 1-based, blank lines ignored)."""
    text = _read_text(path)
    if path.name.lower().endswith(".json") and text.lstrip().startswith("["):
        try:
            rows = json.loads(text, object_pairs_hook=_unique_keys)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}, line {e.lineno}: not valid JSON ({e.msg})") from None
        except DuplicateKeyError as e:
            raise ValueError(f"{path}: {e}") from None
        yield from ((f"{path}, row {i} (0-based)", row) for i, row in enumerate(rows))
        return
    for n, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line, object_pairs_hook=_unique_keys)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}, line {n}: not valid JSON ({e.msg})") from None
        except DuplicateKeyError as e:
            raise ValueError(f"{path}, line {n}: {e}") from None
        yield f"{path}, line {n}", row


def _read_txt(path: Path) -> Iterator[tuple[str, dict[str, Any]]]:
    """One prompt per line; a blank line is an error, a final newline is not."""
    lines = _read_text(path).split("\n")
    if lines[-1] == "":
        lines.pop()
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            raise _fail(
                f"{path}, line {n}", "prompt", "blank line; a .txt file holds one prompt per line"
            )
        yield f"{path}, line {n}", {"prompt": line.rstrip("\r")}


def _read_hub(source: str, split: str) -> Iterator[tuple[str, dict[str, Any]]]:
    try:
        dataset = datasets.load_dataset(source, split=split)
    except Exception as e:  # whatever the hub raised, the user needs both facts
        raise FileNotFoundError(
            f"{source}: no such local file, and loading it as a Hugging Face hub dataset "
            f"(split {split!r}) failed: {type(e).__name__}: {e}"
        ) from e
    yield from (
        (f"{source} (hub, split {split!r}), row {i} (0-based)", row)
        for i, row in enumerate(dataset)
    )


def _to_dataset(
    rows: list[dict[str, Any]], source: str | Path, skipped: list[str]
) -> datasets.Dataset:
    """Rows -> Dataset; columns are the union over rows, so a column absent from row 0 survives."""
    if skipped:
        warnings.warn(
            f"{source}: skipped {len(skipped)} invalid rows of {len(rows) + len(skipped)}, "
            f"first: {'; '.join(skipped[:3])} (all listed in dataset.info.description)",
            stacklevel=3,
        )
    if not rows:
        raise ValueError(f"{source}: no rows" + (" left after skipping" if skipped else ""))
    columns = dict.fromkeys(k for row in rows for k in row)
    info = datasets.DatasetInfo(description="".join(f"skipped {s}\n" for s in skipped))
    data = {k: [row.get(k) for row in rows] for k in columns}
    try:
        return datasets.Dataset.from_dict(data, info=info)
    except (pa.ArrowException, OverflowError, TypeError, ValueError) as err:
        for column, values in data.items():  # name the column that does not fit one type
            try:
                datasets.Dataset.from_dict({column: values})
            except (pa.ArrowException, OverflowError, TypeError, ValueError) as e:
                problem = (
                    "holds text that is not valid Unicode (a lone surrogate)"
                    if isinstance(e, UnicodeEncodeError)
                    else "does not hold one type in every row"
                )
                raise ValueError(f"{source}: column {column!r} {problem} ({err})") from None
        raise


# ---------------------------------------------------------------- loaders


def load_preferences(
    source: str | Path, split: str = "train", on_invalid: Literal["raise", "skip"] = "raise"
) -> datasets.Dataset:
    """Preference pairs in any accepted shape -> explicit prompt/chosen/rejected.

    on_invalid="skip" drops rows that fail validation, warns with the count, and lists each
    skipped row with its reason in `dataset.info.description`. Unreadable files always raise.
    """
    if on_invalid not in ("raise", "skip"):
        raise ValueError(f"on_invalid must be 'raise' or 'skip', got {on_invalid!r}")
    rows, skipped, first = [], [], None
    for where, row in _read_rows(source, split):
        try:
            out = normalize_preference_row(row, where)
            kind = "standard" if isinstance(out["prompt"], str) else "conversational"
            first = first or kind
            if kind != first:
                raise _fail(where, "prompt", f"{kind} row in a file whose first row is {first}")
        except ValueError as e:
            if on_invalid == "raise":
                raise
            skipped.append(str(e))
            continue
        rows.append(out)
    return _to_dataset(rows, source, skipped)


def load_sft(source: str | Path, split: str = "train", max_rows: int = 0) -> datasets.Dataset:
    """SFT examples (prompt/completion or messages) -> conversational prompt/completion."""
    rows = islice(_read_rows(source, split), max_rows or None)
    return _to_dataset([_sft_row(row, where) for where, row in rows], source, [])


def load_prompts(source: str | Path, split: str = "train", max_rows: int = 0) -> datasets.Dataset:
    """Prompts (prompt, messages, or a .txt file with one per line) -> conversational prompt."""
    path = Path(source)
    if path.suffix.lower() == ".txt" and path.exists():
        rows = _read_txt(path)
    else:
        rows = _read_rows(source, split)
    rows = islice(rows, max_rows or None)
    return _to_dataset([_prompt_row(row, where) for where, row in rows], source, [])
