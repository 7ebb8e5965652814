"""Batched serving: one model answers every concurrent request together, one token at a time.

A `Batcher` owns one causal LM and a thread that runs only while there is work. At each step
it feeds the newest token of every running request through the model as one left-padded
batch (one forward, shared KV cache), samples each row with that request's own
`torch.Generator`, and hands the token to the request's queue. Requests that arrive
meanwhile are prefilled together and join the running batch at the next step (continuous
batching at step granularity); finished or abandoned rows leave it.

Why not transformers' own continuous batching (`generate_batch`, `init_continuous_batching`):
it samples every row with one `torch.multinomial` call on the global RNG, so an answer would
depend on who else asked. Here an answer depends only on its prompt, its decoding settings
and its seed: a request alone draws exactly what `model.generate` draws after
`torch.manual_seed(seed)`, and in a batch the same draws from its own generator.
"""

from __future__ import annotations

import queue
import threading
from collections import deque
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from lab.generation import DecodingConfig

MAX_BATCH = 64  # rows stepped together; later arrivals wait for a free row


@dataclass
class Outbox:
    """Where a request's tokens go: a queue that several requests may share, tagged by `key`."""

    inbox: queue.SimpleQueue
    key: int = 0

    def put(self, item: int | BaseException | None) -> None:
        self.inbox.put((self.key, item))


@dataclass
class Request:
    """One answer being generated: its prompt, settings, own random stream, and outbox.

    The outbox receives each new token id, then None at the end, or an exception instead.
    """

    prompt_ids: list[int]
    decoding: DecodingConfig
    generator: torch.Generator
    outbox: Outbox
    n_new: int = 0  # tokens generated so far
    finished: bool = False  # EOS or the length limit reached
    cancelled: bool = False  # the reader went away, or sampling failed: drop the row


def sample_token(logits: torch.Tensor, decoding: DecodingConfig, generator: torch.Generator) -> int:
    """The next token from (1, V) float32 logits, as `model.generate` picks it.

    Greedy (temperature 0) is the argmax; otherwise temperature, then top-p (HF's
    `TopPLogitsWarper`), then one multinomial draw from this request's own generator.
    """
    if decoding.temperature == 0:
        return int(logits.argmax(-1))
    scores = logits / decoding.temperature if decoding.temperature != 1 else logits
    if decoding.top_p < 1:
        sorted_scores, order = torch.sort(scores, descending=False)  # (1, V)
        drop_sorted = sorted_scores.softmax(-1).cumsum(-1) <= 1 - decoding.top_p
        drop_sorted[..., -1:] = False  # keep at least the most likely token
        drop = drop_sorted.scatter(1, order, drop_sorted)
        scores = scores.masked_fill(drop, -float("inf"))
    probs = F.softmax(scores, dim=-1)  # (1, V)
    return int(torch.multinomial(probs, num_samples=1, generator=generator))


def left_pad(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token lists -> (ids, mask), both (B, T), padded on the left."""
    width = max(len(r) for r in rows)
    ids = torch.tensor([[pad_id] * (width - len(r)) + r for r in rows])
    mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
    return ids, mask


class Batcher:
    """Generates for one model; requests join the running batch at the next step."""

    def __init__(self, model, eos_id: int, pad_id: int, max_batch: int = MAX_BATCH):
        self.model, self.eos_id, self.pad_id, self.max_batch = model, eos_id, pad_id, max_batch
        self.device = model.device
        self.pending: list[Request] = []
        self.guard = threading.Lock()  # around `pending` and `running`
        self.running = False
        self.batch_sizes: deque[int] = deque(maxlen=100_000)  # rows per forward, latest steps
        # The running batch: its requests, KV cache, attention mask (B, T) over the cache,
        # next position id (B,) and the newest sampled token of each row (B, 1), not yet fed.
        self.rows: list[Request] = []
        self.cache, self.mask, self.pos, self.last = None, None, None, None

    def submit(self, prompt_ids: list[int], decoding: DecodingConfig, outbox: Outbox) -> Request:
        """Queue a request; its tokens arrive in `outbox` as they are sampled."""
        generator = torch.Generator(device=self.device).manual_seed(decoding.seed)
        request = Request(list(prompt_ids), decoding, generator, outbox)
        with self.guard:
            self.pending.append(request)
            if not self.running:
                self.running = True
                threading.Thread(target=self.loop, daemon=True).start()
        return request

    def loop(self) -> None:
        """Step the batch until no request is running or waiting, then stop the thread."""
        while True:
            with self.guard:
                room = self.max_batch - len(self.rows)
                arrivals, self.pending = self.pending[:room], self.pending[room:]
                if not arrivals and not self.rows:
                    self.running = False
                    return
            try:
                with torch.no_grad():
                    if self.rows:
                        self.decode()
                    if arrivals:
                        self.admit(arrivals)
                self.drop_finished()
            except Exception as error:  # noqa: BLE001 - a failed forward fails its batch only
                for request in self.rows + arrivals:
                    request.outbox.put(error)
                self.rows, self.cache = [], None

    def decode(self) -> None:
        """One forward for every running row: feed the newest tokens, sample the next ones."""
        mask = torch.cat([self.mask, torch.ones_like(self.pos)[:, None]], dim=1)  # (B, T + 1)
        out = self.model(
            input_ids=self.last,
            attention_mask=mask,
            position_ids=self.pos[:, None],
            cache=self.cache,
            use_cache=True,
        )
        self.batch_sizes.append(len(self.rows))
        self.mask, self.pos = mask, self.pos + 1
        self.last = self.sample(self.rows, out.logits[:, -1])

    def admit(self, arrivals: list[Request]) -> None:
        """Prefill the arrivals as one left-padded batch and merge them into the running one."""
        ids, mask = left_pad([r.prompt_ids for r in arrivals], self.pad_id)  # (N, L)
        ids, mask = ids.to(self.device), mask.to(self.device)
        positions = (mask.cumsum(1) - 1).masked_fill(mask == 0, 1)  # as `generate` numbers them
        out = self.model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            use_cache=True,
            logits_to_keep=1,  # as `generate` asks: the lm head on the last position only
        )
        self.batch_sizes.append(len(arrivals))
        last = self.sample(arrivals, out.logits[:, -1])
        pos = mask.sum(1)
        if not self.rows:
            self.rows, self.cache, self.last = arrivals, out.cache, last
            self.mask, self.pos = mask, pos
            return
        width = max(self.mask.shape[1], mask.shape[1])
        for old, new in zip(self.cache.layers, out.cache.layers, strict=True):
            old.keys = torch.cat([pad_left(old.keys, width, 2), pad_left(new.keys, width, 2)])
            old.values = torch.cat([pad_left(old.values, width, 2), pad_left(new.values, width, 2)])
        self.mask = torch.cat([pad_left(self.mask, width, 1), pad_left(mask, width, 1)])
        self.rows, self.pos = self.rows + arrivals, torch.cat([self.pos, pos])
        self.last = torch.cat([self.last, last])

    def sample(self, rows: list[Request], logits: torch.Tensor) -> torch.Tensor:
        """Each row's next token from its own generator; hand it out. (B, V) -> (B, 1)."""
        logits = logits.float()
        tokens = []
        for request, row in zip(rows, logits, strict=True):
            try:
                token = sample_token(row[None], request.decoding, request.generator)
            except Exception as error:  # noqa: BLE001 - one bad row fails only its request
                request.outbox.put(error)
                request.cancelled, token = True, self.pad_id
            else:
                request.n_new += 1
                request.outbox.put(token)
                if token == self.eos_id or request.n_new >= request.decoding.max_new_tokens:
                    request.finished = True
                    request.outbox.put(None)
            tokens.append(token)
        return torch.tensor(tokens, device=self.device)[:, None]

    def drop_finished(self) -> None:
        """Rows that hit EOS, their length limit or were abandoned leave the batch."""
        keep = [i for i, r in enumerate(self.rows) if not (r.finished or r.cancelled)]
        if len(keep) == len(self.rows):
            return
        if not keep:
            self.rows, self.cache = [], None
            return
        index = torch.tensor(keep, device=self.device)
        first = int((self.mask[index].sum(0) > 0).nonzero()[0])  # columns padding for every row
        for layer in self.cache.layers:
            layer.keys = layer.keys[index, :, first:]
            layer.values = layer.values[index, :, first:]
        self.mask, self.pos, self.last = self.mask[index, first:], self.pos[index], self.last[index]
        self.rows = [self.rows[i] for i in keep]


def pad_left(x: torch.Tensor, width: int, dim: int) -> torch.Tensor:
    """`x` padded with zeros at the start of `dim` up to `width`."""
    missing = width - x.shape[dim]
    if missing == 0:
        return x
    shape = list(x.shape)
    shape[dim] = missing
    return torch.cat([x.new_zeros(shape), x], dim=dim)
