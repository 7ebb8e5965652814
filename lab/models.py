"""Loading and building models: a hub id, a local folder, or a tiny Llama from scratch."""

from __future__ import annotations

from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

from lab.config import ModelConfig
from lab.distributed import is_main

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_device(name: str) -> torch.device:
    """`auto` picks cuda when present, else cpu."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def tiny_llama_config(cfg: ModelConfig, tokenizer) -> LlamaConfig:
    """A small Llama sized by `cfg`, with the tokenizer's vocabulary and special ids."""
    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_kv_heads,
        max_position_embeddings=cfg.max_length,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def build_tiny_llama(cfg: ModelConfig, tokenizer, seed: int = 0) -> LlamaForCausalLM:
    """A freshly initialised tiny Llama (the base model before pretraining)."""
    torch.manual_seed(seed)
    return LlamaForCausalLM(tiny_llama_config(cfg, tokenizer))


def trainable_dtype(dtype: str, lora_r: int) -> str:
    """The dtype to load a model in that a stage trains, for a profile in `dtype`.

    Full fine-tuning keeps fp32 master weights (the trainer's bf16/fp16 is then autocast): an
    Adam step at 1e-6 is below half a bf16 ulp of a typical weight and would round to nothing.
    LoRA keeps the half-precision base frozen (peft keeps its adapters in fp32).
    """
    return "float32" if lora_r == 0 else dtype


def load_causal_lm(path_or_id: str, dtype: str = "float32", device: str = "auto"):
    """`AutoModelForCausalLM.from_pretrained`, the same call for a folder or a hub id."""
    model = AutoModelForCausalLM.from_pretrained(path_or_id, dtype=DTYPES[dtype])
    return model.to(resolve_device(device))


# For a base model that ships no chat template: plain "User:/Assistant:" turns, and, as in the
# tiny world's template, an assistant turn ends exactly at EOS (where the reward model reads).
PLAIN_CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'system' -%}{{ message['content'] + '\\n\\n' }}"
    "{%- elif message['role'] == 'user' -%}{{ 'User: ' + message['content'] + '\\n' }}"
    "{%- elif message['role'] == 'assistant' -%}"
    "{{ 'Assistant:' }}{% generation %}{{ ' ' + message['content'] + eos_token }}{% endgeneration %}"
    "{%- else -%}{{ raise_exception('unknown role: ' + message['role']) }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ 'Assistant:' }}{%- endif -%}"
)


def load_tokenizer(path_or_id: str):
    """The tokenizer, padding on the left; a pad token, a chat template and EOS at a turn's end.

    A base model without a chat template gets `PLAIN_CHAT_TEMPLATE` (saved with the SFT model).
    """
    tokenizer = AutoTokenizer.from_pretrained(path_or_id)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        # Masks, never pad ids, decide what is padding in the lab, so reusing a token is safe.
        tokenizer.pad_token = tokenizer.unk_token or tokenizer.eos_token
    if not tokenizer.chat_template:
        tokenizer.chat_template = PLAIN_CHAT_TEMPLATE
    end = turn_end_token(tokenizer)
    if end is not None and end != tokenizer.eos_token:
        # ChatML bases (SmolLM2, Qwen2.5) close a turn with <|im_end|>, not EOS: the lab stops
        # answers, masks responses and reads rewards at EOS, so EOS becomes the turn's end.
        tokenizer.eos_token = end
    return tokenizer


def turn_end_token(tokenizer) -> str | None:
    """The special token the chat template closes an assistant turn with (None if plain text)."""
    chat = [{"role": "user", "content": "Hi."}, {"role": "assistant", "content": "Yes."}]
    text = tokenizer.apply_chat_template(chat, tokenize=False)
    after = text[text.rindex("Yes.") + len("Yes.") :]
    specials = set(tokenizer.all_special_tokens) | set(tokenizer.get_added_vocab())
    return next((t for t in sorted(specials, key=len, reverse=True) if after.startswith(t)), None)


def save_model(model, tokenizer, folder: Path) -> None:
    """A plain model folder that `from_pretrained` loads; written by the main process only.

    The model's EOS becomes the tokenizer's (a ChatML base's turn end, `load_tokenizer`): a LoRA
    model merged into a fresh base would otherwise keep the base's, and TRL, or anyone loading
    the folder, would stop answers at another token than the lab does."""
    if is_main():
        model.config.eos_token_id = tokenizer.eos_token_id
        if getattr(model, "generation_config", None) is not None:
            model.generation_config.eos_token_id = tokenizer.eos_token_id
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)


def num_params(model: torch.nn.Module) -> int:
    """Parameters, counting tied weights once."""
    return sum(p.numel() for p in model.parameters())
