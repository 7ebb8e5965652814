"""Launched by `test_accelerate_configs.py` under `configs/accelerate/fsdp.yaml`: print, as JSON,
the FSDP plugin accelerate builds from the launcher's environment, and which modules of each
twin (causal LM and reward model) it would shard as a unit. Models are built on the meta device.
"""

from __future__ import annotations

import json
import os

import torch
from accelerate.utils import FullyShardedDataParallelPlugin
from accelerate.utils.fsdp_utils import fsdp2_prepare_auto_wrap_policy
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

from lab.twins import TWINS, twin_config


def sharded_units(plugin: FullyShardedDataParallelPlugin, model: torch.nn.Module) -> list[str]:
    """Class names of the modules the plugin's auto-wrap policy gives their own FSDP group."""
    policy = fsdp2_prepare_auto_wrap_policy(plugin, model)
    return sorted({type(m).__name__ for m in model.modules() if policy(m)})


def main() -> None:
    plugin = FullyShardedDataParallelPlugin()  # reads FSDP_* as `Accelerator` does
    units = {}
    for hub_id in TWINS:
        for kind, auto in (
            ("lm", AutoModelForCausalLM),
            ("reward", AutoModelForSequenceClassification),
        ):
            with torch.device("meta"):
                model = auto.from_config(twin_config(hub_id, num_labels=1))
            units[f"{hub_id} {kind}"] = sharded_units(plugin, model)
    report = {
        "use_fsdp": os.environ.get("ACCELERATE_USE_FSDP"),
        "world_size": int(os.environ["WORLD_SIZE"]),
        "fsdp_version": plugin.fsdp_version,
        "reshard_after_forward": plugin.reshard_after_forward,
        "state_dict_type": str(plugin.state_dict_type),
        "cpu_ram_efficient_loading": plugin.cpu_ram_efficient_loading,
        "units": units,
    }
    if int(os.environ.get("RANK", 0)) == 0:
        print("FSDP_PROBE " + json.dumps(report))


if __name__ == "__main__":
    main()
