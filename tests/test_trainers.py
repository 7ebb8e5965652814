"""The TRL glue: a sharded save that would write nothing is refused before training ends badly."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from lab.trainers import trained_model


def test_fsdp_without_full_state_dict_is_a_clear_error(tmp_path):
    plugin = SimpleNamespace(state_dict_type="StateDictType.SHARDED_STATE_DICT")
    trainer = SimpleNamespace(
        is_fsdp_enabled=True, accelerator=SimpleNamespace(state=SimpleNamespace(fsdp_plugin=plugin))
    )
    with pytest.raises(ValueError, match="SHARDED_STATE_DICT.*FULL_STATE_DICT"):
        trained_model(trainer, load=lambda path: None, base="base", out_dir=tmp_path)
    assert not any(tmp_path.iterdir())  # nothing was written
