"""PPO end to end on the small world: it must raise the reward, keep KL bounded, checkpoint and resume."""

import json
import shutil

import pytest
import torch

from lab import metrics as M
from lab.ppo import response_mask, run_ppo
from lab.ppo_checkpoint import latest_checkpoint, read_samples
from lab.ppo_models import ActorCritic
from lab.profiles import load_config
from lab.runlog import read_log, read_metrics
from tests.conftest import SMALL


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


def test_every_metric_is_logged(ppo_run):
    run, _ = ppo_run
    names = [
        getattr(M, n)
        for n in dir(M)
        if n.startswith("PPO_") and n not in ("PPO_EVAL_KL", "PPO_EVAL_REWARD", "PPO_PROCESSES")
    ]
    row = read_log(run / "ppo")[-1]
    assert set(names) <= set(row), set(names) - set(row)


def test_checkpoints_keep_samples_and_the_policy_loads(ppo_run):
    from transformers import AutoModelForCausalLM

    run, _ = ppo_run
    assert latest_checkpoint(run / "ppo").name == "update-00012"
    samples = read_samples(run / "ppo")
    assert sorted({s["update"] for s in samples}) == [4, 8, 12]
    assert all("gold" in s and s["answer"] is not None for s in samples)
    AutoModelForCausalLM.from_pretrained(run / "ppo" / "model")
    assert read_metrics(run / "ppo")[M.EVAL_GOLD_MEAN] is not None


def test_resume_continues_from_the_last_checkpoint(ppo_run, tmp_path):
    run, _ = ppo_run
    for stage in ("world", "sft", "reward"):
        shutil.copytree(run / stage, tmp_path / stage)
    cfg = load_config(
        "tiny", {**SMALL, "ppo.updates": 2, "ppo.batch_size": 8, "ppo.checkpoint_every": 2}
    )
    run_ppo(cfg, tmp_path, tmp_path / "ppo")
    (tmp_path / "ppo" / "metrics.json").unlink()  # as if interrupted after the checkpoint
    cfg.ppo.updates = 4
    run_ppo(cfg, tmp_path, tmp_path / "ppo", resume=True)
    assert [r["step"] for r in read_log(tmp_path / "ppo")] == [1, 2, 3, 4]
    assert latest_checkpoint(tmp_path / "ppo").name == "update-00004"


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


def test_empty_prompt_set_is_a_clear_error(small_reward_run, tmp_path):
    for stage in ("world", "sft", "reward"):
        shutil.copytree(small_reward_run / stage, tmp_path / stage)
    (tmp_path / "world" / "prompts_ppo.jsonl").write_text("")
    with pytest.raises(ValueError, match="prompts_ppo.jsonl"):
        run_ppo(load_config("tiny", SMALL), tmp_path, tmp_path / "ppo")


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


def test_lora_mode_in_bfloat16_reads_values(small_reward_run):
    """Real profiles train LoRA over a bf16 base; the fp32 value head must accept its states."""
    run = small_reward_run
    ac = ActorCritic(
        str(run / "sft" / "model"), str(run / "reward" / "model"), 4, 8, "bfloat16", "cpu"
    )
    ids = torch.tensor([[1, 4, 10, 11, 2, 5, 12, 13]])
    with torch.no_grad():
        values = ac.values(ids, torch.ones_like(ids), 3)
    assert values.dtype == torch.float32 and values.shape == (1, 3)


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


@pytest.mark.parametrize("lora_r", [0, 4])
def test_gradient_checkpointing_gives_the_same_gradients(small_reward_run, lora_r):
    """Real profiles recompute activations in backward to save memory; the maths must not move."""
    run = small_reward_run
    ids = torch.tensor([[1, 4, 10, 11, 2, 5, 12, 13], [3, 4, 9, 11, 2, 7, 12, 2]])
    mask = torch.ones_like(ids)
    grads = []
    for checkpointing in (False, True):
        torch.manual_seed(0)  # the same LoRA initialisation both times
        ac = ActorCritic(
            str(run / "sft" / "model"), str(run / "reward" / "model"), lora_r, 8,
            "float32", "cpu", gradient_checkpointing=checkpointing,
        )  # fmt: skip
        ac.prepare_for_training()
        ac.train()
        loss = (
            ac.response_logits(ids, mask, 3).logsumexp(-1).mean() + ac.values(ids, mask, 3).mean()
        )
        loss.backward()
        grads.append([p.grad.clone() for p in ac.trainable_parameters() if p.grad is not None])
    assert len(grads[0]) == len(grads[1]) > 0
    for a, b in zip(*grads, strict=True):
        assert torch.allclose(a, b, atol=1e-5)
