"""Architecture twins: the real configs of the lab's hub models, with random weights, offline.

A twin has the real model's shapes (so the same memory and FLOPs) but no download: the planner
(`lab.plan`) reads its config, and `benchmarks/planner_accuracy.py` trains it to check the plan.
"""

from __future__ import annotations

from pathlib import Path

from transformers import AutoConfig, PretrainedConfig

_SMOLLM2 = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "hidden_act": "silu",
    "max_position_embeddings": 8192,
    "rope_theta": 100000.0,
    "rms_norm_eps": 1e-5,
    "attention_bias": False,
    "mlp_bias": False,
    "tie_word_embeddings": True,
    "vocab_size": 49152,
    "initializer_range": 0.02,
}

TWINS: dict[str, dict] = {
    "HuggingFaceTB/SmolLM2-135M": {
        **_SMOLLM2,
        "hidden_size": 576,
        "intermediate_size": 1536,
        "num_hidden_layers": 30,
        "num_attention_heads": 9,
        "num_key_value_heads": 3,
    },
    "HuggingFaceTB/SmolLM2-360M": {
        **_SMOLLM2,
        "hidden_size": 960,
        "intermediate_size": 2560,
        "num_hidden_layers": 32,
        "num_attention_heads": 15,
        "num_key_value_heads": 5,
    },
    "Qwen/Qwen2.5-0.5B": {
        "architectures": ["Qwen2ForCausalLM"],
        "model_type": "qwen2",
        "hidden_act": "silu",
        "hidden_size": 896,
        "intermediate_size": 4864,
        "num_hidden_layers": 24,
        "num_attention_heads": 14,
        "num_key_value_heads": 2,
        "vocab_size": 151936,
        "max_position_embeddings": 32768,
        "rope_theta": 1000000.0,
        "rms_norm_eps": 1e-6,
        "tie_word_embeddings": True,
        "initializer_range": 0.02,
    },
}


def twin_config(hub_id: str, **overrides) -> PretrainedConfig:
    """The real config of `hub_id` (a key of `TWINS`), built offline."""
    if hub_id not in TWINS:
        raise KeyError(f"no twin for {hub_id!r}; known: {', '.join(TWINS)}")
    values = {k: v for k, v in TWINS[hub_id].items() if k != "model_type"}
    return AutoConfig.for_model(TWINS[hub_id]["model_type"], **values, **overrides)


def make_twin(hub_id: str, out_dir: str | Path, tokenizer, seed: int = 0) -> Path:
    """Save `hub_id`'s twin (real config, seeded random weights) and `tokenizer` in `out_dir`.

    The embedding keeps the real vocabulary size, larger than a small tokenizer's, so memory
    matches the real model; the tokenizer's special ids go into the config.
    """
    import torch  # only to build weights: planning needs the config alone
    from transformers import AutoModelForCausalLM

    out = Path(out_dir)
    config = twin_config(
        hub_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
