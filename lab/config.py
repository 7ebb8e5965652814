"""Typed configuration: one dataclass per stage, gathered in `LabConfig`.

Profiles (`lab.profiles`) are small override dicts applied to the defaults here;
how a dotted setting (`--set section.field=value`, a YAML file, a profile) reaches a field is
`lab.overrides`.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class WorldConfig:
    """The tiny world: a generated knowledge base, tasks, graded responses and annotators."""

    seed: int = 0
    """Seed of everything the world generates (same seed, same files)."""
    n_countries: int = 24
    """Fictional countries in the knowledge base (each has a capital, an export and an animal)."""
    n_pretrain_docs: int = 24_000
    """Documents in the pretraining corpus (encyclopedia text and mixed-quality chats)."""
    n_sft: int = 3_000
    """SFT demonstrations (good but imperfect answers, as real demonstrators write)."""
    n_pairs_train: int = 4_000
    """Preference pairs for reward-model training, labelled by simulated annotators."""
    n_fact_check_pairs: int = 0
    """Extra training pairs whose two answers differ only in being right or wrong, which teach a
    reward model to check facts (notebook 03, section 7: off by default, and why)."""
    n_pairs_test: int = 600
    """Held-out preference pairs (prompts never seen in the training pairs)."""
    n_ppo_prompts: int = 2_000
    """Prompts for RL (PPO/GRPO) rollouts."""
    n_eval_prompts: int = 200
    """Held-out prompts for gold evaluation; disjoint from every training split."""
    n_annotators: int = 20
    """Simulated annotators; each has its own noise and taste."""
    annotator_noise: float = 0.6
    """Mean Bradley-Terry temperature of annotators (higher = noisier votes)."""


@dataclass
class DataConfig:
    """Where the stages read data: empty = the tiny world's files (see `lab.recipes`).

    A source is a local .json/.jsonl/.parquet file or a hub dataset, `"id"` or `"id:split"`.
    """

    sft: str = ""
    """Demonstrations for SFT: prompt/completion or messages."""
    prompts: str = ""
    """Prompts for RL (PPO, GRPO); the last `n_eval_prompts` are held out when `eval_prompts` is empty."""
    eval_prompts: str = ""
    """Held-out prompts every model answers for evaluation and in the arena."""
    n_eval_prompts: int = 200
    """Evaluation prompts to use (a recipe's sources are large)."""
    max_examples: int = 0
    """Read at most this many rows of each SFT and prompt source (0 = all)."""


@dataclass
class TokenizerConfig:
    """Byte-level BPE tokenizer trained on the world's corpus (ignored for hub models)."""

    vocab_size: int = 1024
    """Vocabulary size including special tokens."""


@dataclass
class ModelConfig:
    """The base model: a hub id / local path, or a small Llama built from scratch."""

    name_or_path: str = ""
    """Hub id or local directory of a pretrained model; empty = pretrain the tiny Llama."""
    hidden_size: int = 128
    """Width of the residual stream (tiny Llama only)."""
    num_layers: int = 4
    """Transformer blocks (tiny Llama only)."""
    num_heads: int = 4
    """Attention heads (tiny Llama only)."""
    num_kv_heads: int = 2
    """Key/value heads, grouped-query attention (tiny Llama only)."""
    intermediate_size: int = 384
    """MLP width (tiny Llama only)."""
    max_length: int = 256
    """Longest sequence the model sees, prompt and response together."""
    dtype: str = "float32"
    """Training/inference dtype: float32, bfloat16 or float16."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass: far less memory, about a third more time."""


@dataclass
class PretrainConfig:
    """Stage 1: next-token pretraining of the tiny Llama on the world's corpus."""

    steps: int = 250
    """Optimizer steps."""
    batch_size: int = 32
    """Sequences per step."""
    seq_len: int = 128
    """Tokens per packed training sequence."""
    lr: float = 3e-3
    """Peak learning rate (AdamW, linear warm-up then cosine decay)."""
    warmup_steps: int = 30
    """Linear warm-up steps."""
    weight_decay: float = 0.1
    """AdamW weight decay."""
    eval_every: int = 100
    """Steps between held-out loss evaluations."""
    n_samples: int = 4
    """Sample generations written to metrics.json at the end."""


@dataclass
class TrainerStageConfig:
    """What every stage TRL trains shares (SFT, reward, DPO, GRPO, ORPO): schedule, LoRA, logging."""

    epochs: float = 1.0
    """Passes over the training data."""
    batch_size: int = 32
    """Examples per optimizer step (a pair counts once, a GRPO completion once)."""
    grad_accum: int = 1
    """Micro-batches per optimizer step: each holds batch_size / grad_accum (same step, less memory)."""
    lr: float = 1e-4
    """Peak learning rate (AdamW, linear warm-up then linear decay)."""
    warmup_ratio: float = 0.05
    """Share of the steps spent warming up."""
    lora_r: int = 0
    """LoRA rank; 0 = full fine-tuning. Adapters are merged before saving."""
    lora_alpha: int = 16
    """LoRA scaling numerator (the update is scaled by alpha / r)."""
    logging_steps: int = 10
    """Optimizer steps between logged losses."""


@dataclass
class SFTStageConfig(TrainerStageConfig):
    """Stage 2: supervised fine-tuning on the world's demonstrations (TRL `SFTTrainer`).

    The held-out loss is logged every epoch.
    """

    epochs: float = 2.0
    """Passes over the training demonstrations."""
    lr: float = 1e-3
    """Peak learning rate (AdamW, linear warm-up then linear decay)."""
    eval_fraction: float = 0.05
    """Share of demonstrations held out for the eval loss."""
    n_samples: int = 4
    """Sample answers (base vs SFT) written to metrics.json."""


@dataclass
class RewardStageConfig(TrainerStageConfig):
    """Stage 3: a reward model trained on preference pairs (TRL `RewardTrainer`).

    A pair is two sequences; with LoRA the trained head is merged with the adapters.
    """

    train_data: str = ""
    """Any `load_preferences` source; empty = the world's preferences_train.jsonl."""
    max_train_pairs: int = 0
    """Use at most this many training pairs (0 = all)."""
    holdout: int = 200
    """Pairs of `train_data` held out for evaluation (the world has its own test split)."""
    lr: float = 5e-4
    """Peak learning rate (AdamW, linear warm-up then linear decay)."""


@dataclass
class PPOStageConfig:
    """Stage 4: PPO against the reward model, written in the lab (`lab.ppo`)."""

    reward: str = "model"
    """Reward source (`lab.reward_sources`): model, function:module.name or classifier:PATH[:LABEL[:prob|logit]]."""
    policy: str = "sft"
    """Model PPO starts from and stays near (the reference): sft, or base (the pretrained base, as TRL's examples)."""
    updates: int = 36
    """PPO updates (each: one batch of rollouts, then `ppo_epochs` passes over it)."""
    batch_size: int = 64
    """Prompts per rollout batch."""
    mini_batch_size: int = 16
    """Responses per gradient step."""
    ppo_epochs: int = 2
    """Passes over each rollout batch."""
    lr: float = 3e-5
    """AdamW learning rate for the policy and value function."""
    max_new_tokens: int = 48
    """Longest response sampled during training."""
    temperature: float = 1.0
    """Sampling temperature during training (log-probs use the same)."""
    kl_coef: float = 0.05
    """beta: weight of the per-token KL penalty to the SFT model."""
    kl_target: float = 0.0
    """Target KL per response for the adaptive controller; 0 keeps beta fixed."""
    kl_horizon: int = 10_000
    """Adaptive controller horizon, in responses."""
    kl_estimator: str = "k1"
    """Per-token KL estimator in the reward: k1 (log ratio) or k3 (non-negative)."""
    gamma: float = 1.0
    """Discount factor."""
    lam: float = 0.95
    """GAE lambda."""
    clip: float = 0.2
    """Policy ratio clip range."""
    value_clip: float = 0.2
    """Value clip range."""
    vf_coef: float = 0.5
    """Weight of the value loss."""
    max_grad_norm: float = 1.0
    """Gradient clipping norm."""
    whiten_rewards: bool = False
    """Scale per-token rewards to unit variance within each batch."""
    whiten_advantages: bool = True
    """Shift and scale advantages to zero mean, unit variance per batch (off: steps follow the reward's scale)."""
    missing_eos_penalty: float = 1.0
    """Subtracted from the score of a response that never emitted EOS."""
    lora_r: int = 0
    """LoRA rank; 0 = full fine-tuning with separate policy/reference/value copies."""
    lora_alpha: int = 16
    """LoRA scaling numerator (the update is scaled by alpha / r)."""
    checkpoint_every: int = 10
    """Updates between checkpoints (each keeps a few sample answers)."""
    n_samples: int = 4
    """Held-out prompts answered at every checkpoint."""


@dataclass
class DPOStageConfig(TrainerStageConfig):
    """Stage 6: DPO on the reward model's preference pairs, from the SFT model (TRL `DPOTrainer`).

    A pair is two sequences, for the policy and the reference; with LoRA the reference is the
    model with adapters off. Held-out pairs are scored every epoch.
    """

    max_train_pairs: int = 1_000
    """Use at most this many of the reward stage's training pairs (0 = all)."""
    beta: float = 0.1
    """beta: scale of the implicit reward beta * log(pi / pi_ref); higher keeps closer to SFT."""
    loss_type: str = "sigmoid"
    """TRL loss: sigmoid (DPO), ipo, hinge, robust, ... (see `trl.DPOConfig.loss_type`)."""
    logging_steps: int = 5
    """Optimizer steps between logged losses."""


@dataclass
class GRPOStageConfig(TrainerStageConfig):
    """Stage 6: GRPO against the reward model, from the SFT model (TRL `GRPOTrainer`).

    `batch_size` counts completions: batch_size / num_generations prompts per optimizer step.
    With LoRA the reference is the model with adapters off.
    """

    max_prompts: int = 128
    """Use the first this many RL prompts (0 = all); an epoch samples each one `num_generations` times."""
    num_generations: int = 8
    """Completions per prompt; each is scored against its group's mean (and std)."""
    lr: float = 1e-4
    """Peak learning rate (AdamW, linear warm-up then linear decay); 3e-4 drifted to KL ~2.7 and
    fell below SFT's gold on 2 of 5 seeds, 1e-4 stays near KL 0.5 and beat SFT on 5 of 5."""
    beta: float = 0.04
    """Weight of the per-token KL(policy || SFT) term in the loss; 0 drops the reference."""
    loss_type: str = "dapo"
    """TRL loss aggregation: dapo, grpo, dr_grpo, bnpo, ... (see `trl.GRPOConfig.loss_type`)."""
    max_completion_length: int = 48
    """Longest completion sampled during training."""
    temperature: float = 1.0
    """Sampling temperature during training."""
    missing_eos_penalty: float = 1.0
    """Subtracted from the score of a completion that never emitted EOS (as in PPO)."""
    reward: str = "model"
    """Reward source, as `ppo.reward`: model, function:module.name or classifier:PATH[:LABEL[:prob|logit]]."""
    logging_steps: int = 1
    """Optimizer steps between logged rewards and losses."""


@dataclass
class ORPOStageConfig(TrainerStageConfig):
    """Stage 6: ORPO on the same preference pairs as DPO, from the SFT model (TRL's experimental
    `ORPOTrainer`): the SFT loss on the chosen answer plus an odds-ratio term, no reference model.

    Held-out pairs are scored before training and after every epoch.
    """

    max_train_pairs: int = 1_000
    """Use at most this many of the reward stage's training pairs (0 = all)."""
    beta: float = 10.0
    """λ: weight of the odds-ratio term beside the SFT loss on the chosen answer. The paper's 0.1 left the
    tiny world's held-out log odds ratio where SFT had it (0.28 -> 0.24 in 20 steps: the SFT term lifts
    rejected answers too); 10 raised it to 0.32 and gold from 0.70 to 0.93."""
    logging_steps: int = 5
    """Optimizer steps between logged losses."""


@dataclass
class ClassifierStageConfig:
    """Stage 1b: a sentence classifier trained on the world's own text, a reward for `+sentiment`
    and `+detox` (`lab.classifier`); off unless `stages` names it."""

    task: str = "sentiment"
    """sentiment (polite vs rude text) or toxicity (rude or unsafe vs the rest)."""
    n_texts: int = 4_000
    """Training texts, each one to four world sentences."""
    n_eval: int = 400
    """Held-out texts for the accuracy."""
    steps: int = 150
    """Optimizer steps."""
    batch_size: int = 32
    """Texts per step."""
    lr: float = 1e-3
    """AdamW learning rate (the trunk starts from the base model, the head from zero)."""


REPORT_TO = ("none", "tensorboard")


@dataclass
class LogConfig:
    """Where training curves go besides each stage's log.jsonl (never part of a stage's fingerprint)."""

    report_to: str = "none"
    """'none' or 'tensorboard': TRL's trainers report there, and every stage's RunLog writes the same
    scalars, under the lab's metric names, to STAGE/tensorboard/ (`tensorboard --logdir runs/tiny`)."""

    def targets(self) -> tuple[str, ...]:
        """What `RunLog(report_to=...)` takes; an unknown target raises, naming the known ones."""
        if self.report_to not in REPORT_TO:
            raise ValueError(
                f"log.report_to: {self.report_to!r} is not one of {', '.join(REPORT_TO)}"
            )
        return () if self.report_to == "none" else (self.report_to,)


@dataclass
class LabConfig:
    """Everything a run needs; `profile` names the diff it was built from."""

    profile: str = "tiny"
    """Name of the profile these settings came from."""
    device: str = "auto"
    """Torch device: auto (cuda if available), cpu or cuda."""
    seed: int = 0
    """Seed for training randomness (the world has its own)."""
    stages: str = ""
    """Stages the pipeline runs, comma-separated (e.g. world,pretrain,classifier,ppo); empty = all but classifier."""
    world: WorldConfig = field(default_factory=WorldConfig)
    """The generated world and its datasets."""
    data: DataConfig = field(default_factory=DataConfig)
    """Each stage's data: the world's, or a task recipe's datasets."""
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    """The tiny world's tokenizer."""
    model: ModelConfig = field(default_factory=ModelConfig)
    """The base model."""
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    """Stage 1: pretraining."""
    sft: SFTStageConfig = field(default_factory=SFTStageConfig)
    """Stage 2: supervised fine-tuning."""
    reward: RewardStageConfig = field(default_factory=RewardStageConfig)
    """Stage 3: the reward model."""
    ppo: PPOStageConfig = field(default_factory=PPOStageConfig)
    """Stage 4: PPO."""
    dpo: DPOStageConfig = field(default_factory=DPOStageConfig)
    """Stage 6: DPO."""
    grpo: GRPOStageConfig = field(default_factory=GRPOStageConfig)
    """Stage 6: GRPO."""
    orpo: ORPOStageConfig = field(default_factory=ORPOStageConfig)
    """Stage 6: ORPO."""
    classifier: ClassifierStageConfig = field(default_factory=ClassifierStageConfig)
    """Stage 1b: the world's sentence classifier (a reward for PPO)."""
    log: LogConfig = field(default_factory=LogConfig)
    """Where the curves go besides log.jsonl."""
