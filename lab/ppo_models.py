"""PPO's four roles (policy, reference, value function, reward model) and how they share weights.

Full mode (tiny models): the policy is a trainable copy of the SFT model, the reference a
frozen copy, the value function a copy of the reward model read at every token. In a bf16/fp16
profile the trained copies hold fp32 weights and every forward runs under autocast.
LoRA mode: one copy of the SFT weights; the policy is the base + a `policy` adapter, the
reference is the same base with adapters disabled, and the value function is a `value`
adapter with its own linear head. The reward model stays a separate, frozen model.
`load_ppo_models` sets up the roles and the reward as the profile says (`ppo.reward`).
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model
from peft.tuners.lora import LoraLayer
from torch import nn
from transformers import AutoModelForSequenceClassification

from lab.config import LabConfig
from lab.models import DTYPES, load_causal_lm, load_tokenizer, trainable_dtype
from lab.packing import packed_hidden, packed_logits, use_packed_attention
from lab.responses import (
    align_left,
    at_positions,
    at_rows,
    logprobs_at_rows,
    next_token_logits,
    position_ids,
)
from lab.reward_sources import difference_scorer, load_scorer, parse_spec

LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def disable_dropout(model: nn.Module) -> None:
    """Switch off every dropout in `model`: `nn.Dropout` layers and attention's dropout rate."""
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0
        if isinstance(getattr(module, "attention_dropout", None), float):
            module.attention_dropout = 0.0


class ActorCritic(nn.Module):
    """Policy, reference and value function over one or several copies of the SFT weights."""

    def __init__(
        self,
        sft_path: str,
        reward_path: str,
        lora_r: int,
        lora_alpha: int,
        dtype: str,
        device,
        gradient_checkpointing: bool = False,
        fresh_value_head: bool = False,
        packed: bool | None = None,
    ):
        """`reward_path` holds the critic's starting weights: the reward model's trunk and head.
        `fresh_value_head` puts a new head at zero on that trunk, so that V starts at 0
        everywhere (as LoRA's head does): for a function or classifier reward (`reward_path` is
        then the policy's start model), or a difference of two reward models.
        `packed`: forwards over real tokens only (`lab.packing`); by default on a CPU alone."""
        super().__init__()
        self.lora = lora_r > 0
        # fp32 trained weights in a half-precision profile: every forward in autocast (`autocast`)
        self.half = DTYPES[dtype] if trainable_dtype(dtype, lora_r) != dtype else None
        if self.lora:
            lora = LoraConfig(
                r=lora_r, lora_alpha=lora_alpha, target_modules=LORA_TARGETS, lora_dropout=0.0
            )
            base = load_causal_lm(sft_path, dtype, str(device))
            self.policy = get_peft_model(base, lora, adapter_name="policy")
            self.policy.add_adapter("value", lora)
            self.policy.set_adapter("policy")
            self.value_trunk = self.policy.get_base_model().model  # LoRA layers live inside it
            self.value_head = nn.Linear(base.config.hidden_size, 1, device=device)
            nn.init.zeros_(self.value_head.weight)
            nn.init.zeros_(self.value_head.bias)
        else:
            self._load_full(sft_path, reward_path, dtype, device)
            if fresh_value_head:
                nn.init.zeros_(self.value_head.weight)
        disable_dropout(self)  # PPO's ratios and values must not depend on dropout noise
        # On a CPU every forward runs over real tokens only (`lab.packing`): a third less work
        # in a tiny update, 1.3x its speed. On a GPU a tiny model is bound by kernel launches,
        # and packing's extra index ops made batch 32 slower on an H100 (0.88x): rows there are
        # only moved to start at position 0 and cut after the longest (`align_left`).
        self.packed = torch.device(device).type == "cpu" if packed is None else packed
        if self.packed:  # every role's attention must take packed rows, or none packs
            roles = [self.policy, self.value_trunk, getattr(self, "reference", None)]
            self.packed = all([use_packed_attention(m) for m in roles if m is not None])
        # Full fine-tuning: policy, reference and value function are separate networks, so on a
        # CPU their forwards and backwards may run side by side (`lab.threads.side_by_side`).
        # LoRA's roles are adapters of one network, switched in place: they run in turn.
        self.apart = not self.lora and torch.device(device).type == "cpu"
        if gradient_checkpointing:  # recompute each block in backward (train mode only)
            kwargs = {"activation_checkpointing_kwargs": {"use_reentrant": False}}
            self.policy.activation_checkpointing_enable(**kwargs)
            if not self.lora:  # with LoRA the value function runs through the same layers
                self.value_trunk.activation_checkpointing_enable(**kwargs)

    def _load_full(self, sft_path: str, reward_path: str, dtype: str, device) -> None:
        """Full mode's three networks in `trainable_dtype` (fp32 master weights: in bf16 most Adam
        steps at PPO's 3e-6 round to nothing). The frozen reference too: under the same autocast as
        the policy it gives the very same log-probs at the start, so the KL starts at exactly 0."""
        trained = trainable_dtype(dtype, 0)
        self.policy = load_causal_lm(sft_path, trained, str(device))
        self.reference = load_causal_lm(sft_path, trained, str(device)).eval().requires_grad_(False)
        critic = AutoModelForSequenceClassification.from_pretrained(
            reward_path, num_labels=1, dtype=DTYPES[trained]
        ).to(device)
        self.value_trunk, self.value_head = critic.model, critic.score

    def train(self, mode: bool = True) -> ActorCritic:
        """Train mode for policy and critic (gradient checkpointing needs it); the reference stays in eval."""
        super().train(mode)
        if not self.lora:
            self.reference.eval()
        return self

    def response_logits(
        self, ids: torch.Tensor, mask: torch.Tensor, n_response: int
    ) -> torch.Tensor:
        """Policy logits that predict the last `n_response` tokens of `ids`: (B, R, V)."""
        return at_rows(*self._logits(self.policy, ids, mask, n_response))

    def response_logprobs(
        self, ids: torch.Tensor, mask: torch.Tensor, n_response: int, temperature: float,
        entropy: bool = False,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
        """The policy's log-prob of each of the last `n_response` tokens of `ids` at
        `temperature`: (B, R); with `entropy`, also its entropy there. The same numbers as
        `logprobs_of(response_logits(...))`, with one log-softmax per distinct position."""
        logits, rows = self._logits(self.policy, ids, mask, n_response)
        return logprobs_at_rows(logits, rows, ids[:, -n_response:], temperature, entropy)

    def autocast(self) -> contextlib.AbstractContextManager:
        """Autocast to the profile's half precision over fp32 trained weights; else nothing.

        Every forward (generation, rollout, update) runs under it, so the first ratio stays 1.
        """
        if self.half is None:
            return contextlib.nullcontext()
        return torch.autocast(self.policy.device.type, dtype=self.half)

    def _logits(self, model, ids: torch.Tensor, mask: torch.Tensor, n: int) -> tuple:
        """(K, V) logits and the (B, R) row each response token reads in them."""
        with self.autocast():
            if self.packed:
                return packed_logits(model, ids, mask, n)
            logits = next_token_logits(model, ids, mask, n)  # (B, R, V): a row per token
        rows = torch.arange(logits.shape[0] * n, device=logits.device).view(-1, n)
        return logits.flatten(0, 1), rows

    @torch.no_grad()
    def reference_logits(
        self, ids: torch.Tensor, mask: torch.Tensor, n_response: int
    ) -> torch.Tensor:
        """The same from the frozen reference (the SFT model): (B, R, V)."""
        return at_rows(*self._reference(ids, mask, n_response))

    @torch.no_grad()
    def reference_logprobs(
        self, ids: torch.Tensor, mask: torch.Tensor, n_response: int, temperature: float
    ) -> torch.Tensor:
        """`response_logprobs` of the frozen reference: (B, R)."""
        logits, rows = self._reference(ids, mask, n_response)
        return logprobs_at_rows(logits, rows, ids[:, -n_response:], temperature)

    def _reference(self, ids: torch.Tensor, mask: torch.Tensor, n: int) -> tuple:
        if self.lora:
            with self.policy.disable_adapter():
                return self._logits(self.policy, ids, mask, n)
        return self._logits(self.reference, ids, mask, n)

    def values(self, ids: torch.Tensor, mask: torch.Tensor, n_response: int) -> torch.Tensor:
        """V(state before each response token): (B, R).

        With LoRA, call this and the backward of its loss inside `critic()`: under gradient
        checkpointing backward recomputes the layers with whichever adapter is active then.
        """
        with self.critic(), self.autocast():  # the state before token t: the prefix to P + t - 1
            if self.packed:
                states = packed_hidden(self.value_trunk, ids, mask, n_response)
            else:
                ids, mask, index = align_left(ids, mask, n_response)  # no padding on the left
                hidden = self.value_trunk(
                    input_ids=ids, attention_mask=mask, position_ids=position_ids(mask)
                ).last_hidden_state
                states = at_positions(hidden, index)
        states = states.to(self.value_head.weight.dtype)  # the head in fp32 (LoRA's too)
        return self.value_head(states).squeeze(-1).float()

    @contextlib.contextmanager
    def critic(self) -> Iterator[None]:
        """Run the value function: LoRA's `value` adapter active and trainable inside, `policy` after.

        peft's `set_adapter` freezes every adapter but the active one, so the value loss's
        backward must run in here too, or the value adapter gets no gradient. Nesting is fine.
        """
        if not self.lora or self.policy.active_adapter == "value":
            yield
            return
        self.policy.set_adapter("value")
        try:
            yield
        finally:
            self.policy.set_adapter("policy")

    def trainable_parameters(self) -> list[nn.Parameter]:
        """Everything the optimizer updates: policy and value weights (or their adapters) and the head."""
        if self.lora:
            adapters = [p for n, p in self.policy.named_parameters() if "lora_" in n]
            return adapters + list(self.value_head.parameters())
        return (
            list(self.policy.parameters())
            + list(self.value_trunk.parameters())
            + list(self.value_head.parameters())
        )

    def prepare_for_training(self) -> None:
        """Make adapters (or full weights) trainable; call once before building the optimizer."""
        for p in self.trainable_parameters():
            p.requires_grad_(True)

    @contextlib.contextmanager
    def sampler(self) -> Iterator[nn.Module]:
        """The model whose `generate` samples from the current policy, for this block.

        Full fine-tuning: the policy itself. LoRA: the base with the policy adapter merged into
        copies of the targeted weights and every adapter off, so that each decoding step runs
        one matmul per layer instead of base + B·A (on a GPU, decoding a token at a time is
        mostly kernel launches, and LoRA's extra ones made `generate` 54% of a SmolLM2-135M
        update). The original weight tensors are put back untouched: no merge-unmerge rounding
        ever reaches the reference or the value trunk, which share them. The copies live only
        inside the block. Log-probs are always read unmerged (step 4), so the ratios are exact.
        """
        if not self.lora:
            with self.autocast():  # as the log-probs are read: samples from the same policy
                yield self.policy
            return
        originals = []
        try:  # a failure half-way through the swap still puts back what was swapped
            with torch.no_grad():
                for layer in self.policy.modules():
                    if isinstance(layer, LoraLayer) and "policy" in layer.lora_A:
                        base = layer.get_base_layer()
                        delta = layer.get_delta_weight("policy")
                        merged = (base.weight.float() + delta.float()).to(base.weight.dtype)
                        originals.append((base, base.weight))
                        base.weight = nn.Parameter(merged, requires_grad=False)
            with self.policy.disable_adapter():
                yield self.policy
        finally:
            for base, weight in originals:
                base.weight = weight

    def merged_policy(self):
        """A plain causal LM with the policy's weights (adapters merged into a copy for LoRA)."""
        if not self.lora:
            return self.policy
        merged = copy.deepcopy(self.policy)
        merged.set_adapter("policy")
        merged.delete_adapter("value")
        return merged.merge_and_unload()

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """The weights a checkpoint must keep (only adapters and the head in LoRA mode)."""
        names = {id(p) for p in self.trainable_parameters()}
        return {k: v.detach().clone() for k, v in self.named_parameters() if id(v) in names}

    def load_trainable_state(self, state: dict[str, torch.Tensor]) -> None:
        """Restore what `trainable_state` saved."""
        missing = set(state) - {k for k, _ in self.named_parameters()}
        if missing:
            raise KeyError(f"checkpoint has weights this model lacks: {sorted(missing)[:3]}")
        params = dict(self.named_parameters())
        with torch.no_grad():
            for k, v in state.items():
                params[k].copy_(v)


def load_ppo_models(
    cfg: LabConfig, sft: str, run_dir: Path, device, reward_model: Path | None = None,
    reward_baseline: Path | None = None,
) -> tuple:  # fmt: skip
    """`(actor_critic, tokenizer, scorer)` as the profile sets them up (`ppo.reward`).

    The value function starts from the reward model; with a function or classifier reward,
    from the policy's start model with a value head at zero. With `reward_baseline` (a reward
    model folder) the score is the reward model's minus that model's, and the value function
    starts from the reward model's trunk with its head at zero: a difference is near 0, and a
    critic that predicted the reward model's own score would bias every advantage (GAE's
    lambda < 1 mixes V of the next state in) back toward what that model likes.
    """
    torch.manual_seed(cfg.seed)  # the value head's initial weights
    tokenizer = load_tokenizer(sft)
    p, m = cfg.ppo, cfg.model
    learned = parse_spec(p.reward).kind == "model"
    critic = str(reward_model or run_dir / "reward" / "model") if learned else sft
    ac = ActorCritic(
        sft, critic, p.lora_r, p.lora_alpha, m.dtype, device, m.gradient_checkpointing,
        fresh_value_head=not learned or reward_baseline is not None,
    )  # fmt: skip
    scorer = load_scorer(p.reward, run_dir, device, reward_model, policy_tokenizer=tokenizer)
    if reward_baseline is not None:
        if not learned:
            raise ValueError(f"a reward baseline needs a learned reward model, not {p.reward!r}")
        baseline = load_scorer("model", run_dir, device, reward_baseline, tokenizer)
        scorer = difference_scorer(scorer, baseline)
    return ac, tokenizer, scorer
