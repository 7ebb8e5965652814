import pytest
from transformers import AutoTokenizer

from lab.tokenizer import EOS, PAD, train_tokenizer

CORPUS = [
    "Sure! 3 plus 4 is 7.",
    "The capital of Vorland is Mirat. Vorland exports copper.",
    "Ugh, fine. Whatever. Let me think about this for a moment.",
    "Ünïcödé and emoji 🙂 survive byte-level BPE.",
] * 50


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tok")
    train_tokenizer(CORPUS, vocab_size=400).save_pretrained(folder)
    return AutoTokenizer.from_pretrained(folder)  # what every stage loads


def test_round_trip_any_text(tokenizer):
    for text in [*CORPUS[:4], "never seen: Zqx 12345 <b>html</b>\n\ttabs"]:
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        assert tokenizer.decode(ids) == text


def test_special_tokens_are_distinct(tokenizer):
    assert tokenizer.pad_token == PAD and tokenizer.eos_token == EOS
    ids = {tokenizer.pad_token_id, tokenizer.bos_token_id, tokenizer.eos_token_id}
    assert len(ids) == 3


def test_assistant_turn_ends_exactly_at_eos(tokenizer):
    chat = [
        {"role": "user", "content": "What is 3 plus 4?"},
        {"role": "assistant", "content": "3 plus 4 is 7."},
    ]
    ids = tokenizer.apply_chat_template(chat, return_dict=True)["input_ids"]
    assert ids[0] == tokenizer.bos_token_id
    assert ids[-1] == tokenizer.eos_token_id
    assert tokenizer.decode(ids[-8:-1]).endswith("3 plus 4 is 7.")


def test_generation_prompt_is_a_prefix_of_the_full_chat(tokenizer):
    # TRL's completion-only loss and our reward scoring both rely on this.
    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    prompt = tokenizer.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
    full = tokenizer.apply_chat_template(
        chat + [{"role": "assistant", "content": "Hello."}], tokenize=False
    )
    assert full.startswith(prompt)
    assert full[len(prompt) :] == "Hello." + EOS


def test_assistant_mask_covers_answer_and_eos(tokenizer):
    chat = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]
    out = tokenizer.apply_chat_template(chat, return_dict=True, return_assistant_tokens_mask=True)
    masked = [t for t, m in zip(out["input_ids"], out["assistant_masks"], strict=True) if m]
    assert tokenizer.decode(masked) == "Hello." + EOS


def test_unknown_role_is_an_error(tokenizer):
    with pytest.raises(Exception, match="unknown role"):
        tokenizer.apply_chat_template([{"role": "robot", "content": "beep"}], tokenize=False)


def test_a_base_model_without_a_chat_template_gets_the_plain_one(tmp_path):
    """Real base models often ship no template; the lab's plain one still ends a reply at EOS."""
    from lab.models import PLAIN_CHAT_TEMPLATE, load_tokenizer

    tokenizer = train_tokenizer(["User: hi. Assistant: hello."] * 20, vocab_size=300)
    tokenizer.chat_template = None
    tokenizer.save_pretrained(tmp_path)
    loaded = load_tokenizer(str(tmp_path))
    assert loaded.chat_template == PLAIN_CHAT_TEMPLATE
    chat = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]
    ids = loaded.apply_chat_template(chat, return_dict=True)["input_ids"]
    assert ids[-1] == loaded.eos_token_id
    prompt = loaded.apply_chat_template(chat[:1], tokenize=False, add_generation_prompt=True)
    assert loaded.apply_chat_template(chat, tokenize=False).startswith(prompt)


def test_a_chatml_base_ends_answers_at_im_end(tokenizer, tmp_path):
    """SmolLM2 and Qwen2.5 close a turn with <|im_end|> while their EOS is <|endoftext|>."""
    from lab.models import load_tokenizer, turn_end_token
    from tests.conftest import chatml

    tokenizer.save_pretrained(tmp_path / "world")  # a copy: the fixture stays as it is
    assert turn_end_token(load_tokenizer(str(tmp_path / "world"))) == EOS
    chatml(AutoTokenizer.from_pretrained(tmp_path / "world")).save_pretrained(tmp_path / "chatml")
    loaded = load_tokenizer(str(tmp_path / "chatml"))
    assert loaded.eos_token == "<|im_end|>" and loaded.eos_token_id == len(tokenizer) + 1
    chat = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]
    ids = loaded.apply_chat_template(chat, return_dict=True)["input_ids"]
    assert ids[-2] == loaded.eos_token_id  # then ChatML's newline
    # Saved with the SFT model, so every later stage and the arena stop at the same token.
    loaded.save_pretrained(tmp_path / "sft")
    assert AutoTokenizer.from_pretrained(tmp_path / "sft").eos_token == "<|im_end|>"
