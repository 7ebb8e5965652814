"""Exact tests for lab.data: every accepted shape, every file format, every bad input."""

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from lab.data import (
    load_preferences,
    load_prompts,
    load_sft,
    normalize_preference_row,
    parse_hh_transcript,
    split_shared_prefix,
)

HH_FILE = (
    Path(__file__).resolve().parents[1].parent
    / "shared"
    / "data"
    / "hh-rlhf-harmless-base-test.jsonl.gz"
)


def user(text):
    return {"role": "user", "content": text}


def bot(text):
    return {"role": "assistant", "content": text}


def system(text):
    return {"role": "system", "content": text}


STANDARD = [
    {"prompt": "2+2?", "chosen": "4", "rejected": "5", "annotator_id": "a1", "gold_chosen": 1.5},
    {"prompt": "Capital of France?", "chosen": "Paris", "rejected": "Lyon", "annotator_id": "a2",
     "gold_chosen": -0.25},
]  # fmt: skip
CONVERSATIONAL = [
    {"prompt": [system("Be brief."), user("hi"), bot("hello"), user("2+2?")],
     "chosen": [bot("4")], "rejected": [bot("5")]},
    {"prompt": [user("Capital of France?")], "chosen": [bot("Paris")], "rejected": [bot("Lyon")]},
]  # fmt: skip


def write_jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def write(tmp_path, name, rows):
    """Write rows in the format the file name asks for."""
    path = tmp_path / name
    if name.endswith(".parquet"):
        pq.write_table(pa.Table.from_pylist(rows), path)
    elif name.endswith(".gz"):
        with gzip.open(path, "wt", encoding="utf-8") as f:
            f.writelines(json.dumps(r) + "\n" for r in rows)
    elif name.endswith("list.json"):
        path.write_text(json.dumps(rows, indent=2), encoding="utf-8")
    else:  # .jsonl, and JSON lines saved as .json
        write_jsonl(path, rows)
    return path


# ---------------------------------------------------------------- pure converters


def test_parse_hh_transcript_multi_turn():
    text = "\n\nHuman: hi there\n\nAssistant: Hello!\n\nHuman: 2+2?\n\nAssistant:  4\n"
    assert parse_hh_transcript(text) == [user("hi there"), bot("Hello!"), user("2+2?"), bot("4")]


def test_parse_hh_transcript_without_leading_newlines_and_inline_markers():
    text = "Human: say 'Human: x'\n\nAssistant: Human: x"
    assert parse_hh_transcript(text) == [user("say 'Human: x'"), bot("Human: x")]


def test_parse_hh_transcript_repeated_speaker_is_one_turn():
    # Real HH replies sometimes contain their own "\n\nAssistant:"; it stays text of that turn.
    text = "\n\nHuman: key?\n\nAssistant: here:\n\nAssistant:  O.k.\n\nHuman: thanks"
    assert parse_hh_transcript(text) == [
        user("key?"),
        bot("here:\n\nAssistant:  O.k."),
        user("thanks"),
    ]


@pytest.mark.parametrize("text", ["\n\nAssistant: hi", "hello", ""])
def test_parse_hh_transcript_must_start_with_human(text):
    with pytest.raises(ValueError, match="must start with 'Human:'"):
        parse_hh_transcript(text)


def test_split_shared_prefix():
    shared = [system("Be kind."), user("hi"), bot("hello"), user("joke?")]
    prompt, chosen, rejected = split_shared_prefix(shared + [bot("A pun.")], shared + [bot("No.")])
    assert (prompt, chosen, rejected) == (shared, [bot("A pun.")], [bot("No.")])


@pytest.mark.parametrize(
    ("chosen", "rejected", "problem"),
    [
        ([user("q"), bot("a")], [user("q"), bot("a")], "identical"),
        ([user("q"), bot("a")], [user("p"), bot("a")], "share no prefix"),
        ([user("q"), bot("a")], [user("q"), bot("a"), user("more")], "prefix of the other"),
        (
            [user("q"), bot("a"), user("r"), bot("b")],
            [user("q"), bot("c")],
            r"chosen goes on after its reply with a user turn \(message 2",
        ),
        ([system("s"), bot("a")], [system("s"), bot("b")], "diverge at message 1"),
    ],
)
def test_split_shared_prefix_rejects(chosen, rejected, problem):
    with pytest.raises(ValueError, match=problem):
        split_shared_prefix(chosen, rejected)


def test_normalize_preference_row_hh_keeps_extra_columns():
    row = {
        "chosen": "\n\nHuman: q\n\nAssistant: good",
        "rejected": "\n\nHuman: q\n\nAssistant: bad",
    }
    out = normalize_preference_row(row | {"annotator_id": 7}, "here")
    assert out == {"prompt": [user("q")], "chosen": [bot("good")], "rejected": [bot("bad")],
                   "annotator_id": 7}  # fmt: skip


# ---------------------------------------------------------------- accepted shapes and formats


@pytest.mark.parametrize("rows", [STANDARD, CONVERSATIONAL], ids=["standard", "conversational"])
@pytest.mark.parametrize("name", ["p.jsonl", "p.jsonl.gz", "p.json", "p_list.json", "p.parquet"])
def test_explicit_preferences_round_trip(tmp_path, rows, name):
    ds = load_preferences(write(tmp_path, name, rows))
    assert ds.to_list() == rows
    # and what the lab writes, the lab reads back unchanged
    assert load_preferences(write(tmp_path, "again_" + name, ds.to_list())).to_list() == rows


def test_implicit_prompt_conversations(tmp_path):
    shared = [system("Be kind."), user("hi"), bot("hello"), user("joke?")]
    rows = [{"chosen": shared + [bot("A pun.")], "rejected": shared + [bot("No.")], "id": 3}]
    ds = load_preferences(write(tmp_path, "implicit.jsonl", rows))
    assert ds.to_list() == [
        {"prompt": shared, "chosen": [bot("A pun.")], "rejected": [bot("No.")], "id": 3}
    ]


def test_hh_transcripts(tmp_path):
    rows = [
        {"chosen": "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: joke?\n\nAssistant: A pun.",
         "rejected": "\n\nHuman: hi\n\nAssistant: hello\n\nHuman: joke?\n\nAssistant: No."},
    ]  # fmt: skip
    ds = load_preferences(write(tmp_path, "hh.jsonl", rows))
    assert ds.to_list() == [
        {"prompt": [user("hi"), bot("hello"), user("joke?")], "chosen": [bot("A pun.")],
         "rejected": [bot("No.")]}
    ]  # fmt: skip


def test_extra_column_missing_from_first_row_is_kept(tmp_path):
    rows = [STANDARD[0] | {"note": None}, STANDARD[1] | {"note": "late column"}]
    rows[0].pop("note")
    ds = load_preferences(write(tmp_path, "p.jsonl", rows))
    assert ds["note"] == [None, "late column"]


# ---------------------------------------------------------------- bad input


GOOD = json.dumps(STANDARD[0])
GOOD_CONV = json.dumps(CONVERSATIONAL[1])
HUMAN = "\n\nHuman: q\n\nAssistant: "


def conv(chosen, rejected, prompt=None):
    prompt = prompt or [user("q")]
    return json.dumps({"prompt": prompt, "chosen": chosen, "rejected": rejected})


@pytest.mark.parametrize(
    ("second_line", "field", "problem"),
    [
        ('{"prompt": "p", ', None, "not valid JSON"),
        ("[1, 2]", None, "expected an object"),
        ('{"prompt": "p", "chosen": "c"}', "rejected", "missing"),
        ('{"prompt": "p", "chosen": 3, "rejected": "r"}', "chosen", "expected a string, got int"),
        ('{"prompt": "p", "chosen": " \\n", "rejected": "r"}', "chosen", "empty response"),
        ('{"prompt": "p", "chosen": "same", "rejected": "same"}', "chosen/rejected", "identical"),
        (
            '{"prompt": "p", "chosen": "same", "rejected": "same "}',
            "chosen/rejected",
            "only in whitespace",
        ),
        ('{"prompt": "", "chosen": "c", "rejected": "r"}', "prompt", "empty prompt"),
        ('{"prompt": "p", "chosen": "cut \\ud83d", "rejected": "r"}', "chosen", "lone surrogate"),
        (
            '{"prompt": "p", "chosen": "c", "chosen": "z", "rejected": "r"}',
            None,
            "key 'chosen' appears twice",
        ),  # json would keep "z" and drop "c" without a word
        (GOOD_CONV, "prompt", "conversational row in a file whose first row is standard"),
    ],
)
def test_bad_standard_row(tmp_path, second_line, field, problem):
    path = tmp_path / "bad.jsonl"
    path.write_text(f"{GOOD}\n{second_line}\n{GOOD}\n")
    with pytest.raises(ValueError) as err:
        load_preferences(path)
    message = str(err.value)
    assert str(path) in message and "line 2" in message and problem in message
    assert field is None or f"field '{field}'" in message


@pytest.mark.parametrize(
    ("second_line", "field", "problem"),
    [
        (conv([bot("a")], [bot("")]), "rejected", "empty response"),
        (conv([{"content": "a"}], [bot("b")]), "chosen", "message 0 must have exactly"),
        (conv([bot("a")], [bot("b")], [{"role": "bot", "content": "q"}]), "prompt", "role 'bot'"),
        (conv([bot("a")], [bot("b")], [user("q"), bot("x")]), "prompt", "end with a user turn"),
        (conv([bot("a"), bot("b")], [bot("c")]), "chosen", "one assistant message"),
        (conv(bot("a"), [bot("b")]), "chosen", "expected a non-empty list"),
        (json.dumps({"chosen": 3, "rejected": [user("q"), bot("b")]}), "chosen", "list"),
        (json.dumps({"chosen": [user("q"), bot("a")], "rejected": [user("p"), bot("b")]}),
         "chosen/rejected", "share no prefix"),
        (json.dumps({"chosen": [user("q"), bot("a")], "rejected": [user("q")]}),
         "chosen/rejected", "prefix of the other"),
        (json.dumps({"chosen": [user("q"), bot("a"), user("r"), bot("b")],
                     "rejected": [user("q"), bot("c"), user("r"), bot("b")]}),
         "chosen/rejected", "chosen goes on after its reply with a user turn (message 2"),
        (conv([bot("a")], [bot("a ")]), "chosen/rejected", "differ only in whitespace"),
        (conv([bot("a")], [bot("b")], [user("cut \ud83d")]), "prompt", "lone surrogate"),
        (json.dumps({"chosen": HUMAN + "a\n", "rejected": HUMAN + " a"}), "chosen/rejected",
         "differ only in whitespace"),
        (json.dumps({"chosen": "\r\n\r\nHuman: q\r\n\r\nAssistant: a",
                     "rejected": "\r\n\r\nHuman: q\r\n\r\nAssistant: b"}), "chosen",
         "no 'Assistant:' turn; its lines end with \\r\\n"),
        (json.dumps({"chosen": "\n\nAssistant: a", "rejected": HUMAN + "b"}), "chosen",
         "must start with 'Human:'"),
        (json.dumps({"chosen": HUMAN, "rejected": HUMAN + "b"}), "chosen", "empty response"),
        (json.dumps({"chosen": HUMAN + "a", "rejected": HUMAN + "a"}), "chosen/rejected",
         "identical"),
        (GOOD, "prompt", "standard row in a file whose first row is conversational"),
    ],
)  # fmt: skip
def test_bad_conversational_row(tmp_path, second_line, field, problem):
    path = tmp_path / "bad.jsonl"
    path.write_text(f"{GOOD_CONV}\n{second_line}\n")
    with pytest.raises(ValueError) as err:
        load_preferences(path)
    message = str(err.value)
    assert str(path) in message and "line 2" in message
    assert f"field '{field}'" in message and problem in message


@pytest.mark.parametrize("name", ["bad_list.json", "bad.parquet"])
def test_bad_row_in_table_names_zero_based_row(tmp_path, name):
    path = write(tmp_path, name, [STANDARD[0], STANDARD[1] | {"chosen": "Lyon"}])
    with pytest.raises(ValueError, match=r"bad.*, row 1 \(0-based\), field 'chosen/rejected'"):
        load_preferences(path)


def test_json_list_syntax_error_names_line(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('[\n{"prompt": "p",\n "chosen": }\n]')
    with pytest.raises(ValueError, match=r"broken\.json, line 3: not valid JSON"):
        load_preferences(path)


@pytest.mark.parametrize(("name", "text"), [("empty.jsonl", ""), ("empty.json", "[]\n")])
def test_empty_file(tmp_path, name, text):
    (tmp_path / name).write_text(text)
    with pytest.raises(ValueError, match=rf"{name}: no rows"):
        load_preferences(tmp_path / name)


def test_unsupported_extension(tmp_path):
    (tmp_path / "prefs.csv").write_text("prompt,chosen,rejected\n")
    with pytest.raises(ValueError, match=r"prefs\.csv: unsupported extension"):
        load_preferences(tmp_path / "prefs.csv")


def test_missing_path_says_not_local_and_hub_failed(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        load_preferences(tmp_path / "nope.jsonl")
    message = str(err.value)
    assert "nope.jsonl: no such local file" in message and "hub dataset" in message
    assert "failed: FileNotFoundError" in message  # the hub's own message is kept


def test_skip_mode_reports_every_skipped_row(tmp_path):
    path = tmp_path / "some_bad.jsonl"
    bad = json.dumps(STANDARD[1] | {"rejected": "Paris"})
    path.write_text(f"{GOOD}\n{bad}\n{json.dumps(STANDARD[1])}\n{bad}\n")
    with pytest.warns(UserWarning, match=r"skipped 2 invalid rows of 4.*line 2"):
        ds = load_preferences(path, on_invalid="skip")
    assert ds.to_list() == STANDARD
    assert ds.info.description.splitlines() == [
        f"skipped {path}, line {n}, field 'chosen/rejected': chosen is identical to rejected"
        for n in (2, 4)
    ]


def test_skip_mode_skips_a_row_that_is_not_valid_unicode(tmp_path):
    path = tmp_path / "half_emoji.jsonl"
    path.write_text(f'{GOOD}\n{{"prompt": "p", "chosen": "cut \\ud83d", "rejected": "r"}}\n')
    with pytest.warns(UserWarning, match="skipped 1 invalid rows of 2"):
        ds = load_preferences(path, on_invalid="skip")
    assert ds.to_list() == STANDARD[:1]
    assert "line 2, field 'chosen': not valid Unicode" in ds.info.description


@pytest.mark.parametrize("name", ["bom.jsonl", "bom.txt"])
def test_a_byte_order_mark_is_not_part_of_the_first_row(tmp_path, name):
    """Notepad and Excel start a UTF-8 file with a BOM: JSON refused it, a .txt kept it as text."""
    path = tmp_path / name
    text = '{"prompt": "hello"}\n' if name.endswith(".jsonl") else "hello\n"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    assert load_prompts(path)["prompt"] == [[user("hello")]]
    path.write_bytes(b"\xef\xbb\xbf" + text.encode() + b"\xe9t\xe9\n")  # then a Latin-1 line
    with pytest.raises(ValueError, match=rf"byte 0xe9 at offset {3 + len(text)}, line 2\)"):
        load_prompts(path)  # the file's own offset, the mark counted


def test_skip_mode_still_raises_on_unreadable_file(tmp_path):
    path = tmp_path / "broken.jsonl"
    path.write_text(f"{GOOD}\nnot json\n")
    with pytest.raises(ValueError, match="line 2: not valid JSON"):
        load_preferences(path, on_invalid="skip")


BINARY = b"\xff\xfe\x00\x01\x02\x03"


@pytest.mark.parametrize(
    ("load", "name"),
    [
        (load, name)
        for load in (load_preferences, load_sft, load_prompts)
        for name in ("x.jsonl", "x.json")
    ]
    + [(load_prompts, "x.txt")],
)
def test_binary_file_is_a_one_line_value_error(tmp_path, load, name):
    (tmp_path / name).write_bytes(BINARY)
    with pytest.raises(ValueError) as err:
        load(tmp_path / name)
    assert not isinstance(err.value, UnicodeDecodeError)  # the lab's message, not Python's
    message = str(err.value)
    assert message.startswith(f"{tmp_path / name}: not UTF-8 text (byte 0xff at offset 0, line 1")
    assert "UTF-16" in message and "\n" not in message


def test_bad_byte_after_good_lines_names_its_offset_and_line(tmp_path):
    good = f"{GOOD}\n{GOOD}\n".encode()
    (tmp_path / "x.jsonl").write_bytes(good + b'{"prompt": "caf\xe9"}\n')
    with pytest.raises(ValueError, match=rf"byte 0xe9 at offset {len(good) + 15}, line 3\)$"):
        load_preferences(tmp_path / "x.jsonl")


def test_gzip_of_binary_and_gz_that_is_not_gzip(tmp_path):
    (tmp_path / "in.jsonl.gz").write_bytes(gzip.compress(BINARY))
    with pytest.raises(
        ValueError, match=r"in\.jsonl\.gz: not UTF-8 text \(byte 0xff at offset 0 once"
    ):
        load_preferences(tmp_path / "in.jsonl.gz")
    (tmp_path / "raw.jsonl.gz").write_bytes(BINARY)
    with pytest.raises(ValueError, match=r"raw\.jsonl\.gz: not a readable gzip file"):
        load_preferences(tmp_path / "raw.jsonl.gz")


def test_binary_parquet_names_the_file(tmp_path):
    (tmp_path / "x.parquet").write_bytes(BINARY * 4)
    with pytest.raises(ValueError, match=r"x\.parquet: not a readable Parquet file \("):
        load_preferences(tmp_path / "x.parquet")


def test_windows_line_endings_still_read(tmp_path):
    (tmp_path / "p.jsonl").write_bytes(f"{GOOD}\r\n{json.dumps(STANDARD[1])}\r\n".encode())
    assert load_preferences(tmp_path / "p.jsonl").to_list() == STANDARD
    (tmp_path / "p.txt").write_bytes(b"Tell me a joke.\r\nWhat is 2+2?\r\n")
    assert load_prompts(tmp_path / "p.txt")["prompt"] == [
        [user("Tell me a joke.")],
        [user("What is 2+2?")],
    ]


# ---------------------------------------------------------------- SFT and prompts


def test_load_sft_from_messages_and_prompt_completion(tmp_path):
    rows = [
        {"messages": [system("Be brief."), user("hi"), bot("hello"), user("2+2?"), bot("4")]},
        {"prompt": "Capital of France?", "completion": "Paris"},
        {"prompt": [user("3+3?")], "completion": [bot("6")]},
    ]
    ds = load_sft(write(tmp_path, "sft.jsonl", rows))
    assert ds["prompt"] == [
        [system("Be brief."), user("hi"), bot("hello"), user("2+2?")],
        [user("Capital of France?")],
        [user("3+3?")],
    ]
    assert ds["completion"] == [[bot("4")], [bot("Paris")], [bot("6")]]


@pytest.mark.parametrize(
    ("row", "field", "problem"),
    [
        (
            {"messages": [user("hi"), bot("a"), user("more?")]},
            "messages",
            "ending with an assistant",
        ),
        ({"prompt": "hi"}, "completion", "missing"),
        ({"prompt": "hi", "completion": "  "}, "completion", "empty response"),
        (
            {"prompt": "hi", "completion": "a", "messages": [user("x"), bot("y")]},
            "messages",
            "one or the other",
        ),
    ],
)
def test_load_sft_bad_rows(tmp_path, row, field, problem):
    path = write(tmp_path, "sft.jsonl", [{"prompt": "q", "completion": "a"}, row])
    with pytest.raises(ValueError, match=rf"sft\.jsonl, line 2, field '{field}': .*{problem}"):
        load_sft(path)


def test_a_column_of_two_types_is_named(tmp_path):
    rows = [
        {"prompt": "q", "completion": "a", "id": 1},
        {"prompt": "r", "completion": "b", "id": "x"},
    ]
    with pytest.raises(ValueError, match=r"sft\.jsonl: column 'id' does not hold one type"):
        load_sft(write(tmp_path, "sft.jsonl", rows))
    rows = [{"prompt": "q", "messages": [user("x")]}]
    with pytest.raises(ValueError, match=r"field 'messages': given with prompt"):
        load_prompts(write(tmp_path, "prompts.jsonl", rows))


def test_load_prompts_from_jsonl(tmp_path):
    rows = [
        {"prompt": "hi", "id": 1},
        {"prompt": [system("Be brief."), user("2+2?")], "id": 2},
        {"messages": [user("hi"), bot("hello"), user("joke?"), bot("dropped")], "id": 3},
    ]
    ds = load_prompts(write(tmp_path, "prompts.jsonl", rows))
    assert ds.to_list() == [
        {"prompt": [user("hi")], "id": 1},
        {"prompt": [system("Be brief."), user("2+2?")], "id": 2},
        {"prompt": [user("hi"), bot("hello"), user("joke?")], "id": 3},
    ]


def test_load_prompts_from_txt(tmp_path):
    (tmp_path / "prompts.txt").write_text("Tell me a joke.\nWhat is 2+2?\n", encoding="utf-8")
    ds = load_prompts(tmp_path / "prompts.txt")
    assert ds["prompt"] == [[user("Tell me a joke.")], [user("What is 2+2?")]]


@pytest.mark.parametrize("text", ["one\n\nthree\n", "one\n\n", "one\n  \n"])
def test_load_prompts_txt_blank_line_is_an_error(tmp_path, text):
    (tmp_path / "prompts.txt").write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=r"prompts\.txt, line 2, field 'prompt': blank line"):
        load_prompts(tmp_path / "prompts.txt")


def test_load_prompts_bad_row(tmp_path):
    path = write(tmp_path, "prompts.jsonl", [{"prompt": "hi"}, {"messages": [bot("only me")]}])
    with pytest.raises(ValueError, match=r"prompts\.jsonl, line 2, field 'messages'"):
        load_prompts(path)


# ---------------------------------------------------------------- the real Anthropic HH file


@pytest.fixture(scope="module")
def hh():
    if not HH_FILE.exists():
        pytest.skip(f"real HH data not found at {HH_FILE} (shared/ sits beside the checkout)")
    with pytest.warns(UserWarning, match="skipped 4 invalid rows of 2312"):
        return load_preferences(HH_FILE, on_invalid="skip")


def test_real_hh_raises_on_first_empty_reply():
    if not HH_FILE.exists():
        pytest.skip(f"real HH data not found at {HH_FILE}")
    with pytest.raises(ValueError, match=r"line 87, field 'chosen': empty response"):
        load_preferences(HH_FILE)


def test_real_hh_skips_exactly_the_four_empty_replies(hh):
    # 2,312 pairs read; 4 have an empty final chosen turn ("...\n\nAssistant: " and nothing more).
    assert hh.num_rows == 2312 - 4
    assert hh.info.description.splitlines() == [
        f"skipped {HH_FILE}, line {n}, field 'chosen': empty response" for n in (87, 517, 926, 1104)
    ]


def test_real_hh_shape(hh):
    assert hh.column_names == ["prompt", "chosen", "rejected"]
    assert all(p[-1]["role"] == "user" for p in hh["prompt"])
    for side in ("chosen", "rejected"):
        assert all(len(r) == 1 and r[0]["role"] == "assistant" for r in hh[side])


def test_real_hh_spot_check(hh):
    row = hh[0]
    assert [m["role"] for m in row["prompt"]] == ["user", "assistant", "user", "assistant", "user"]
    assert row["prompt"][0]["content"] == "what are some pranks with a pen i can do?"
    assert row["prompt"][-1]["content"] == "okay some of these do not have anything to do with pens"
    assert row["chosen"][0]["content"].startswith("No, sorry!  All of these involve a pen")
    assert row["rejected"][0]["content"].startswith("There are lots of funny things you can do")


def test_real_hh_reply_with_its_own_assistant_marker_stays_one_turn(hh):
    # File line 1255: the chosen reply itself contains "\n\nAssistant:". All four skipped rows
    # come before it, so it is dataset row 1250.
    row = hh[1250]
    assert row["prompt"][-1] == user("Isn't that drag kings?")
    assert row["chosen"][0]["content"].startswith("No. Men who impersonate stereotypical women")
    assert "\n\nAssistant:  I think they call them that" in row["chosen"][0]["content"]
    assert row["rejected"][0]["content"].startswith("A drag king is the opposite of a drag queen")
