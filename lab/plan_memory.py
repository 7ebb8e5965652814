"""The planner's memory model: peak bytes of every stage, from a model's shapes alone.

Memory is counted tensor by tensor, as the lab's code holds them (see each `*_peak` function):
weights, gradients, AdamW states (two per trainable parameter, in the parameter's dtype: full
fine-tuning keeps fp32 weights and computes under bf16/fp16 autocast, `lab.models.trainable_dtype`;
LoRA keeps the half-precision base and fp32 adapters), activations saved for backward, logits,
KV cache and temporaries. The peak of a stage is the
largest of its phases (forward/backward, optimizer step, generation, rollout scoring).
`benchmarks/planner_accuracy.py` checks it against real runs of architecture twins.
"""

from __future__ import annotations

from dataclasses import dataclass

from lab.models import trainable_dtype

GB = 1e9
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}
TILE_TOKENS, TILE_VOCAB = 4096, 32768  # TRL's fused LM head projects tiles of this size


@dataclass(frozen=True)
class Arch:
    """The shapes of a Llama-like decoder (Llama, Qwen2), read from its config."""

    vocab: int
    """Rows of the embedding (the model's vocabulary, not the tokenizer's)."""
    hidden: int
    """Width of the residual stream H."""
    intermediate: int
    """MLP width I."""
    layers: int
    """Decoder blocks L."""
    heads: int
    """Query heads."""
    kv_heads: int
    """Key/value heads (grouped-query attention)."""
    head_dim: int
    """Width of one head."""
    tied: bool
    """The LM head shares the embedding's weights."""
    qkv_bias: bool
    """q/k/v projections have biases (Qwen2)."""


@dataclass(frozen=True)
class Setup:
    """One stage's knobs that set its memory: batch, lengths, LoRA, precision, checkpointing."""

    stage: str
    """Stage name (pretrain, sft, reward, ppo, dpo, grpo, orpo)."""
    batch: int
    """Sequences per forward/backward (per device); pairs count as two."""
    seq: int
    """Tokens per sequence (prompt and response)."""
    accum: int = 1
    """Gradient accumulation steps (gradients stay alive between micro-batches)."""
    lora_r: int = 0
    """LoRA rank; 0 = full fine-tuning."""
    checkpointing: bool = False
    """Gradient checkpointing: keep each block's input, recompute the rest in backward."""
    dtype_bytes: int = 4
    """Bytes per element of `model.dtype`: frozen weights, half-precision activations."""
    new_tokens: int = 0
    """Tokens generated per sequence (RL stages)."""
    rollout_batch: int = 0
    """Sequences generated and scored at once (RL stages)."""
    reward_bytes: int = 0
    """Bytes per weight of the frozen reward model as its stage saved it (RL stages; 0: the
    trained weights' bytes): fp32 after full fine-tuning, whatever this stage's LoRA keeps."""
    cuda: bool = True
    """Running on a GPU (fused kernels) rather than the CPU (torch fallbacks)."""


@dataclass
class Memory:
    """Bytes held at a stage's peak, by kind."""

    weights: float
    """Every model's parameters (frozen and trainable)."""
    grads: float
    """Gradients alive at the peak."""
    optimizer: float
    """AdamW states (exp_avg, exp_avg_sq)."""
    activations: float
    """Saved activations, logits, KV cache and temporaries."""
    phase: str
    """Which phase peaks (forward/backward, optimizer step, generation, rollout)."""

    @property
    def total(self) -> float:
        """All of it."""
        return self.weights + self.grads + self.optimizer + self.activations


# ---------------------------------------------------------------- parameters


def arch_from_config(config) -> Arch:
    """An `Arch` from a transformers config (Llama or Qwen2)."""
    heads = config.num_attention_heads
    return Arch(
        vocab=config.vocab_size,
        hidden=config.hidden_size,
        intermediate=config.intermediate_size,
        layers=config.num_hidden_layers,
        heads=heads,
        kv_heads=getattr(config, "num_key_value_heads", None) or heads,
        head_dim=getattr(config, "head_dim", None) or config.hidden_size // heads,
        tied=bool(getattr(config, "tie_word_embeddings", False)),
        qkv_bias=config.model_type == "qwen2" or bool(getattr(config, "attention_bias", False)),
    )


def layer_linears(a: Arch) -> list[tuple[int, int]]:
    """(in, out) of one block's linear layers: q, k, v, o, gate, up, down."""
    q, kv = a.heads * a.head_dim, a.kv_heads * a.head_dim
    h, i = a.hidden, a.intermediate
    return [(h, q), (h, kv), (h, kv), (q, h), (h, i), (h, i), (i, h)]


def count_params(a: Arch, head: str = "lm") -> int:
    """Parameters of the causal LM (`head="lm"`) or of the scalar reward model (`"score"`)."""
    per_layer = sum(i * o for i, o in layer_linears(a)) + 2 * a.hidden  # + two RMSNorms
    if a.qkv_bias:
        per_layer += (a.heads + 2 * a.kv_heads) * a.head_dim
    body = a.vocab * a.hidden + a.layers * per_layer + a.hidden  # + final norm
    if head == "score":
        return body + a.hidden
    return body + (0 if a.tied else a.vocab * a.hidden)


def lora_params(a: Arch, r: int) -> int:
    """LoRA parameters on every linear layer of every block: r x (in + out) each."""
    return a.layers * sum(r * (i + o) for i, o in layer_linears(a))


def matmul_params(a: Arch, head: str = "lm") -> int:
    """Parameters that take part in matmuls (the embedding lookup does not; a tied head does)."""
    n = count_params(a, head) - a.vocab * a.hidden
    return n + (a.vocab * a.hidden if head == "lm" else 0)


def trained_bytes(s: Setup) -> int:
    """Bytes per trained weight, its gradient and each AdamW state (`lab.models.trainable_dtype`):
    4 for full fine-tuning, the half-precision base's for LoRA. Also the residual stream's."""
    profile = "float32" if s.dtype_bytes == 4 else "bfloat16"  # fp16: the same bytes and rule
    return DTYPE_BYTES[trainable_dtype(profile, s.lora_r)]


def autocast_copies(a: Arch, s: Setup, head: str = "lm") -> int:
    """Half-precision copies of fp32 weights that autocast makes in a forward (cached until it
    ends, then saved for backward): every matmul weight, when full fine-tuning runs in half."""
    return matmul_params(a, head) * s.dtype_bytes if trained_bytes(s) > s.dtype_bytes else 0


# ---------------------------------------------------------------- activations


def layer_activation_bytes(a: Arch, d: int, lora_copy: int = 0, residual: int = 0) -> int:
    """Bytes one block saves for backward, per token.

    RMSNorm (x2): its fp32 input, the normalised and the weighted output (4H + 2rH, r the
    residual stream's bytes, `d` unless given); under autocast over fp32 weights (r = 4 > d),
    also the half-precision copy the next matmul reads (dH).
    Attention: q and k, v repeated to every head (transformers does so under a padding mask),
    SDPA's output and its contiguous copy for o_proj (5dH). MLP: gate, up, silu, product (4dI).
    LoRA on a half-precision base: peft casts every adapter's input to the adapter's fp32 and
    saves it (`lora_copy` = 4 bytes; 2 under the Trainer's bf16 autocast, which casts it back).
    """
    h, q, i, r = a.hidden, a.heads * a.head_dim, a.intermediate, residual or d
    norms = 2 * (4 * h + 2 * r * h + (d * h if r > d else 0))
    attention = 3 * d * q + 2 * d * q
    extra = lora_copy * (5 * h + q + i)
    return norms + attention + 4 * d * i + extra


def training_activations(a: Arch, tokens: int, s: Setup) -> float:
    """Saved activations of a forward with grad over `tokens` tokens (with checkpointing: block inputs + one block)."""
    half_lora = s.lora_r > 0 and s.dtype_bytes < 4
    lora_copy = (4 if s.stage == "ppo" else s.dtype_bytes) if half_lora else 0  # PPO: no autocast
    r = trained_bytes(s)  # the residual stream: fp32 beside fp32 weights, even under autocast
    layer = layer_activation_bytes(a, s.dtype_bytes, lora_copy, r)
    final_norm = 4 * a.hidden + 2 * r * a.hidden
    if s.checkpointing:
        return tokens * (a.layers * r * a.hidden + layer + final_norm)
    return tokens * (a.layers * layer + final_norm)


def fused_head_bytes(a: Arch, tokens: int, s: Setup, trainable_head: bool) -> float:
    """Peak of TRL's fused LM head in backward: fp32 weight/hidden grads and the logit tiles.

    On CUDA a tile is one buffer; the CPU fallback's torch ops hold about seven fp32 tiles.
    """
    tile = min(tokens, TILE_TOKENS) * min(a.vocab, TILE_VOCAB)
    tiles = tile * s.dtype_bytes if s.cuda else 7 * 4 * tile
    w = trained_bytes(s)
    weight_grad = a.vocab * a.hidden * (4 + (w if w < 4 else 0))  # cast to a half weight's dtype
    return tiles + 4 * tokens * a.hidden + (weight_grad if trainable_head else 0)


def full_logits_bytes(a: Arch, n_logits: int, d: int) -> float:
    """Peak of `log_softmax(logits.float() / T)` and its backward: logits + ~3 fp32 copies."""
    return n_logits * (d + 12 + (4 if d < 4 else 0))


def kv_cache_bytes(a: Arch, batch: int, tokens: int, d: int) -> float:
    """Keys and values of every block for `batch` sequences of `tokens`."""
    return 2 * a.layers * batch * tokens * a.kv_heads * a.head_dim * d


# ---------------------------------------------------------------- one trainable model


@dataclass(frozen=True)
class Trainable:
    """What training one model costs besides the frozen weights: parameters, grads, AdamW."""

    weights: float
    """Bytes of its weights (base + adapters)."""
    grads: float
    """Bytes of its gradients."""
    optimizer: float
    """Bytes of its AdamW states."""
    largest: float
    """Bytes of its largest trainable tensor (the CPU AdamW loop's temporaries scale with it)."""


def trainable(a: Arch, s: Setup, head: str = "lm") -> Trainable:
    """Full fine-tuning: weights, grads and states in fp32 (`trained_bytes`). LoRA: the frozen
    base in `model.dtype`, fp32 adapters."""
    n, d, w = count_params(a, head), s.dtype_bytes, trained_bytes(s)
    if s.lora_r:
        n_lora = lora_params(a, s.lora_r) + (a.hidden if head == "score" else 0)
        biggest = s.lora_r * max(i for i, _ in layer_linears(a)) * 4
        return Trainable(n * d + 4 * n_lora, 4 * n_lora, 8 * n_lora, biggest)
    return Trainable(n * w, n * w, 2 * n * w, a.vocab * a.hidden * w)


def optimizer_step_bytes(t_grads: float, largest: float, fused: bool, cuda: bool) -> float:
    """AdamW's temporaries: none fused (HF Trainer); foreach on CUDA: one sqrt(v) of everything;
    the CPU per-tensor loop: two of the largest tensor."""
    if fused:
        return 0.0
    return t_grads if cuda else 2 * largest


def train_phases(t: Trainable, act: float, head_peak: float, s: Setup, fused: bool) -> dict:
    """Forward/backward peak and optimizer-step peak of one trainable model (beyond W and states).

    Backward frees a block's activations as it makes that block's gradients, so the peak is at
    one end: all activations + the head's grads, or all gradients + the step's temporaries.
    """
    kept = t.grads if s.accum > 1 else 0.0  # accumulated gradients live through the next forward
    return {
        "forward/backward": (kept, act + head_peak),
        "optimizer step": (t.grads, optimizer_step_bytes(t.grads, t.largest, fused, s.cuda)),
    }


def peak(weights: float, optimizer: float, phases: dict[str, tuple[float, float]]) -> Memory:
    """The largest phase; each phase is (gradients alive, other transient bytes)."""
    name, (grads, other) = max(phases.items(), key=lambda kv: sum(kv[1]))
    return Memory(weights, grads, optimizer, other, name)


# ---------------------------------------------------------------- stages


def sft_peak(a: Arch, s: Setup) -> Memory:
    """TRL SFTTrainer (also pretrain-like): one causal LM, fused LM head, fused AdamW."""
    t = trainable(a, s)
    tokens = s.batch * s.seq
    head = fused_head_bytes(a, tokens, s, trainable_head=not s.lora_r)
    act = training_activations(a, tokens, s) + autocast_copies(a, s)
    phases = train_phases(t, act, head, s, fused=True)
    return peak(t.weights, t.optimizer, phases)


def pretrain_peak(a: Arch, s: Setup) -> Memory:
    """The lab's pretraining loop: `model(labels=...)` (full logits), torch AdamW."""
    t = trainable(a, s)
    tokens = s.batch * s.seq
    head = full_logits_bytes(a, tokens * a.vocab, s.dtype_bytes) + a.vocab * a.hidden * 4
    phases = train_phases(t, training_activations(a, tokens, s), head, s, fused=False)
    return peak(t.weights, t.optimizer, phases)


def reward_peak(a: Arch, s: Setup) -> Memory:
    """TRL RewardTrainer: a scalar-head model over chosen and rejected together (2 x batch)."""
    t = trainable(a, s, head="score")
    act = training_activations(a, 2 * s.batch * s.seq, s) + autocast_copies(a, s, "score")
    return peak(t.weights, t.optimizer, train_phases(t, act, 0.0, s, fused=True))


def preference_peak(a: Arch, s: Setup, frozen: float) -> Memory:
    """A TRL preference trainer: chosen and rejected through the policy together (2 x batch
    sequences), beside `frozen` bytes of weights that never train."""
    t = trainable(a, s)
    tokens = 2 * s.batch * s.seq
    head = fused_head_bytes(a, tokens, s, trainable_head=not s.lora_r)
    act = training_activations(a, tokens, s) + autocast_copies(a, s)
    phases = train_phases(t, act, head, s, fused=True)
    return peak(t.weights + frozen, t.optimizer, phases)


def dpo_peak(a: Arch, s: Setup) -> Memory:
    """TRL DPOTrainer: policy + frozen reference in the policy's dtype (LoRA: adapters off)."""
    return preference_peak(a, s, 0 if s.lora_r else count_params(a) * trained_bytes(s))


def orpo_peak(a: Arch, s: Setup) -> Memory:
    """TRL ORPOTrainer: the policy alone, no reference model."""
    return preference_peak(a, s, 0.0)


def generation_bytes(a: Arch, s: Setup) -> float:
    """`generate` for the rollout batch: KV cache of prompt + response, fp32 next-token logits."""
    return kv_cache_bytes(a, s.rollout_batch, s.seq, s.dtype_bytes) + 12 * s.rollout_batch * a.vocab


def grpo_peak(a: Arch, s: Setup) -> Memory:
    """TRL GRPOTrainer: policy + reference (in the policy's dtype) + the lab's frozen reward
    model (as the reward stage saved it: fp32 after full fine-tuning); generate, then train."""
    t, w = trainable(a, s), trained_bytes(s)
    frozen = count_params(a, "score") * (s.reward_bytes or w)
    frozen += 0 if s.lora_r else count_params(a) * w
    tokens = s.batch * s.seq
    head = fused_head_bytes(a, tokens, s, trainable_head=not s.lora_r)
    act = training_activations(a, tokens, s) + autocast_copies(a, s)
    phases = train_phases(t, act, head, s, fused=True)
    phases["generation"] = (0.0, generation_bytes(a, s) + autocast_copies(a, s))
    return peak(t.weights + frozen, t.optimizer, phases)


def ppo_peak(a: Arch, s: Setup) -> Memory:
    """The lab's PPO (`lab.ppo`, `lab.ppo_models.ActorCritic`), torch AdamW.

    Full: policy + value model (trainable; fp32 under autocast in a half-precision profile),
    reference (as the policy) + reward model (frozen, as the reward stage saved it).
    LoRA: one base with `policy` and `value` adapters + value head, and the frozen reward model.
    Phases: generation (LoRA: beside merged copies of the block weights, `ActorCritic.sampler`);
    rollout scoring (logits of policy and reference and their softmaxes, one mini-batch at a
    time, no grad); the policy's forward/backward (full logits of the response); the value
    model's forward/backward with the policy's grads alive; the optimizer step.
    """
    d, w, response = s.dtype_bytes, trained_bytes(s), s.new_tokens + 1
    policy, value = trainable(a, s), trainable(a, s, head="score")
    rm = count_params(a, "score") * (s.reward_bytes or w)
    copies = autocast_copies(a, s)  # 0 but for full fine-tuning in half precision
    if s.lora_r:
        weights = policy.weights + 4 * lora_params(a, s.lora_r) + 4 * a.hidden + rm
        value = Trainable(0, 4 * lora_params(a, s.lora_r), 8 * lora_params(a, s.lora_r), 0)
        head_grad = 0
    else:
        weights = 2 * policy.weights + value.weights + rm  # the reference as the policy
        head_grad = a.vocab * a.hidden * w
    tokens = s.batch * s.seq
    act = training_activations(a, tokens, s)
    grads = policy.grads + value.grads
    logits = full_logits_bytes(a, s.batch * response * a.vocab, d)
    # scored a mini-batch at a time (`lab.ppo.token_stats`): policy and reference logits + softmax
    rollout_logits = s.batch * response * a.vocab * (3 * d + 12 + (4 if d < 4 else 0))
    largest = max(policy.largest, value.largest)
    # LoRA decodes with the policy adapter merged into copies of every block's linear weights.
    merged = a.layers * sum(i * o for i, o in layer_linears(a)) * d if s.lora_r else 0
    value_act = act + autocast_copies(a, s, "score")
    phases = {
        "generation": (0.0, generation_bytes(a, s) + merged + copies),
        "rollout scoring": (0.0, rollout_logits + copies),
        "policy forward/backward": (0.0, act + copies + logits + head_grad),
        "value forward/backward": (policy.grads, value_act),
        "optimizer step": (grads, optimizer_step_bytes(grads, largest, False, s.cuda)),
    }
    if not s.cuda and not s.lora_r:  # on a multi-core CPU both run at once (`side_by_side`)
        both = act + copies + logits + head_grad + value_act
        phases["value forward/backward"] = (policy.grads, both)
    return peak(weights, policy.optimizer + value.optimizer, phases)


PEAKS = {
    "pretrain": pretrain_peak,
    "sft": sft_peak,
    "reward": reward_peak,
    "ppo": ppo_peak,
    "dpo": dpo_peak,
    "grpo": grpo_peak,
    "orpo": orpo_peak,
}


def estimate_memory(a: Arch, s: Setup) -> Memory:
    """Peak memory of stage `s.stage` with knobs `s`."""
    return PEAKS[s.stage](a, s)
