"""Stage 1: the base model. Train a tokenizer on the world's corpus, then pretrain a tiny Llama.

The corpus mixes encyclopedia text with chats of every quality, so the base model knows
the world but is as likely to ramble or be rude as to help: the starting point of RLHF.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import torch
from tqdm.auto import tqdm

from lab import metrics as M
from lab.config import LabConfig
from lab.distributed import average_gradients, check_in_sync, is_main, process
from lab.generation import DecodingConfig, generate
from lab.models import build_tiny_llama, num_params, resolve_device, save_model
from lab.runlog import RunLog
from lab.tokenizer import train_tokenizer
from lab.world.build import FILES
from lab.world.judge import in_world_rate

EVAL_FRACTION = 0.02  # share of documents held out for the eval loss


def lr_at(step: int, peak: float, warmup: int, total: int) -> float:
    """Linear warm-up to `peak` over `warmup` steps, then cosine decay to 10% of peak."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return peak * (0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * progress)))


def pack(token_lists: list[list[int]], block_len: int) -> torch.Tensor:
    """Concatenate documents and cut into full blocks of `block_len` tokens: (N, block_len)."""
    flat = [t for tokens in token_lists for t in tokens]
    n = len(flat) // block_len
    return torch.tensor(flat[: n * block_len], dtype=torch.long).view(n, block_len)


def read_jsonl(path: Path) -> list[dict]:
    """Rows of a JSON-lines file the lab wrote itself."""
    with Path(path).open(encoding="utf-8") as f:
        return [json.loads(line) for line in f]


def doc_texts(docs: list[dict]) -> list[str]:
    """Plain text of every document (chat turns as separate texts), for tokenizer training."""
    return [m["content"] for d in docs for m in d.get("messages", [])] + [
        d["text"] for d in docs if "text" in d
    ]


def encode_docs(tokenizer, docs: list[dict]) -> list[list[int]]:
    """Token ids per document: chats through the chat template, text as BOS text EOS."""
    out = []
    for d in docs:
        if "messages" in d:
            out.append(tokenizer.apply_chat_template(d["messages"], return_dict=True)["input_ids"])
        else:
            ids = tokenizer(d["text"], add_special_tokens=False)["input_ids"]
            out.append([tokenizer.bos_token_id, *ids, tokenizer.eos_token_id])
    return out


@torch.no_grad()
def eval_loss(model, blocks: torch.Tensor, batch_size: int) -> float:
    """Mean next-token loss over held-out blocks."""
    model.eval()
    losses = [
        model(input_ids=b, labels=b).loss.item() for b in blocks.to(model.device).split(batch_size)
    ]
    model.train()
    return sum(losses) / len(losses)


def train(
    model, train_blocks: torch.Tensor, eval_blocks: torch.Tensor, cfg: LabConfig, log: RunLog
) -> tuple[float, float, float]:
    """Next-token prediction on random blocks; returns the first and last loss and eval loss."""
    p, device = cfg.pretrain, model.device
    batches = torch.Generator().manual_seed(cfg.seed + process().process_index)  # own blocks
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=p.lr, weight_decay=p.weight_decay, betas=(0.9, 0.95)
    )
    first_loss = last_eval = None
    for step in tqdm(range(p.steps), desc="pretrain", unit="step", disable=not is_main()):
        lr = lr_at(step, p.lr, p.warmup_steps, p.steps)
        for group in optimizer.param_groups:
            group["lr"] = lr
        idx = torch.randint(len(train_blocks), (p.batch_size,), generator=batches)
        batch = train_blocks[idx].to(device)  # (B, T)
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        average_gradients(model.parameters())  # data parallel: the mean over processes
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        first_loss = first_loss if first_loss is not None else loss.item()
        row = {M.PRETRAIN_LOSS: loss.item(), M.PRETRAIN_LR: lr}
        if (step + 1) % p.eval_every == 0 or step + 1 == p.steps:
            last_eval = eval_loss(model, eval_blocks, p.batch_size)
            row[M.PRETRAIN_EVAL_LOSS] = last_eval
        log.log(step + 1, row)
    return first_loss, loss.item(), last_eval


def run_pretrain(cfg: LabConfig, world_dir: Path, out_dir: Path) -> dict:
    """Train tokenizer and tiny Llama on the world's corpus; save both to `out_dir/model`."""
    p, log = cfg.pretrain, RunLog(out_dir, report_to=cfg.log.targets())
    torch.manual_seed(cfg.seed)
    rng = random.Random(cfg.seed)
    device = process().device if process().num_processes > 1 else resolve_device(cfg.device)

    # 1. Tokenizer: byte-level BPE trained on the corpus itself.
    docs = read_jsonl(world_dir / FILES["pretrain"])
    tokenizer = train_tokenizer(doc_texts(docs), cfg.tokenizer.vocab_size)

    # 2. Data: hold out a few documents, pack the rest into blocks of seq_len tokens.
    rng.shuffle(docs)
    n_eval = max(1, int(EVAL_FRACTION * len(docs)))
    eval_blocks = pack(encode_docs(tokenizer, docs[:n_eval]), p.seq_len)
    train_blocks = pack(encode_docs(tokenizer, docs[n_eval:]), p.seq_len)

    # 3. Model: a Llama initialised from scratch.
    model = build_tiny_llama(cfg.model, tokenizer, cfg.seed).to(device)
    model.train()

    # 4. Train: next-token prediction on random blocks (AdamW, warm-up then cosine decay).
    first_loss, last_loss, last_eval = train(model, train_blocks, eval_blocks, cfg, log)
    check_in_sync(model.parameters())  # data parallel: every process ends with the same weights

    # 5. Sample: does the base model speak the world's language?
    prompts = [r["prompt"] for r in read_jsonl(world_dir / FILES["eval_prompts"])[:32]]
    answers = generate(model, tokenizer, prompts, DecodingConfig(max_new_tokens=48, seed=cfg.seed))

    # 6. Save in the format `from_pretrained` reads, like any hub model.
    save_model(model, tokenizer, out_dir / "model")
    tokens_seen = p.steps * p.batch_size * p.seq_len * process().num_processes
    return log.finish(
        {
            M.NUM_PARAMS: num_params(model),
            M.PRETRAIN_FIRST_LOSS: first_loss,
            M.PRETRAIN_LOSS: last_loss,
            M.PRETRAIN_EVAL_LOSS: last_eval,
            M.PRETRAIN_EVAL_PPL: math.exp(last_eval),
            M.PRETRAIN_IN_WORLD: in_world_rate(answers),
            M.PRETRAIN_TRAIN_TOKENS: int(train_blocks.numel()),
            M.PRETRAIN_TOKENS_SEEN: tokens_seen,
            M.PRETRAIN_TOKENS_PER_S: tokens_seen / log.elapsed,
            M.STAGE_SECONDS: log.elapsed,
            M.PRETRAIN_SAMPLES: [
                {"prompt": q[-1]["content"], "answer": a}
                for q, a in zip(prompts[: p.n_samples], answers[: p.n_samples], strict=True)
            ],
        }
    )
