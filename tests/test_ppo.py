"""PPO end to end on the small world: it must raise the reward, keep KL bounded, checkpoint and resume."""

import json
import shutil

import pytest
import torch

from lab import metrics as M
from lab.ppo import Rollout, add_advantages, run_ppo
from lab.ppo_checkpoint import latest_checkpoint, read_samples
from lab.ppo_models import ActorCritic
from lab.profiles import load_config
from lab.responses import response_mask
from lab.runlog import read_log, read_metrics
from tests.conftest import SMALL


def hand_rollout(seed: int = 0) -> Rollout:
    """A rollout of 4 responses of 2-6 tokens, made by hand: nothing sampled, nothing scored."""
    g = torch.Generator().manual_seed(seed)
    lengths = torch.tensor([6, 2, 4, 5])
    mask = (torch.arange(6) < lengths[:, None]).float()  # (B, R)
    logprobs = -torch.rand(4, 6, generator=g) * mask
    return Rollout(
        prompts=[], texts=[], ids=torch.zeros(4, 8, dtype=torch.long), mask=torch.ones(4, 8),
        response_mask=mask, has_eos=torch.ones(4, dtype=torch.bool),
        score=torch.tensor([1.0, -0.5, 2.0, 0.3]), logprobs=logprobs,
        ref_logprobs=(logprobs - 0.3 * torch.rand(4, 6, generator=g)) * mask,
        values=torch.randn(4, 6, generator=g) * mask, entropy=torch.zeros(4, 6),
    )  # fmt: skip


@pytest.mark.parametrize("whiten", [True, False])
def test_advantages_are_the_score_minus_beta_kl_through_gae_whitened(whiten):
    cfg = load_config("tiny")
    cfg.ppo.whiten_advantages, cfg.ppo.gamma, cfg.ppo.lam = whiten, 1.0, 1.0
    for beta in (0.0, 0.5):
        r = hand_rollout()
        add_advantages(r, beta, cfg)
        mask = r.response_mask.bool()
        kl = (r.logprobs - r.ref_logprobs) * r.response_mask  # k1, by hand
        assert torch.allclose(r.kl, kl)
        # Each response's rewards add up to its score minus beta times its KL ...
        assert torch.allclose(r.rewards.sum(1), r.score - beta * kl.sum(1), atol=1e-6)
        # ... and with gamma = lambda = 1 a token's return is the reward still to come.
        to_come = r.rewards.flip(1).cumsum(1).flip(1)
        assert torch.allclose(r.returns[mask], to_come[mask], atol=1e-5)
        raw = r.returns - r.values
        if whiten:  # whitened over the real tokens only
            assert abs(r.advantages[mask].mean()) < 1e-5
            assert r.advantages[mask].std() == pytest.approx(1.0, abs=1e-3)  # unbiased, as TRL
        else:
            assert torch.allclose(r.advantages[mask], raw[mask], atol=1e-5)
        assert not r.advantages[~mask].any()


def test_response_mask_stops_at_first_eos():
    eos = 2
    response = torch.tensor([[5, 6, 2, 0, 0], [5, 2, 7, 2, 0], [5, 6, 7, 8, 9]])
    mask, has_eos = response_mask(response, eos)
    assert mask.tolist() == [[1, 1, 1, 0, 0], [1, 1, 0, 0, 0], [1, 1, 1, 1, 1]]
    assert has_eos.tolist() == [True, True, False]


@pytest.fixture(scope="module")
def ppo_run(small_ppo_run):
    return small_ppo_run, read_metrics(small_ppo_run / "ppo")


def test_ppo_raises_the_reward_with_bounded_kl(ppo_run):
    run, metrics = ppo_run
    rows = read_log(run / "ppo")
    assert len(rows) == SMALL["ppo.updates"]
    first = sum(r[M.PPO_REWARD] for r in rows[:3]) / 3
    last = sum(r[M.PPO_REWARD] for r in rows[-3:]) / 3
    assert last > first + 0.1, (first, last)
    assert rows[0][M.PPO_KL] == pytest.approx(0.0, abs=1e-4)  # policy == reference at the start
    assert 0.0 < metrics[M.PPO_EVAL_KL] < 10.0
    for r in rows:
        assert 0.8 < r[M.PPO_RATIO] < 1.2  # small steps: the trust region holds
    # The ratio's mean is ~1 under any step size; the clip fractions show the clip at work.
    assert any(r[M.PPO_CLIPFRAC] > 0 for r in rows) and all(r[M.PPO_CLIPFRAC] < 0.5 for r in rows)
    assert any(r[M.PPO_VALUE_CLIPFRAC] > 0 for r in rows)


def test_every_metric_is_logged(ppo_run):
    run, metrics = ppo_run
    at_the_end = {
        M.PPO_EVAL_KL, M.PPO_EVAL_REWARD, M.PPO_EVAL_EOS_RATE, M.PPO_WIN_TIE_LOSS, M.PPO_PROCESSES,
        M.PPO_UPDATES,
    }  # fmt: skip
    names = {getattr(M, n) for n in dir(M) if n.startswith("PPO_")}
    row = read_log(run / "ppo")[-1]
    assert names - at_the_end <= set(row), names - at_the_end - set(row)
    assert at_the_end <= set(metrics), at_the_end - set(metrics)


def test_checkpoints_keep_samples_and_the_policy_loads(ppo_run):
    from transformers import AutoModelForCausalLM

    run, _ = ppo_run
    assert latest_checkpoint(run / "ppo").name == "update-00012"
    samples = read_samples(run / "ppo")
    assert sorted({s["update"] for s in samples}) == [4, 8, 12]
    assert all("gold" in s and s["answer"] is not None for s in samples)
    AutoModelForCausalLM.from_pretrained(run / "ppo" / "model")
    assert read_metrics(run / "ppo")[M.EVAL_GOLD_MEAN] is not None


def test_resume_continues_exactly_where_the_checkpoint_stopped(ppo_run, tmp_path):
    """Weights, optimizer, KL coefficient and every random stream come back: a run resumed
    from update 2 ends exactly where the same run without the break does."""
    run, _ = ppo_run
    for stage in ("world", "sft", "reward"):
        shutil.copytree(run / stage, tmp_path / stage)
    cfg = load_config(
        "tiny",
        {**SMALL, "ppo.updates": 4, "ppo.batch_size": 8, "ppo.checkpoint_every": 2,
         "ppo.kl_target": 0.5},  # the adaptive coefficient is restored too
    )  # fmt: skip
    run_ppo(cfg, tmp_path, tmp_path / "straight")
    broken = tmp_path / "resumed"
    shutil.copytree(tmp_path / "straight", broken)
    for later in ("checkpoints/update-00004", "model", "metrics.json"):
        shutil.rmtree(broken / later) if (broken / later).is_dir() else (broken / later).unlink()
    torch.manual_seed(999)  # whatever state the process is in, the checkpoint's is restored
    run_ppo(cfg, tmp_path, broken, resume=True)
    straight, resumed = read_log(tmp_path / "straight"), read_log(broken)
    assert [r["step"] for r in resumed] == [1, 2, 3, 4]
    for a, b in zip(straight[2:], resumed[2:], strict=True):
        for name in (M.PPO_REWARD, M.PPO_KL, M.PPO_POLICY_LOSS, M.PPO_KL_COEF):
            assert b[name] == pytest.approx(a[name], rel=1e-4, abs=1e-6), name
    final = [
        torch.load(d / "checkpoints/update-00004/state.pt", weights_only=False)["trainable"]
        for d in (tmp_path / "straight", broken)
    ]
    for name, tensor in final[0].items():
        assert torch.allclose(tensor, final[1][name], atol=1e-5), name
    # ...and the updates after the break did change the policy.
    at_2 = torch.load(broken / "checkpoints/update-00002/state.pt", weights_only=False)
    assert any(not torch.equal(v, at_2["trainable"][k]) for k, v in final[0].items())


def test_an_interrupt_never_overwrites_an_exact_checkpoint(ppo_run, tmp_path, monkeypatch):
    """Ctrl-C in the update after a checkpoint leaves that checkpoint as it was: saved again at
    the same number, it would hold part of the next update (resuming would repeat that part)."""
    import lab.ppo as ppo

    run, _ = ppo_run
    for stage in ("world", "sft", "reward"):
        shutil.copytree(run / stage, tmp_path / stage)
    cfg = load_config(
        "tiny", {**SMALL, "ppo.updates": 4, "ppo.batch_size": 8, "ppo.checkpoint_every": 2}
    )
    real, calls, exact = ppo.ppo_update, [], {}
    at_2 = tmp_path / "out" / "checkpoints" / "update-00002"

    def interrupted(*args):
        calls.append(len(calls))
        if len(calls) < 3:
            return real(*args)
        exact.update(torch.load(at_2 / "state.pt", weights_only=False)["trainable"])
        real(*args)  # the third update changes the weights, then Ctrl-C
        raise KeyboardInterrupt

    monkeypatch.setattr(ppo, "ppo_update", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_ppo(cfg, tmp_path, tmp_path / "out")
    after = torch.load(at_2 / "state.pt", weights_only=False)["trainable"]
    assert exact and all(torch.equal(after[k], v) for k, v in exact.items())
    assert latest_checkpoint(tmp_path / "out") == at_2
    samples = read_samples(tmp_path / "out")
    assert {s["update"] for s in samples} == {2}
    assert len(samples) == len({s["prompt"] for s in samples})  # each answer once, not twice


def test_an_interrupt_after_an_update_keeps_it_under_its_own_number(ppo_run, tmp_path, monkeypatch):
    """Ctrl-C while a checkpoint draws its sample answers: the update is whole, so it is saved
    as that update (saved one lower, resuming would have run it twice)."""
    import lab.ppo as ppo

    run, _ = ppo_run
    for stage in ("world", "sft", "reward"):
        shutil.copytree(run / stage, tmp_path / stage)
    cfg = load_config(
        "tiny", {**SMALL, "ppo.updates": 4, "ppo.batch_size": 8, "ppo.checkpoint_every": 2}
    )
    real, weights = ppo.checkpoint, {}

    def interrupted(out_dir, step, **kwargs):
        if step == 2 and not weights:  # Ctrl-C before this checkpoint wrote anything
            weights.update(kwargs["learner"].ac.trainable_state())
            raise KeyboardInterrupt
        return real(out_dir, step, **kwargs)

    monkeypatch.setattr(ppo, "checkpoint", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_ppo(cfg, tmp_path, tmp_path / "out")
    saved = latest_checkpoint(tmp_path / "out")
    assert saved.name == "update-00002"
    state = torch.load(saved / "state.pt", weights_only=False)["trainable"]
    assert all(torch.equal(state[k], v) for k, v in weights.items())


def test_resume_needs_every_processs_random_state(ppo_run, tmp_path):
    from lab.ppo_checkpoint import load_checkpoint

    run, _ = ppo_run
    folder = tmp_path / "update-00004"
    shutil.copytree(run / "ppo" / "checkpoints" / "update-00004", folder)
    (folder / "rng-rank0.pt").unlink()
    with pytest.raises(FileNotFoundError, match="rng-rank0.pt"):
        load_checkpoint(folder, None, None, None, None, None)


def test_checkpoint_samples_leave_the_training_stream_alone(small_reward_run):
    from lab.generation import DecodingConfig, generate
    from lab.models import load_causal_lm, load_tokenizer

    sft = small_reward_run / "sft" / "model"
    model, tokenizer = load_causal_lm(str(sft), device="cpu"), load_tokenizer(str(sft))
    torch.manual_seed(5)
    expected = torch.rand(3)
    torch.manual_seed(5)
    first = generate(model, tokenizer, ["What is 2 plus 3?"], DecodingConfig(seed=1))
    assert torch.equal(torch.rand(3), expected)  # the caller's stream did not move
    assert generate(model, tokenizer, ["What is 2 plus 3?"], DecodingConfig(seed=1)) == first


def test_lora_mode_shares_one_base(small_reward_run):
    run = small_reward_run
    ac = ActorCritic(
        str(run / "sft" / "model"), str(run / "reward" / "model"), 4, 8, "float32", "cpu"
    )
    assert not hasattr(ac, "reference")
    ac.prepare_for_training()
    trainable = sum(p.numel() for p in ac.trainable_parameters())
    total = sum(p.numel() for p in ac.parameters())
    assert trainable < 0.5 * total  # adapters and a head, not a second model
    ids = torch.tensor([[1, 4, 10, 11, 2, 5, 12, 13]])
    mask = torch.ones_like(ids)
    with torch.no_grad():
        for p in ac.trainable_parameters():
            p.add_(0.05 * torch.randn_like(p))  # pretend training moved the adapters
        policy = ac.response_logits(ids, mask, 3)
        ref = ac.reference_logits(ids, mask, 3)
        values = ac.values(ids, mask, 3)
    from transformers import AutoModelForCausalLM

    sft = AutoModelForCausalLM.from_pretrained(run / "sft" / "model")
    sft_logits = sft(input_ids=ids, attention_mask=mask).logits[:, -4:-1]
    assert torch.allclose(ref, sft_logits, atol=1e-4)  # adapters off = the SFT model
    assert not torch.allclose(policy, ref, atol=1e-3)
    assert values.shape == (1, 3)
    merged = ac.merged_policy()
    assert torch.allclose(merged(input_ids=ids).logits[:, -4:-1], policy, atol=1e-4)


def test_lora_sampler_decodes_the_policy_and_puts_every_weight_back(small_reward_run):
    # Inside `sampler()` the policy adapter is merged into copies of the base weights; outside,
    # the base (the reference and the value trunk) is bit for bit what it was.
    run = small_reward_run
    ac = ActorCritic(
        str(run / "sft" / "model"), str(run / "reward" / "model"), 4, 8, "float32", "cpu"
    )
    ac.prepare_for_training()
    ids = torch.tensor([[1, 4, 10, 11, 2, 5, 12, 13]])
    mask = torch.ones_like(ids)
    with torch.no_grad():
        for p in ac.trainable_parameters():
            p.add_(0.05 * torch.randn_like(p))  # pretend training moved the adapters
        base = {k: v.clone() for k, v in ac.policy.named_parameters() if "lora_" not in k}
        policy = ac.response_logits(ids, mask, 3)
        with ac.sampler() as model:
            merged = model(input_ids=ids, attention_mask=mask).logits[:, -4:-1]
            merged_base = {k: v for k, v in model.named_parameters() if "lora_" not in k}
            assert any(not torch.equal(merged_base[k], base[k]) for k in base), "merged"
            answer = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=6,
                                    do_sample=False)  # fmt: skip
        after = {k: v for k, v in ac.policy.named_parameters() if "lora_" not in k}
        unmerged = ac.policy.generate(input_ids=ids, attention_mask=mask, max_new_tokens=6,
                                      do_sample=False)  # fmt: skip
    assert torch.allclose(merged, policy, atol=1e-4), "the merged model is the policy"
    assert torch.equal(answer, unmerged), "greedy decoding picks the same tokens"
    assert all(torch.equal(after[k], base[k]) for k in base), "the base is exactly restored"
    assert torch.equal(ac.response_logits(ids, mask, 3), policy)


def test_empty_prompt_set_is_a_clear_error(small_reward_run, tmp_path):
    for stage in ("world", "sft", "reward"):
        shutil.copytree(small_reward_run / stage, tmp_path / stage)
    (tmp_path / "world" / "prompts_ppo.jsonl").write_text("")
    with pytest.raises(ValueError, match="prompts_ppo.jsonl"):
        run_ppo(load_config("tiny", SMALL), tmp_path, tmp_path / "ppo")


def flat(prompts: list, answers: list[str]) -> list[float]:
    """A reward that scores every answer the same."""
    return [0.0] * len(answers)


def test_a_constant_reward_trains_without_an_explained_variance(small_reward_run, tmp_path):
    """At the first update KL is exactly 0, so a constant reward makes every return the same:
    explained variance is undefined there and is left out of that row, not a crash."""
    for stage in ("world", "sft", "reward"):
        shutil.copytree(small_reward_run / stage, tmp_path / stage)
    flat_reward = {"ppo.reward": "function:tests.test_ppo.flat", "ppo.missing_eos_penalty": 0.0}
    cfg = load_config("tiny", {**SMALL, **flat_reward, "ppo.updates": 2})
    run_ppo(cfg, tmp_path, tmp_path / "ppo")
    rows = [row for row in read_log(tmp_path / "ppo") if M.PPO_REWARD in row]
    assert [row[M.PPO_REWARD] for row in rows] == [0.0, 0.0]
    assert M.PPO_EXPLAINED_VARIANCE not in rows[0] and M.PPO_EXPLAINED_VARIANCE in rows[1]


def test_metrics_json_is_plain(ppo_run):
    run, metrics = ppo_run
    json.dumps(metrics)


def test_reward_model_with_another_template_is_refused(small_reward_run, tmp_path):
    for stage in ("world", "sft", "reward"):
        shutil.copytree(small_reward_run / stage, tmp_path / stage)
    config = tmp_path / "sft" / "model" / "chat_template.jinja"
    config.write_text(config.read_text().replace("<|assistant|>", "<|assistant|>\n"))
    with pytest.raises(ValueError, match="different chat templates"):
        run_ppo(load_config("tiny", SMALL), tmp_path, tmp_path / "ppo")


def test_lora_mode_in_bfloat16_reads_the_same_values(small_reward_run):
    """Real profiles train LoRA over a bf16 base; the fp32 value head reads its states, and the
    values are those of the fp32 model to bf16's precision."""
    run = small_reward_run
    ids = torch.tensor([[1, 4, 10, 11, 2, 5, 12, 13]])
    values = {}
    for dtype in ("float32", "bfloat16"):
        torch.manual_seed(0)
        ac = ActorCritic(
            str(run / "sft" / "model"), str(run / "reward" / "model"), 4, 8, dtype, "cpu"
        )
        noise = torch.Generator().manual_seed(1)
        with torch.no_grad():  # the same trained-looking adapters and head in both
            for p in ac.trainable_parameters():
                p.add_((0.05 * torch.randn(p.shape, generator=noise)).to(p.dtype))
            values[dtype] = ac.values(ids, torch.ones_like(ids), 3)
    assert values["bfloat16"].dtype == torch.float32 and values["bfloat16"].shape == (1, 3)
    assert values["float32"].abs().max() > 0.01  # not all zero: the head reads something
    assert torch.allclose(values["bfloat16"], values["float32"], rtol=0.05, atol=0.02)


def test_token_stats_in_chunks_equal_one_pass(small_reward_run):
    """Step 4 goes through the rollout in chunks to bound memory; the numbers must not change."""
    from lab.ppo import token_stats

    run = small_reward_run
    ac = ActorCritic(
        str(run / "sft" / "model"), str(run / "reward" / "model"), 0, 8, "float32", "cpu"
    )
    torch.manual_seed(0)
    ids = torch.randint(5, 100, (5, 12))
    mask = torch.ones_like(ids)
    mask[:2, :3] = 0  # left padding on two rows
    whole = token_stats(ac, ids, mask, ids[:, -4:], 0.7, chunk=5)
    chunked = token_stats(ac, ids, mask, ids[:, -4:], 0.7, chunk=2)
    for a, b in zip(whole, chunked, strict=True):
        assert a.shape == (5, 4) and torch.allclose(a, b, atol=1e-5)


def ragged_update(ac: ActorCritic, cfg) -> tuple[tuple, dict]:
    """Step 4, then `ppo_update`, on six rows with ragged padding (left padding, tokens after
    EOS), the first epoch's minibatches drawn as `rollout` draws them: (stats, losses)."""
    from lab.ppo import Rollout, add_advantages, ppo_update, token_stats

    torch.manual_seed(1)
    ids = torch.randint(5, 100, (6, 14))  # 8 prompt columns, 6 response columns
    mask = torch.ones_like(ids)
    for row, (pad, cut) in enumerate([(0, 0), (5, 0), (2, 3), (7, 4), (0, 5), (4, 1)]):
        mask[row, :pad], mask[row, 14 - cut :] = 0, 0  # left padding, tokens after EOS
    ids = ids * mask
    gen = torch.Generator().manual_seed(0)
    order = torch.randperm(6, generator=gen)  # as `rollout` draws the first epoch's minibatches
    stats = token_stats(ac, ids, mask, ids[:, -6:], cfg.ppo.temperature, 3, order)
    r = Rollout(
        prompts=list("abcdef"), texts=list("uvwxyz"), ids=ids, mask=mask,
        response_mask=mask[:, -6:].float(), has_eos=torch.ones(6, dtype=torch.bool),
        score=torch.linspace(-1, 1, 6), logprobs=stats[0], ref_logprobs=stats[1],
        values=stats[2], entropy=stats[3], order=order,
    )  # fmt: skip
    add_advantages(r, 0.05, cfg)
    optimizer = torch.optim.AdamW(ac.trainable_parameters(), lr=cfg.ppo.lr)
    return stats, ppo_update(ac, optimizer, r, cfg, gen)


@pytest.mark.parametrize(
    "lora_r, checkpointing, packed",
    [(0, False, True), (4, False, True), (4, True, True), (0, False, False)],
)
def test_first_minibatch_ratio_is_exactly_one(small_reward_run, lora_r, checkpointing, packed):
    """The rollout's log-probs and the update's forwards before its first step agree to the
    last bit (ratio 1, approx KL 0), however much padding each minibatch carries."""
    overrides = {"ppo.lora_r": lora_r, "ppo.ppo_epochs": 1, "ppo.mini_batch_size": 3}
    cfg = load_config("tiny", {**SMALL, **overrides})
    cfg.ppo.lr = 0.0  # no step: every minibatch of the epoch is a "first" one
    ac = actor_critic(small_reward_run, lora_r, checkpointing, packed=packed)
    _, losses = ragged_update(ac, cfg)
    assert losses[M.PPO_RATIO] == 1.0 and losses[M.PPO_APPROX_KL] == 0.0
    assert losses[M.PPO_CLIPFRAC] == 0.0 and losses[M.PPO_VALUE_CLIPFRAC] == 0.0


def test_full_ppo_in_bf16_trains_fp32_weights_under_autocast(small_reward_run):
    """A bf16 profile's full fine-tuning: fp32 policy and value weights (in bf16 most Adam steps
    at PPO's 3e-6 round to nothing), every forward in bf16 autocast, generation's included, so
    the first minibatch's ratio is still exactly 1. The float32 profile gets no autocast."""
    run = small_reward_run
    sft, reward = str(run / "sft" / "model"), str(run / "reward" / "model")
    ac = ActorCritic(sft, reward, 0, 8, "bfloat16", "cpu")
    assert ac.half is torch.bfloat16
    assert {p.dtype for p in ac.trainable_parameters()} == {torch.float32}
    assert next(ac.reference.parameters()).dtype == torch.float32  # as the policy: KL starts at 0
    ids, mask = torch.tensor([[3, 4, 5, 6, 7, 8]]), torch.ones(1, 6, dtype=torch.long)
    with torch.no_grad():
        start = ac.response_logprobs(ids, mask, 3, 1.0), ac.reference_logprobs(ids, mask, 3, 1.0)
    assert torch.equal(*start)
    with ac.sampler() as model:
        assert model is ac.policy and torch.get_autocast_dtype("cpu") == torch.bfloat16
        assert torch.is_autocast_enabled("cpu")
    ac.prepare_for_training()
    ac.train()
    overrides = {"model.dtype": "bfloat16", "ppo.ppo_epochs": 1, "ppo.mini_batch_size": 3}
    cfg = load_config("tiny", {**SMALL, **overrides})
    cfg.ppo.lr = 0.0  # no step: both minibatches are "first" ones
    _, losses = ragged_update(ac, cfg)
    assert losses[M.PPO_RATIO] == 1.0 and losses[M.PPO_APPROX_KL] == 0.0
    before = [p.detach().clone() for p in ac.trainable_parameters()]
    cfg.ppo.lr = 3e-6  # the real profiles' PPO learning rate
    ragged_update(ac, cfg)
    moved = sum(int((p != q).sum()) for p, q in zip(ac.trainable_parameters(), before, strict=True))
    assert moved / sum(p.numel() for p in before) > 0.9
    assert ActorCritic(sft, reward, 0, 8, "float32", "cpu").half is None  # tiny: no autocast


@pytest.mark.parametrize("packed", [True, False])
def test_padding_changes_no_logit(small_reward_run, packed):
    """Step 4 and the update keep padding out of the forward (packed on a CPU, `align_left`
    on a GPU): the same logits and values (to float rounding) as the forward over the padded
    batch, and as the row alone."""
    from lab.responses import position_ids

    ac = actor_critic(small_reward_run, 0, packed=packed)
    ids = torch.tensor([[0, 0, 7, 8, 9, 10, 0], [3, 4, 5, 6, 7, 8, 9]])
    mask = (ids != 0).long()
    with torch.no_grad():
        logits = ac.response_logits(ids, mask, 3)
        padded = ac.policy(input_ids=ids, attention_mask=mask, position_ids=position_ids(mask))
        alone = ac.response_logits(ids[:1, 2:6], mask[:1, 2:6], 2)
    assert torch.allclose(logits[:, :2], padded.logits[:, -4:-2], atol=1e-5)
    assert torch.allclose(logits[1, 2], padded.logits[1, -2], atol=1e-5)
    assert torch.allclose(alone, logits[:1, :2], atol=1e-5)
    with torch.no_grad():
        values = ac.values(ids, mask, 3)
        hidden = ac.value_trunk(input_ids=ids, attention_mask=mask, position_ids=position_ids(mask))
        expected = ac.value_head(hidden.last_hidden_state[:, -4:-1]).squeeze(-1)
    assert torch.allclose(values[:, :2], expected[:, :2], atol=1e-5)
    assert torch.allclose(values[1], expected[1], atol=1e-5)


def actor_critic(
    run, lora_r: int, checkpointing: bool = False, moved: bool = True, packed: bool | None = None
) -> ActorCritic:
    """PPO's models on the small run; `moved`: adapters and head nudged off their zero init."""
    torch.manual_seed(0)  # the same LoRA initialisation and nudges every time
    ac = ActorCritic(
        str(run / "sft" / "model"), str(run / "reward" / "model"), lora_r, 8,
        "float32", "cpu", gradient_checkpointing=checkpointing, packed=packed,
    )  # fmt: skip
    assert ac.packed is (True if packed is None else packed)  # else both cases test one path
    ac.prepare_for_training()
    if moved:
        with torch.no_grad():
            for p in ac.trainable_parameters():
                p.add_(0.05 * torch.randn_like(p))
    return ac.train()


IDS = torch.tensor([[1, 4, 10, 11, 2, 5, 12, 13], [3, 4, 9, 11, 2, 7, 12, 2]])


def policy_and_value_grads(ac: ActorCritic) -> dict[str, torch.Tensor]:
    """One policy backward, then one value backward as `ppo_update` runs them."""
    mask = torch.ones_like(IDS)
    ac.response_logits(IDS, mask, 3).logsumexp(-1).mean().backward()
    with ac.critic():
        ac.values(IDS, mask, 3).pow(2).mean().backward()
    trainable = {id(p) for p in ac.trainable_parameters()}
    return {n: p.grad for n, p in ac.named_parameters() if id(p) in trainable}


@pytest.mark.parametrize("lora_r", [0, 4])
def test_every_trainable_tensor_gets_a_gradient(small_reward_run, lora_r):
    """Policy weights (or adapter), value weights (or adapter) and value head all learn."""
    grads = policy_and_value_grads(actor_critic(small_reward_run, lora_r))
    missing = [n for n, g in grads.items() if g is None or not g.abs().sum() > 0]
    assert not missing, f"{len(missing)}/{len(grads)} tensors without gradient, e.g. {missing[:3]}"
    if lora_r:
        assert any(".value." in n for n in grads) and any(".policy." in n for n in grads)


@pytest.mark.parametrize("lora_r", [0, 4])
def test_gradient_checkpointing_gives_the_same_gradients(small_reward_run, lora_r):
    """Real profiles recompute activations in backward to save memory; the maths must not move.

    With LoRA, backward recomputes the layers with the adapter active at that moment: the
    value gradients are right only if the value adapter is still active in the value backward.
    """
    plain, recomputed = (
        policy_and_value_grads(actor_critic(small_reward_run, lora_r, checkpointing))
        for checkpointing in (False, True)
    )
    assert plain.keys() == recomputed.keys()
    for name in plain:
        assert plain[name] is not None, name
        assert torch.allclose(plain[name], recomputed[name], atol=1e-5), name


def test_one_lora_ppo_update_moves_every_adapter_and_the_head(small_reward_run):
    """From the true initialisation (B = 0, head = 0), one `ppo_update` trains all of them."""
    from lab.ppo import Rollout, add_advantages, ppo_update, token_stats

    cfg = load_config("tiny", {**SMALL, "ppo.lora_r": 4, "ppo.mini_batch_size": 2})
    ac = actor_critic(small_reward_run, 4, moved=False)
    mask = torch.ones_like(IDS)
    response = IDS[:, -3:]
    logprobs, ref_logprobs, values, entropy = token_stats(ac, IDS, mask, response, 0.7, 2)
    r = Rollout(
        prompts=["a", "b"], texts=["x", "y"], ids=IDS, mask=mask,
        response_mask=torch.ones(2, 3), has_eos=torch.tensor([True, True]),
        score=torch.tensor([1.0, -1.0]), logprobs=logprobs, ref_logprobs=ref_logprobs,
        values=values, entropy=entropy,
    )  # fmt: skip
    add_advantages(r, 0.05, cfg)
    before = {k: v.clone() for k, v in ac.trainable_state().items()}
    optimizer = torch.optim.AdamW(ac.trainable_parameters(), lr=5e-3)
    ppo_update(ac, optimizer, r, cfg, torch.Generator().manual_seed(0))
    after = ac.trainable_state()
    still = [k for k in before if torch.equal(before[k], after[k])]
    assert not still, f"{len(still)}/{len(before)} tensors never moved, e.g. {still[:3]}"
    assert sum(".value." in k for k in before) == sum(".policy." in k for k in before) > 0


def test_dropout_is_off_in_every_role(small_reward_run, tmp_path):
    """A model trained with dropout: PPO's ratios and values must not see its noise."""
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    sft = AutoModelForCausalLM.from_pretrained(small_reward_run / "sft" / "model")
    sft.config.attention_dropout = 0.5
    sft.save_pretrained(tmp_path / "sft")
    reward = AutoModelForSequenceClassification.from_pretrained(
        small_reward_run / "reward" / "model"
    )
    reward.config.attention_dropout = 0.5  # the value trunk of full mode loads from it
    reward.save_pretrained(tmp_path / "reward")
    for name in ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja"):
        for role in ("sft", "reward"):
            if (small_reward_run / role / "model" / name).exists():
                shutil.copy(small_reward_run / role / "model" / name, tmp_path / role)
    for lora_r in (0, 4):
        ac = ActorCritic(
            str(tmp_path / "sft"), str(tmp_path / "reward"), lora_r, 8, "float32", "cpu"
        ).train()
        mask = torch.ones_like(IDS)
        with torch.no_grad():
            first = ac.response_logits(IDS, mask, 3), ac.values(IDS, mask, 3)
            second = ac.response_logits(IDS, mask, 3), ac.values(IDS, mask, 3)
        for a, b in zip(first, second, strict=True):
            assert torch.equal(a, b)
        if not lora_r:
            assert not ac.reference.training


def test_policy_and_value_side_by_side_compute_what_they_compute_in_turn(
    small_reward_run, monkeypatch
):
    """On 2 threads the full-mode roles run side by side, each task on 1 thread: the rollout's
    statistics, two epochs of updates and every weight after them are the very numbers of the
    same work done in turn on 1 thread."""
    import threading

    import lab.threads

    cfg = load_config("tiny", {**SMALL, "ppo.ppo_epochs": 2, "ppo.mini_batch_size": 3})
    cfg.ppo.lr = 1e-3
    results, before, workers = {}, torch.get_num_threads(), {1: [], 2: []}
    run = lab.threads._run
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            monkeypatch.setattr(lab.threads, "_run", lambda task, n, grad, t=threads: (
                workers[t].append((threading.current_thread().name, n)) or run(task, n, grad)
            ))  # fmt: skip
            ac = actor_critic(small_reward_run, 0)
            assert ac.apart
            stats, losses = ragged_update(ac, cfg)
            results[threads] = (stats, losses, ac.trainable_parameters())
    finally:
        torch.set_num_threads(before)
    assert not workers[1]  # in turn, in the calling thread
    assert len(workers[2]) >= 2 * 3 and all(  # rollout and update: two tasks at a time...
        name.startswith("lab-side") and n == 1 for name, n in workers[2]
    )  # ...each in a worker thread, on 1 thread
    (stats1, losses1, weights1), (stats2, losses2, weights2) = results[1], results[2]
    assert all(torch.equal(a, b) for a, b in zip(stats1, stats2, strict=True))
    assert losses1 == losses2 and losses2[M.PPO_GRAD_NORM] > 0
    assert all(torch.equal(a, b) for a, b in zip(weights1, weights2, strict=True))
    moved = actor_critic(small_reward_run, 0).trainable_parameters()
    assert all(not torch.equal(a, b) for a, b in zip(weights2, moved, strict=True))
