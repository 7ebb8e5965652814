"""The launch files in `configs/accelerate/`: accelerate reads them, and FSDP would shard what
it should. FSDP itself needs GPUs (on CPU accelerate runs data parallel over gloo instead), so
here the real launcher exports the FSDP file's settings and a probe reads them back as
accelerate's own plugin; `test_stages_ddp.py` runs the stages under `ddp.yaml`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from accelerate.commands.config.config_args import load_config_from_file
from accelerate.utils import DistributedType

from lab.notebook import REPO_ROOT
from lab.twins import TWINS

CONFIGS = REPO_ROOT / "configs" / "accelerate"


def test_accelerate_reads_both_launch_files():
    ddp = load_config_from_file(str(CONFIGS / "ddp.yaml"))
    fsdp = load_config_from_file(str(CONFIGS / "fsdp.yaml"))
    assert ddp.distributed_type == DistributedType.MULTI_GPU
    assert fsdp.distributed_type == DistributedType.FSDP
    # Precision and checkpointing are the profile's to decide, not the launcher's.
    assert ddp.mixed_precision == fsdp.mixed_precision == "no"
    assert fsdp.fsdp_config["fsdp_activation_checkpointing"] is False


def test_fsdp_file_shards_every_twin_by_decoder_layer_and_saves_whole_models():
    command = [
        *(sys.executable, "-m", "accelerate.commands.launch"),
        *("--config_file", str(CONFIGS / "fsdp.yaml"), "-m", "tests.fsdp_probe"),
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=300, env=env, cwd=REPO_ROOT
    )
    assert done.returncode == 0, done.stderr[-4000:]
    line = next(x for x in done.stdout.splitlines() if x.startswith("FSDP_PROBE "))
    probe = json.loads(line.removeprefix("FSDP_PROBE "))

    assert probe["use_fsdp"] == "true" and probe["world_size"] == 2 and probe["fsdp_version"] == 2
    assert probe["reshard_after_forward"] is True  # parameters gathered one layer at a time
    # A full state dict: `trained_model` saves one plain folder through the trainer.
    assert probe["state_dict_type"].endswith("FULL_STATE_DICT")
    # Every process loads the base model whole: stages score it before training.
    assert probe["cpu_ram_efficient_loading"] is False
    # One FSDP unit per decoder layer, for the policy and the reward model of every twin.
    assert len(probe["units"]) == 2 * len(TWINS)
    for name, units in probe["units"].items():
        expected = "Qwen2DecoderLayer" if name.startswith("Qwen") else "LlamaDecoderLayer"
        assert units == [expected], name
