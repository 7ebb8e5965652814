"""Stage 4: PPO, written in the lab. The loop reads as the algorithm; the maths is in `ppo_math`
and `responses` (log-probs, KL, the missing-EOS penalty).

Each update: (1) sample prompts, (2) generate, (3) score at EOS, (4) log-probs of policy and
reference, (5) rewards = score - beta * KL, (6) GAE advantages, (7) clipped updates, (8) log.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
from tqdm.auto import tqdm

from lab import metrics as M
from lab import recipes
from lab.config import LabConfig, PPOStageConfig
from lab.distributed import average_gradients, average_metrics, is_main, process
from lab.generation import DecodingConfig, chat_batch, generate_kwargs
from lab.models import resolve_device, save_model
from lab.ppo_checkpoint import checkpoint, latest_update, make_learner, resume_from
from lab.ppo_math import (
    explained_variance,
    gae,
    kl_penalty,
    masked_mean,
    masked_whiten,
    policy_loss,
    token_rewards,
    value_loss,
)
from lab.ppo_models import ActorCritic, load_ppo_models
from lab.progress import Progress
from lab.responses import penalize_missing_eos, response_mask, sequence_kl
from lab.reward_sources import Scorer
from lab.runlog import RunLog
from lab.threads import side_by_side
from lab.world import World
from lab.yardstick import evaluate_policy


@dataclass
class Rollout:
    """One batch of experience. P = prompt tokens (left-padded), R = response tokens (right-padded)."""

    prompts: list
    texts: list[str]
    ids: torch.Tensor  # (B, P + R) prompt and response
    mask: torch.Tensor  # (B, P + R) attention mask
    response_mask: torch.Tensor  # (B, R) 1 up to and including EOS
    has_eos: torch.Tensor  # (B,) bool
    score: torch.Tensor  # (B,) reward-model score (with the missing-EOS penalty)
    logprobs: torch.Tensor  # (B, R) policy at sampling time
    ref_logprobs: torch.Tensor  # (B, R) reference
    values: torch.Tensor  # (B, R)
    entropy: torch.Tensor  # (B, R)
    kl: torch.Tensor | None = None  # (B, R) per-token KL estimate
    rewards: torch.Tensor | None = None  # (B, R)
    advantages: torch.Tensor | None = None  # (B, R)
    returns: torch.Tensor | None = None  # (B, R)
    order: torch.Tensor | None = None  # (B,) the first epoch's row order (step 4 read it so)


@torch.no_grad()
def rollout(
    ac: ActorCritic, tokenizer, scorer: Scorer, prompts: list, cfg: LabConfig,
    gen: torch.Generator | None = None,
) -> Rollout:  # fmt: skip
    """Steps 2-4: generate, score, and read log-probs, reference log-probs and values.

    With `gen` (the update's generator), step 4 reads the batch in the minibatches the first
    epoch will train on, drawn here: the first minibatch's ratio is then 1 to the last bit.
    """
    p = cfg.ppo
    # 2. Generate with the policy: KV cache, left-padded prompts, stop at EOS.
    query = chat_batch(tokenizer, prompts, ac.policy.device)
    decoding = DecodingConfig(max_new_tokens=p.max_new_tokens, temperature=p.temperature)
    with ac.sampler() as model:
        model.eval()
        out = model.generate(**query, **generate_kwargs(decoding, tokenizer))  # top_p 1
    n_prompt = query["input_ids"].shape[1]
    response = out[:, n_prompt:]  # (B, R)
    resp_mask, has_eos = response_mask(response, tokenizer.eos_token_id)
    mask = torch.cat([query["attention_mask"], resp_mask.long()], 1)
    texts = tokenizer.batch_decode(
        response * resp_mask.long() + tokenizer.pad_token_id * (1 - resp_mask.long()),
        skip_special_tokens=True,
    )

    # 3. Score at EOS (reward model, function or classifier); an answer that never ended is penalised.
    raw = torch.tensor(scorer(prompts, [t.strip() for t in texts]), device=response.device)
    scores = penalize_missing_eos(raw, has_eos, p.missing_eos_penalty)

    # 4. Per-token log-probs of policy and reference, and the value of each state.
    order = None if gen is None else torch.randperm(len(prompts), generator=gen)
    logprobs, ref_logprobs, values, entropy = token_stats(
        ac, out, mask, response, p.temperature, p.mini_batch_size, order
    )
    return Rollout(
        prompts=prompts,
        texts=texts,
        ids=out,
        mask=mask,
        response_mask=resp_mask,
        has_eos=has_eos,
        score=scores,
        logprobs=logprobs,
        ref_logprobs=ref_logprobs,
        values=values,
        entropy=entropy,
        order=order,
    )


@torch.no_grad()
def token_stats(
    ac: ActorCritic, ids, mask, response, temperature: float, chunk: int,
    order: torch.Tensor | None = None,
) -> tuple[torch.Tensor, ...]:  # fmt: skip
    """Step 4, `chunk` responses at a time: policy and reference log-probs, values, entropy.

    Each is (B, R). The full-vocabulary logits (about chunk x R, V) are the rollout's largest
    tensors; going through the batch in chunks keeps one chunk's alive per worker. Rows go
    in `order` (default: as they are): the update's first minibatches, whose forwards then see
    the very same batches, so its first ratio is exactly 1.
    """
    n, tasks = response.shape[1], []
    order = torch.arange(len(ids)) if order is None else order  # (B,)
    for rows in order.split(chunk):
        part, part_mask = ids[rows], mask[rows]
        tasks += [
            partial(ac.response_logprobs, part, part_mask, n, temperature, True),
            partial(ac.reference_logprobs, part, part_mask, n, temperature),
            partial(ac.values, part, part_mask, n),
        ]
    # Every chunk's three forwards queue for the two workers at once, so neither waits for the
    # other's third; the policy runs in the same kind of thread as in the update (ratio 1).
    done = side_by_side(*tasks, at_once=ac.apart)
    triples = (done[i : i + 3] for i in range(0, len(done), 3))  # per chunk, as submitted
    parts = [(lp, ref, values, ent) for (lp, ent), ref, values in triples]
    unsort = order.argsort()  # back to the batch's own order
    return tuple(torch.cat(columns)[unsort] for columns in zip(*parts, strict=True))


def add_advantages(r: Rollout, kl_coef: float, cfg: LabConfig) -> None:
    """Steps 5-6: per-token rewards (score at the last token, minus beta * KL) and GAE advantages."""
    p = cfg.ppo
    r.kl = kl_penalty(r.logprobs, r.ref_logprobs, p.kl_estimator) * r.response_mask
    rewards = token_rewards(r.score, r.kl, r.response_mask, kl_coef)
    if p.whiten_rewards:
        rewards = masked_whiten(rewards, r.response_mask, shift_mean=False) * r.response_mask
    r.rewards = rewards
    advantages, r.returns = gae(rewards, r.values, r.response_mask, p.gamma, p.lam)
    if p.whiten_advantages:
        advantages = masked_whiten(advantages, r.response_mask) * r.response_mask
    r.advantages = advantages


def policy_step(ac: ActorCritic, r: Rollout, idx: torch.Tensor, p: PPOStageConfig) -> tuple:
    """The clipped policy loss on minibatch `idx` and its stats; its gradient accumulated."""
    n = r.response_mask.shape[1]
    logprobs = ac.response_logprobs(r.ids[idx], r.mask[idx], n, p.temperature)
    loss, stats = policy_loss(
        logprobs, r.logprobs[idx], r.advantages[idx], r.response_mask[idx], p.clip
    )
    loss.backward()
    return loss, stats


def value_step(ac: ActorCritic, r: Rollout, idx: torch.Tensor, p: PPOStageConfig) -> tuple:
    """The clipped value loss on minibatch `idx` and its clip fraction; its gradient accumulated."""
    n = r.response_mask.shape[1]
    with ac.critic():  # LoRA: the value adapter stays active through its backward
        values = ac.values(r.ids[idx], r.mask[idx], n)
        loss, clipfrac = value_loss(
            values, r.values[idx], r.returns[idx], r.response_mask[idx], p.value_clip
        )
        (p.vf_coef * loss).backward()
    return loss, clipfrac


def ppo_update(
    ac: ActorCritic, optimizer, r: Rollout, cfg: LabConfig, rng: torch.Generator
) -> dict[str, float]:
    """Step 7: several epochs of minibatch updates with the clipped policy and value losses."""
    p = cfg.ppo
    stats: dict[str, list[torch.Tensor]] = {}  # kept on the device: no sync per minibatch
    ac.train()
    for epoch in range(p.ppo_epochs):
        first = epoch == 0 and r.order is not None  # drawn from `rng` at step 4
        order = r.order if first else torch.randperm(len(r.texts), generator=rng)
        for idx in order.split(p.mini_batch_size):
            # Each loss with its own backward: separate networks (side by side on a CPU), or
            # LoRA's two adapters of one network, in turn.
            (pg_loss, pg), (vf_loss, vf_clipfrac) = side_by_side(
                partial(policy_step, ac, r, idx, p),
                partial(value_step, ac, r, idx, p),
                at_once=ac.apart,
            )
            average_gradients(ac.trainable_parameters())  # data parallel: the mean over processes
            grad_norm = torch.nn.utils.clip_grad_norm_(
                ac.trainable_parameters(), p.max_grad_norm, foreach=True
            )
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            for name, value in {
                M.PPO_POLICY_LOSS: pg_loss,
                M.PPO_VALUE_LOSS: vf_loss,
                M.PPO_CLIPFRAC: pg["clipfrac"],
                M.PPO_APPROX_KL: pg["approx_kl"],
                M.PPO_RATIO: pg["ratio"],
                M.PPO_VALUE_CLIPFRAC: vf_clipfrac,
                M.PPO_GRAD_NORM: grad_norm,
            }.items():
                stats.setdefault(name, []).append(torch.as_tensor(value).detach().float())
    table = {k: torch.stack(v).cpu() for k, v in stats.items()}  # (steps,) each, one sync
    if any(not torch.isfinite(v).all() for v in table.values()):
        raise FloatingPointError(
            f"non-finite PPO losses: { {k: float(v[-1]) for k, v in table.items()} }"
        )
    return {k: float(v.mean()) for k, v in table.items()}


def batch_metrics(r: Rollout, kl_coef: float, world: World | None) -> dict[str, float]:
    """Step 8: what one batch looked like (rewards, KL, entropy, length, EOS rate, gold)."""
    m = r.response_mask
    kl_per_response = sequence_kl(r.kl, m)
    out = {
        M.PPO_REWARD: float(r.score.mean()),
        M.PPO_RLHF_REWARD: float((r.score - kl_coef * kl_per_response).mean()),
        M.PPO_KL: float(kl_per_response.mean()),
        M.PPO_ENTROPY: float(masked_mean(r.entropy, m)),
        M.PPO_EXPLAINED_VARIANCE: explained_variance(r.values, r.returns, m),
        M.PPO_LENGTH: float(m.sum(1).mean()),
        M.PPO_EOS_RATE: float(r.has_eos.float().mean()),
        M.PPO_KL_COEF: kl_coef,
    }
    if world is not None:
        out[M.PPO_GOLD] = sum(
            world.gold_score(q, a) for q, a in zip(r.prompts, r.texts, strict=True)
        ) / len(r.texts)
    return out


def defined(row: dict[str, float]) -> dict[str, float]:
    """The row without its explained variance where that is undefined: every return the same
    (a constant reward at the first update, when KL is exactly 0). The rest must be finite."""
    undefined = math.isnan(row.get(M.PPO_EXPLAINED_VARIANCE, 0.0))
    return {k: v for k, v in row.items() if not (undefined and k == M.PPO_EXPLAINED_VARIANCE)}


def update_bar(start: int, total: int):
    """Update numbers `start`, ..., `total - 1` with a progress bar in the main process."""
    bar = dict(desc="ppo", unit="update", initial=start, total=total, disable=not is_main())
    return tqdm(range(start, total), **bar)


def save_on_interrupt(save, out_dir: Path, done: int) -> None:
    """Ctrl-C: keep what was done, `done` whole updates. One in flight may be partly applied, so
    this checkpoint is close to the run it cut, not exact; an exact one of that number is kept."""
    if latest_update(out_dir) != done:
        save(out_dir, done)
    print(f"[ppo] interrupted: checkpoint at update {done}; continue with --resume")


def run_ppo(
    cfg: LabConfig,
    run_dir: Path,
    out_dir: Path,
    resume: bool = False,
    reward_model: Path | None = None,
    progress: Progress | None = None,
    init_policy: Path | None = None,
    reward_baseline: Path | None = None,
) -> dict:
    """Train the SFT model against the reward model with PPO; checkpoints, log, final policy.

    `reward_model` replaces the run's `reward/model`, `init_policy` the SFT model (as start and
    reference); `reward_baseline`'s score is subtracted (a feedback round's old reward model)."""
    p, rank = cfg.ppo, process().process_index
    device = process().device if process().num_processes > 1 else resolve_device(cfg.device)
    start_model = recipes.policy_start(cfg, run_dir)  # ppo.policy: the SFT model or the base
    sft = str(init_policy or start_model)
    prompts = recipes.rl_prompts(cfg, run_dir / "world")
    eval_prompts = recipes.eval_prompts(cfg, run_dir / "world")[: p.n_samples]
    world = recipes.gold_judge(cfg)  # None for a recipe's data: no known truth

    # 0. Load: policy / reference / value function, the frozen reward (model, function or classifier).
    ac, tokenizer, scorer = load_ppo_models(
        cfg, sft, run_dir, device, reward_model, reward_baseline
    )
    learner = make_learner(cfg, ac, rank)
    start = resume_from(out_dir, learner) if resume else 0
    log = RunLog(out_dir, append=start > 0, report_to=cfg.log.targets()) if is_main() else None
    save = partial(
        checkpoint, learner=learner, tokenizer=tokenizer, prompts=eval_prompts, world=world
    )
    kl_ctl, done = learner.kl_ctl, start  # `done`: updates applied, logged, beta adapted
    try:
        for update in update_bar(start, p.updates):
            # 1. Sample a batch of prompts.
            batch = [prompts[learner.rng.randrange(len(prompts))] for _ in range(p.batch_size)]
            # 2-4. Generate, score at EOS, log-probs of policy and reference, values.
            r = rollout(ac, tokenizer, scorer, batch, cfg, learner.gen)
            # 5-6. Rewards with the KL penalty, then GAE advantages.
            add_advantages(r, kl_ctl.value, cfg)
            # 7. Several epochs of clipped updates.
            losses = ppo_update(ac, learner.optimizer, r, cfg, learner.gen)
            # 8. Log (the mean over processes), adapt beta, checkpoint.
            row = defined(average_metrics({**batch_metrics(r, kl_ctl.value, world), **losses}))
            if log:
                log.log(update + 1, row)
            kl_ctl.update(row[M.PPO_KL], p.batch_size * process().num_processes)
            done = update + 1  # a Ctrl-C from here on keeps this update whole, under its number
            if done % p.checkpoint_every == 0 or done == p.updates:
                save(out_dir, done)
            if progress:  # the last share of the bar is the final evaluation in `finish`
                progress(done / (p.updates + 1), f"PPO update {done}/{p.updates}")
    except KeyboardInterrupt:
        save_on_interrupt(save, out_dir, done)
        raise
    if not is_main():  # the other processes are done: the main one saves and evaluates
        return {}
    own = None if reward_baseline else scorer  # held out: the model's own score, no difference
    return finish(cfg, ac, tokenizer, log, out_dir, run_dir, reward_model, start_model, own)


EVAL_NAMES = {  # `evaluate_policy`'s keys -> the lab's metric names
    "kl": M.PPO_EVAL_KL,
    "reward": M.PPO_EVAL_REWARD,
    "eos_rate": M.PPO_EVAL_EOS_RATE,
    "win_tie_loss": M.PPO_WIN_TIE_LOSS,
}


def finish(
    cfg, ac, tokenizer, log, out_dir: Path, run_dir: Path, reward_model: Path | None,
    start: str | None = None, scorer: Scorer | None = None,
) -> dict:  # fmt: skip
    """Save the policy and measure it with the yardstick every policy gets (`lab.yardstick`)."""
    policy = ac.merged_policy()
    save_model(policy, tokenizer, out_dir / "model")
    evals = evaluate_policy(
        cfg, policy, tokenizer, run_dir, out_dir, EVAL_NAMES, reward_model, start, scorer
    )
    return log.finish(
        {
            **evals,
            M.PPO_UPDATES: cfg.ppo.updates,
            M.PPO_PROCESSES: process().num_processes,
            M.STAGE_SECONDS: log.elapsed,
        }
    )
