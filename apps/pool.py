"""The arena's models: load them once, stream their answers, and measure each answer.

Every model answers through its own `Batcher` (`apps.batching`): concurrent requests for one
model are generated together, each sampled from a generator seeded with its own seed, so an
answer depends on its prompt, settings and seed only, never on who else asked.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification

from apps.batching import Batcher, Outbox, left_pad
from apps.microbatch import MicroBatcher
from lab.generation import DecodingConfig, as_messages
from lab.models import load_causal_lm, load_tokenizer
from lab.responses import kl_exact, next_token_logits
from lab.reward_model import check_reward_model, score

# Where the pipeline leaves each model, in the order the arena shows them.
RUN_MODELS = {
    "base": "pretrain/model",
    "sft": "sft/model",
    "ppo": "ppo/model",
    "dpo": "dpo/model",
    "grpo": "grpo/model",
    "orpo": "orpo/model",
}
RUN_REWARD = "reward/model"
REFERENCE = "sft"  # KL is measured against the SFT model, as PPO's penalty is
# Seconds between partial answers sent to a reader: each update costs the web server more than
# a token costs the model, so a class of 30 gets 20 smooth updates a second, not one per token.
STREAM_EVERY = 0.05
# Partial answers per second across every reader: with a class at once, each reader's updates
# thin out (30 readers: about 3 a second each) so the web server's CPU goes to the answers.
STREAM_BUDGET = 100.0
SCORE_BATCH = 32  # answers scored per hold of the pool's lock when scoring many (`score_in_turns`)


def stream_interval(readers: int) -> float:
    """Seconds between one reader's partial answers while `readers` are streaming."""
    return max(STREAM_EVERY, readers / STREAM_BUDGET)


@dataclass
class Loaded:
    """A model ready to answer, or the reason it is not."""

    name: str
    source: str
    model: object | None = None
    tokenizer: object | None = None
    error: str = ""
    batcher: Batcher | None = None  # generates this model's concurrent requests together


@dataclass
class AnswerStats:
    """What the arena shows under an answer; None where it cannot be measured."""

    reward: float | None
    n_tokens: int
    kl: float | None


@dataclass
class Answer:
    """One finished answer: its text, the generated token ids, the prompt's ids, its temperature."""

    text: str
    prompt_ids: list[int] = field(default_factory=list)
    response_ids: list[int] = field(default_factory=list)
    temperature: float = 1.0  # the softmax temperature it was sampled at; 0 = greedy


def find_run_models(run_dir: Path) -> dict[str, str]:
    """The pipeline's models present in `run_dir`, by arena name."""
    return {
        name: str(run_dir / sub) for name, sub in RUN_MODELS.items() if (run_dir / sub).is_dir()
    }


def load_one(name: str, source: str, dtype: str = "float32", device: str = "cpu") -> Loaded:
    """Load a causal LM and its tokenizer; a failure becomes an error message, not an exception."""
    try:
        model = load_causal_lm(source, dtype, device).eval()
        tokenizer = load_tokenizer(source)
        batcher = Batcher(model, tokenizer.eos_token_id, tokenizer.pad_token_id)
        return Loaded(name, source, model, tokenizer, batcher=batcher)
    except Exception as error:  # noqa: BLE001 - any load failure makes the model unavailable
        return Loaded(name, source, error=f"{type(error).__name__}: {error}"[:300])


class ModelPool:
    """Named causal LMs, a reward model to score their answers, and a reference for KL."""

    def __init__(self, sources: dict[str, str], reward: str | None = None, device: str = "cpu"):
        self.device = device
        self.lock = threading.Lock()  # around the model table and the reward model
        self.tokenizing = threading.Lock()  # around prompt encoding, apart: scoring is slower
        self.readers = 0  # answers being streamed now (`stream_many` calls); sets the update rate
        self.models = {name: load_one(name, src, device=device) for name, src in sources.items()}
        self.reward_source, self.rm, self.rm_tokenizer, self.reward_error = None, None, None, ""
        # Answers finished at the same moment are scored and measured together.
        self.measurer = MicroBatcher(self.stats_many)
        if reward:
            self.set_reward(reward)

    @property
    def available(self) -> list[str]:
        """Names of the models that loaded."""
        return [name for name, m in self.snapshot() if not m.error]

    @property
    def unavailable(self) -> dict[str, str]:
        """Models that failed to load, with the reason."""
        return {name: m.error for name, m in self.snapshot() if m.error}

    def snapshot(self) -> list[tuple[str, Loaded]]:
        """The model table as it is now, copied under the lock (`add` inserts while others read)."""
        with self.lock:
            return list(self.models.items())

    def add(self, name: str, source: str) -> Loaded:
        """Load another model (a retrained one, say); it replaces a model of the same name."""
        loaded = load_one(name, source, device=self.device)
        with self.lock:
            self.models[name] = loaded
        return loaded

    def set_reward(self, source: str) -> None:
        """Score answers with the reward model in `source` from now on."""
        try:
            rm = AutoModelForSequenceClassification.from_pretrained(source).to(self.device).eval()
            tokenizer = load_tokenizer(source)
            check_reward_model(rm, tokenizer)
        except Exception as error:  # noqa: BLE001 - scores are shown as unavailable instead
            self.reward_error = f"{type(error).__name__}: {error}"[:300]
            return
        with self.lock:
            self.reward_source, self.rm, self.rm_tokenizer = source, rm, tokenizer
            self.reward_error = ""

    def score_in_turns(
        self, prompts: list[str], responses: list[str]
    ) -> tuple[list[float] | None, str | None]:
        """Many answers' rewards and the reward model's source (None, None without one)."""
        # The lock is held one batch at a time, so answers' stats (which need it) go in between;
        # every batch is scored by the model in use when the call began.
        with self.lock:
            rm, tokenizer, source = self.rm, self.rm_tokenizer, self.reward_source
        if rm is None:
            return None, None
        scores: list[float] = []
        for start in range(0, len(prompts), SCORE_BATCH):
            batch = slice(start, start + SCORE_BATCH)
            with self.lock:
                scores += score(rm, tokenizer, prompts[batch], responses[batch])
        return scores, source

    def stream(self, name: str, prompt: str, decoding: DecodingConfig) -> Iterator[str | Answer]:
        """Yield the answer's text as it grows, then the finished `Answer`."""
        for _, part in self.stream_many([name], prompt, decoding):
            yield part

    def stream_many(
        self, names: list[str], prompt: str, decoding: DecodingConfig
    ) -> Iterator[tuple[int, str | Answer]]:
        """Every model answers at once: yield (i, text so far), then (i, Answer) as each ends."""
        models = [self.models[name] for name in names]
        for m in models:
            if m.error:
                raise ValueError(f"model {m.name!r} is unavailable: {m.error}")
        with self.tokenizing:  # a fast tokenizer is not safe to encode with from two threads
            prompts = [
                m.tokenizer.apply_chat_template(
                    [as_messages(prompt)], add_generation_prompt=True, return_dict=True
                )["input_ids"][0]
                for m in models
            ]
        inbox = queue.SimpleQueue()
        requests = [
            m.batcher.submit(ids, decoding, Outbox(inbox, i))
            for i, (m, ids) in enumerate(zip(models, prompts, strict=True))
        ]
        ids: list[list[int]] = [[] for _ in names]
        shown = [0.0] * len(names)  # when each answer's last partial text was yielded
        with self.tokenizing:
            self.readers += 1
        try:
            for _ in range(len(names)):
                i, item = inbox.get()
                while isinstance(item, int):
                    ids[i].append(item)
                    every = stream_interval(self.readers)
                    if inbox.empty() and time.monotonic() - shown[i] >= every:
                        shown[i] = time.monotonic()  # only when caught up: a slow reader skips
                        yield i, as_text(ids[i], models[i].tokenizer)
                    i, item = inbox.get()
                if item is not None:
                    raise item
                tokenizer = models[i].tokenizer
                answer = Answer(
                    as_text(ids[i], tokenizer),
                    list(prompts[i]),
                    cut_at_eos(ids[i], tokenizer),
                    decoding.temperature,
                )
                yield i, answer
        finally:
            with self.tokenizing:
                self.readers -= 1
            for request in requests:
                request.cancelled = True  # a reader that stops early frees the rows

    def answer(self, name: str, prompt: str, decoding: DecodingConfig) -> Answer:
        """The finished answer, without streaming."""
        *_, last = self.stream(name, prompt, decoding)
        return last

    def stats(self, name: str, prompt: str, answer: Answer) -> AnswerStats:
        """Reward-model score, length in tokens, and KL to the reference on this sample.

        Answers measured at the same moment are measured together (`stats_many`, one batch).
        """
        return self.measurer.call((name, prompt, answer))

    def stats_many(self, items: list[tuple[str, str, Answer]]) -> list[AnswerStats]:
        """`stats` of many (model name, prompt, answer): one reward-model batch, one KL batch per model."""
        with self.lock:  # the reward model may be swapped meanwhile; its tokenizer is shared
            rewards: list[float | None] = [None] * len(items)
            if self.rm is not None:
                prompts, texts = [p for _, p, _ in items], [a.text for _, _, a in items]
                rewards = score(self.rm, self.rm_tokenizer, prompts, texts)
        kls: list[float | None] = [None] * len(items)
        groups: dict[tuple[str, float], list[int]] = {}  # one forward per model and temperature
        for i, (name, _, answer) in enumerate(items):
            groups.setdefault((name, answer.temperature), []).append(i)
        for (name, _), rows in groups.items():
            for i, kl in zip(rows, self.sample_kls(name, [items[i][2] for i in rows]), strict=True):
                kls[i] = kl
        return [
            AnswerStats(reward, len(answer.response_ids), kl)
            for reward, (_, _, answer), kl in zip(rewards, items, kls, strict=True)
        ]

    def sample_kl(self, name: str, answer: Answer) -> float | None:
        """KL(model || reference) in nats, exact over the vocabulary, summed over the answer's tokens.

        At each position of the answer, both models' next-token distributions at the temperature
        the answer was sampled at (temperature 1 for a greedy answer, whose own distribution is a
        point mass); top-p is not applied, so this is the KL of the temperature-scaled models.
        Never negative, and 0 for the reference itself.
        """
        return self.sample_kls(name, [answer])[0]

    def sample_kls(self, name: str, answers: list[Answer]) -> list[float | None]:
        """`sample_kl` of answers sampled from one model at one temperature, in one batch each way."""
        ref = self.models.get(REFERENCE)
        if ref is None or ref.error:
            return [None] * len(answers)
        if ref.tokenizer.get_vocab() != self.models[name].tokenizer.get_vocab():
            return [None] * len(answers)  # token-level KL needs one vocabulary
        measured = [a for a in answers if a.response_ids]
        if not measured:
            return [None] * len(answers)
        model, tokenizer = self.models[name].model, self.models[name].tokenizer
        ids, mask = left_pad(
            [a.prompt_ids + a.response_ids for a in measured], tokenizer.pad_token_id
        )
        lengths = torch.tensor([len(a.response_ids) for a in measured])  # (B,)
        n = int(lengths.max())
        # Left padding puts every answer's end at the right: row b's answer is its last R_b tokens.
        in_answer = torch.arange(n)[None] >= n - lengths[:, None]  # (B, R)
        with torch.no_grad():
            logits = next_token_logits(model, ids.to(model.device), mask.to(model.device), n)
            ref_logits = next_token_logits(
                ref.model, ids.to(ref.model.device), mask.to(ref.model.device), n
            )  # (B, R, V) each
        if logits.shape != ref_logits.shape:  # embeddings padded differently: the real tokens
            v = len(ref.tokenizer)
            logits, ref_logits = logits[..., :v], ref_logits[..., :v]
        temperature = measured[0].temperature or 1.0
        kl = kl_exact(
            logits, ref_logits.to(logits.device), in_answer.to(logits.device), temperature
        )
        sums = iter(kl.sum(1).tolist())  # (B,)
        return [next(sums) if a.response_ids else None for a in answers]


def as_text(ids: list[int], tokenizer) -> str:
    """What the reader sees of these generated ids (special tokens left out)."""
    return tokenizer.decode(ids, skip_special_tokens=True).strip()


def cut_at_eos(response: list[int], tokenizer) -> list[int]:
    """The generated ids up to and including the first EOS (what the model really said)."""
    if tokenizer.eos_token_id in response:
        return response[: response.index(tokenizer.eos_token_id) + 1]
    return response
