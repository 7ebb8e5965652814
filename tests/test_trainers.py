"""The TRL glue: an FSDP launch whose trained model could not be read back is refused up front."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from lab.trainers import check_launch


def fsdp_trainer(version: int, state_dict_type: str) -> SimpleNamespace:
    plugin = SimpleNamespace(fsdp_version=version, state_dict_type=state_dict_type)
    state = SimpleNamespace(fsdp_plugin=plugin)
    return SimpleNamespace(is_fsdp_enabled=True, accelerator=SimpleNamespace(state=state))


@pytest.mark.parametrize(
    "version, kind", [(2, "StateDictType.SHARDED_STATE_DICT"), (1, "StateDictType.FULL_STATE_DICT")]
)
def test_fsdp_that_cannot_save_whole_models_is_a_clear_error(version, kind):
    with pytest.raises(ValueError, match="fsdp_version: 2 and fsdp_state_dict_type: FULL"):
        check_launch(fsdp_trainer(version, kind))


def test_fsdp2_with_full_state_dicts_and_no_fsdp_pass():
    check_launch(fsdp_trainer(2, "StateDictType.FULL_STATE_DICT"))
    check_launch(SimpleNamespace(is_fsdp_enabled=False))


def test_log_report_to_reaches_the_trainers_and_every_stage_log(tmp_path):
    from lab.profiles import load_config
    from lab.trainers import trainer_args

    cfg = load_config("tiny", {"log.report_to": "tensorboard"})
    assert trainer_args(cfg, cfg.sft, tmp_path)["report_to"] == ["tensorboard"]
    assert cfg.log.targets() == ("tensorboard",)  # what each stage hands its RunLog
    assert trainer_args(load_config("tiny"), cfg.sft, tmp_path)["report_to"] == "none"
    cfg.log.report_to = "wandb"  # --set checks the type only; the value is checked here
    with pytest.raises(ValueError, match="log.report_to: 'wandb' is not one of none, tensorboard"):
        cfg.log.targets()


@pytest.mark.parametrize(
    "dtype, lora_r, expected",
    [
        ("bfloat16", 0, "float32"),  # full fine-tuning: fp32 master weights, bf16 autocast
        ("float16", 0, "float32"),
        ("float32", 0, "float32"),  # the tiny profile: unchanged
        ("bfloat16", 16, "bfloat16"),  # LoRA: the frozen base stays half (adapters are fp32)
        ("float16", 8, "float16"),
        ("float32", 16, "float32"),
    ],
)
def test_trained_weights_load_in_fp32_unless_lora(dtype, lora_r, expected):
    from lab.models import trainable_dtype

    assert trainable_dtype(dtype, lora_r) == expected


def test_a_small_adam_step_vanishes_in_bf16_weights_and_not_in_fp32():
    import torch

    # Why: a weight of 0.02 has a bf16 ulp of 2^-13 (1.2e-4); a DPO-sized step of 5e-7 is far
    # below half of it, so bf16 weights never move; fp32 ones do.
    weight, step = torch.tensor(0.02), 5e-7
    assert weight.bfloat16() + step == weight.bfloat16()
    assert weight + step != weight


def test_real_profiles_keep_bf16_on_as_autocast(tmp_path):
    from lab.profiles import load_config
    from lab.trainers import trainer_args

    cfg = load_config("smollm2-135m")
    assert cfg.model.dtype == "bfloat16" and cfg.dpo.lora_r == 0
    args = trainer_args(cfg, cfg.dpo, tmp_path)
    assert args["bf16"] is True and args["fp16"] is False
    tiny = load_config("tiny")
    assert trainer_args(tiny, tiny.dpo, tmp_path)["bf16"] is False  # CPU float32: no autocast


def test_a_saved_model_stops_where_its_tokenizer_does(tmp_path):
    """A LoRA model merged into a fresh base keeps the base's EOS; the folder gets the lab's."""
    from transformers import AutoConfig, AutoModelForCausalLM, LlamaConfig

    from lab.models import save_model

    shape = {"hidden_size": 16, "intermediate_size": 32, "num_attention_heads": 2}
    config = LlamaConfig(vocab_size=40, num_hidden_layers=1, eos_token_id=2, **shape)
    model = AutoModelForCausalLM.from_config(config)
    tokenizer = SimpleNamespace(eos_token_id=7, save_pretrained=lambda folder: None)
    save_model(model, tokenizer, tmp_path / "model")
    assert AutoConfig.from_pretrained(tmp_path / "model").eos_token_id == 7
    saved = AutoModelForCausalLM.from_pretrained(tmp_path / "model")
    assert saved.generation_config.eos_token_id == 7
