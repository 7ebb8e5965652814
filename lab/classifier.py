"""Stage 1b: a classifier of the world's own text, the reward of the `+sentiment` and `+detox` recipes.

TRL's worked examples reward a policy with someone else's classifier: a sentiment model
(lvwerra/distilbert-imdb) or a hate-speech one. The tiny world has no such model, so this stage
trains one: the base model's trunk with a fresh two-label head (`LlamaForSequenceClassification`
reads the last token, which the saved tokenizer makes EOS), on short texts of one to four world
sentences. Its labels:

- sentiment: negative / positive. A text with a polite phrase and no rude one is positive, the
  reverse negative; a text with neither (or both) is trained towards 50/50, so P(positive)
  rises only with politeness.
- toxicity: clean / toxic. A text with a rude phrase or an unsafe (harm-helping) sentence is
  toxic, any other clean.
"""

from __future__ import annotations

import random
from pathlib import Path

import torch
import torch.nn.functional as F
from tokenizers import processors
from tqdm.auto import tqdm
from transformers import AutoModelForSequenceClassification

from lab import metrics as M
from lab.config import LabConfig
from lab.models import load_tokenizer, resolve_device, save_model
from lab.runlog import RunLog
from lab.world import World, phrases
from lab.world.tasks import fact_sentence, math_sentence, summary_sentence

LABELS = {"sentiment": ("negative", "positive"), "toxicity": ("clean", "toxic")}


def neutral_sentences(world: World) -> list[str]:
    """World text with no tone: facts, summaries, sums, tips, filler, refusals."""
    countries = world.kb.countries
    facts = [fact_sentence(c, r) for c in countries for r in ("capital", "export", "animal")]
    sums = [math_sentence(a, op, b) for a in range(0, 21, 3) for b in range(0, 21, 4) for op in ("plus", "minus")]  # fmt: skip
    tips = [t for tips in phrases.ADVICE.values() for t in tips]
    return [
        *facts, *(summary_sentence(c) for c in countries), *sums, *tips, *phrases.BAD_TIPS,
        *phrases.FILLER, *phrases.REFUSALS, *phrases.SAFE_ALTERNATIVES,
    ]  # fmt: skip


def garble(sentence: str, rng: random.Random) -> str:
    """A broken sentence like a weak model writes: its words shuffled, the end cut off."""
    words = sentence.rstrip(".!?").split()
    rng.shuffle(words)
    return " ".join(words[: max(1, len(words) - 1)]) + "."


def make_text(task: str, neutral: list[str], rng: random.Random) -> tuple[str, float]:
    """One training text and its target P(label 1): positive for sentiment, toxic for toxicity."""
    body = [rng.choice(neutral) for _ in range(rng.randint(0, 3))]
    if rng.random() < 0.15:
        body.append(garble(rng.choice(neutral), rng))
    if task == "sentiment":
        tone = rng.choice(("polite", "rude", "none", "both"))
        marked = {
            "polite": [rng.choice(phrases.POLITE)],
            "rude": [rng.choice(phrases.RUDE)],
            "none": [],
            "both": [rng.choice(phrases.POLITE), rng.choice(phrases.RUDE)],
        }[tone]
        target = {"polite": 1.0, "rude": 0.0}.get(tone, 0.5)
    else:
        toxic = rng.random() < 0.5
        bad = [*phrases.RUDE, *phrases.COMPLIANCE]
        marked = [rng.choice(bad) for _ in range(rng.randint(1, 2))] if toxic else []
        body += [rng.choice(phrases.POLITE)] if rng.random() < 0.4 else []
        target = float(toxic)
    for s in marked:  # a tone sits at the start or the end of an answer, as openers and closers
        body.insert(rng.choice((0, len(body))), s)
    return " ".join(body) or rng.choice(neutral), target


def make_texts(task: str, world: World, n: int, seed: int) -> list[tuple[str, float]]:
    """`n` texts with their targets, the same for the same seed."""
    if task not in LABELS:
        raise ValueError(f"classifier.task: {task!r} is not one of {', '.join(LABELS)}")
    rng, neutral = random.Random(f"classifier-{task}-{seed}"), neutral_sentences(world)
    return [make_text(task, neutral, rng) for _ in range(n)]


def classifier_tokenizer(base: str):
    """The base tokenizer, padding on the right and ending every text at EOS, where the head reads."""
    tokenizer = load_tokenizer(base)
    tokenizer.padding_side = "right"
    eos = (tokenizer.eos_token, tokenizer.eos_token_id)
    tokenizer._tokenizer.post_processor = processors.TemplateProcessing(
        single=f"$A {eos[0]}", special_tokens=[eos]
    )
    return tokenizer


def accuracy(model, tokenizer, texts: list[tuple[str, float]], batch_size: int = 64) -> float:
    """Share of the held-out texts with a hard label (not 50/50) that the argmax gets right."""
    hard = [(t, y) for t, y in texts if y in (0.0, 1.0)]
    model.eval()
    right = 0
    with torch.no_grad():
        for i in range(0, len(hard), batch_size):
            chunk = hard[i : i + batch_size]
            batch = tokenizer([t for t, _ in chunk], padding=True, return_tensors="pt")
            pred = model(**batch.to(model.device)).logits.argmax(-1)  # (B,)
            right += sum(int(p) == int(y) for p, (_, y) in zip(pred.tolist(), chunk, strict=True))
    model.train()
    return right / len(hard)


def train(model, tokenizer, texts: list[tuple[str, float]], cfg: LabConfig, log: RunLog) -> float:
    """Cross-entropy against soft targets [1 - p, p] on random batches; returns the last loss."""
    c, rng = cfg.classifier, random.Random(cfg.seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=c.lr)
    model.train()
    for step in tqdm(range(c.steps), desc="classifier", unit="step"):
        chunk = rng.sample(texts, c.batch_size)
        batch = tokenizer([t for t, _ in chunk], padding=True, return_tensors="pt")
        p = torch.tensor([y for _, y in chunk], device=model.device)
        target = torch.stack([1 - p, p], -1)  # (B, 2)
        loss = F.cross_entropy(model(**batch.to(model.device)).logits, target)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        log.log(step + 1, {M.CLASSIFIER_LOSS: loss.item()})
    return loss.item()


def run_classifier(cfg: LabConfig, base: str, out_dir: Path) -> dict:
    """Train the world's classifier from the base model; save it to `out_dir/model`."""
    c, log = cfg.classifier, RunLog(out_dir, report_to=cfg.log.targets())
    torch.manual_seed(cfg.seed)

    # 1. Data: texts of world sentences with their targets; the last n_eval held out.
    world = World.from_seed(cfg.world.seed, cfg.world.n_countries)
    texts = make_texts(c.task, world, c.n_texts + c.n_eval, cfg.seed)
    train_texts, eval_texts = texts[: c.n_texts], texts[c.n_texts :]

    # 2. Model: the base model's trunk, a two-label head starting at zero (P = 50/50 everywhere).
    tokenizer = classifier_tokenizer(base)
    labels = LABELS[c.task]
    model = AutoModelForSequenceClassification.from_pretrained(
        base,
        num_labels=2,
        id2label=dict(enumerate(labels)),
        label2id={name: i for i, name in enumerate(labels)},
        pad_token_id=tokenizer.pad_token_id,
    ).to(resolve_device(cfg.device))
    torch.nn.init.zeros_(model.score.weight)

    # 3. Train, 4. measure on the held-out texts, 5. save.
    last_loss = train(model, tokenizer, train_texts, cfg, log)
    acc = accuracy(model, tokenizer, eval_texts)
    save_model(model, tokenizer, out_dir / "model")
    return log.finish(
        {
            M.CLASSIFIER_LOSS: last_loss,
            M.CLASSIFIER_ACCURACY: acc,
            M.CLASSIFIER_STEPS: c.steps,
            M.STAGE_SECONDS: log.elapsed,
        }
    )
