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
