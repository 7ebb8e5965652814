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
