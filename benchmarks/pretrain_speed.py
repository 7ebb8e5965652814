"""Print pretraining throughput (tokens/s) and peak memory of the tiny Llama on this machine.

python benchmarks/pretrain_speed.py --steps 30 --batch-size 32 --seq-len 128
"""

from __future__ import annotations

import argparse
import resource
import time

import torch

from lab.config import ModelConfig
from lab.models import build_tiny_llama, num_params
from lab.tokenizer import train_tokenizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    for name in ("steps", "batch_size", "seq_len", "threads"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be 1 or more, got {getattr(args, name)}")
    torch.set_num_threads(args.threads)

    tokenizer = train_tokenizer(
        ["The capital of Vorland is Mirat. 3 plus 4 is 7."] * 100, vocab_size=1024
    )
    model = build_tiny_llama(ModelConfig(), tokenizer)
    model.resize_token_embeddings(1024)  # the tiny profile's vocabulary size
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    batch = torch.randint(1024, (args.batch_size, args.seq_len))
    for step in range(args.steps + 3):  # 3 warm-up steps, not timed
        if step == 3:
            start = time.perf_counter()
        loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    seconds = time.perf_counter() - start
    tokens = args.steps * args.batch_size * args.seq_len
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"params            {num_params(model):,}")
    print(f"threads           {args.threads}")
    print(f"tokens/s          {tokens / seconds:,.0f}")
    print(f"s/step            {seconds / args.steps:.3f}")
    print(f"peak RSS (MB)     {peak_mb:,.0f}")


if __name__ == "__main__":
    main()
