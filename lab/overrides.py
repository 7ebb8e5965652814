"""Settings by name: `--set section.field=value`, YAML files and profiles applied to a `LabConfig`.

Every way of changing a setting goes through `apply_overrides`, which checks the name, the
type and the value, and names the setting in its one-line error.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import yaml

from lab.config import REPORT_TO, LabConfig

POSITIVE = frozenset(
    {
        "steps", "updates", "batch_size", "mini_batch_size", "ppo_epochs", "epochs",
        "max_new_tokens", "max_completion_length", "num_generations", "seq_len", "max_length",
        "grad_accum", "hidden_size", "num_layers", "num_heads", "num_kv_heads",
        "intermediate_size", "vocab_size", "n_countries", "n_annotators", "n_pretrain_docs",
        "n_sft", "n_pairs_train", "n_pairs_test", "n_ppo_prompts", "folds",
        "temperature",  # RL sampling: log-probs divide by it, so 0 (greedy) would be NaN
        "kl_horizon",  # the adaptive controller divides by it
    }
)  # fmt: skip
"""Settings that must be above 0 (every number setting must be finite and 0 or more)."""
BELOW_ONE = frozenset({"warmup_ratio"})
"""Shares that must be below 1 (transformers reads a warm-up of 1 or more as a step count)."""
CHOICES = {
    "dtype": ("float32", "bfloat16", "float16"),
    "kl_estimator": ("k1", "k3"),
    "report_to": REPORT_TO,
    "policy": ("sft", "base"),
    # TRL 1.16's losses (its trainers name a wrong one only at the first step, after loading),
    # less exo_pair and robust: they need a label_smoothing above 0, which the lab keeps at 0
    # (exo_pair stops, robust is then plain sigmoid).
    "dpo.loss_type": (
        "sigmoid", "hinge", "ipo", "nca_pair", "bco_pair", "sppo_hard", "aot", "aot_unpaired",
        "apo_zero", "apo_down", "discopop", "sft", "sigmoid_norm",
    ),
    # luspo is left out: it needs importance_sampling_level="sequence", which the lab keeps at token.
    "grpo.loss_type": ("dapo", "grpo", "dr_grpo", "bnpo", "cispo", "sapo", "vespo"),
}  # fmt: skip
"""Text settings with a fixed set of values, by name or by `section.name`."""
PATTERNS = {
    "device": (re.compile(r"auto|cpu|mps|(cuda|xpu)(:\d+)?"), "auto, cpu, cuda, cuda:N or mps"),
    "reward": (
        re.compile(r"model|function:.+|classifier:.+", re.DOTALL),
        "model, function:module.name or classifier:PATH[:LABEL[:prob|logit]]",
    ),
}
"""Text settings of a fixed form: (the form, what to tell a user who missed it)."""
NOT_SETTINGS = {"profile": "choose a profile with --profile NAME; it is a set of settings"}
"""Names a run records but a `--set` or a YAML file may not change (see `check_settable`)."""


class SetText(str):
    """A `--set` value as typed. A number or flag setting reads it as a YAML scalar (`0`,
    `1e-3`, `true`); a text setting keeps it as typed, which YAML would change (`0123` -> 83,
    `yes` -> True, `1.10` -> 1.1)."""


def apply_overrides(cfg: Any, overrides: dict[str, Any]) -> None:
    """Set dotted fields (`"pretrain.lr": 1e-3`) in place, checking names and types."""
    for key, value in overrides.items():
        *path, name = key.split(".")
        target = cfg
        for part in path:
            if not dataclasses.is_dataclass(target) or not hasattr(target, part):
                raise KeyError(f"unknown config section {part!r} in {key!r}")
            target = getattr(target, part)
        if not dataclasses.is_dataclass(target):
            raise KeyError(
                f"unknown config field {key!r}: {'.'.join(path)} is a setting, not a section"
            )
        fields = {f.name: f for f in dataclasses.fields(target)}
        if name not in fields:
            known = ", ".join(sorted(fields))
            raise KeyError(
                f"unknown config field {key!r}; {'.'.join(path) or 'top level'} has: {known}"
            )
        hint = typing.get_type_hints(type(target))[name]
        value = _coerce(value, hint, key)
        check_value(key, name, value)
        setattr(target, name, value)


def check_value(key: str, name: str, value: Any) -> None:
    """Refuse a setting's value that no stage can use, naming the setting (`key`)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"{key} must be a finite number, 0 or more; got {value}")
        if name in POSITIVE and value <= 0:
            raise ValueError(f"{key} must be above 0, got {value}")
        if name in BELOW_ONE and value >= 1:
            raise ValueError(f"{key} is a share of the steps: below 1, got {value}")
    choices = CHOICES.get(".".join(key.split(".")[-2:]), CHOICES.get(name))
    if choices is not None and value not in choices:
        raise ValueError(f"{key} must be one of {', '.join(choices)}; got {value!r}")
    if name in PATTERNS and isinstance(value, str) and not PATTERNS[name][0].fullmatch(value):
        raise ValueError(f"{key} must be {PATTERNS[name][1]}; got {value!r}")


def check_settable(overrides: dict[str, Any], where: str) -> None:
    """Refuse a name a run records but `where` (`--set`, a YAML file) may not change."""
    for key in overrides:
        if key in NOT_SETTINGS:
            raise KeyError(f"{where}: {key} is not a setting: {NOT_SETTINGS[key]}")


def parse_set_args(items: list[str]) -> dict[str, Any]:
    """Parse CLI `key=value` strings; each value is read for its setting's type (`SetText`)."""
    out: dict[str, Any] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise ValueError(f"--set expects key=value, got {item!r}")
        out[key] = SetText(raw)  # a key given again: the later value wins, as on any CLI
    return out


class UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping (PyYAML keeps the last
    without a word, so a settings file could quietly say two things)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen = set()
        for key_node, _ in node.value:
            if (
                key_node.tag == "tag:yaml.org,2002:merge"
            ):  # `<<: *defaults`, which keys may override
                continue
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, Hashable):  # PyYAML's own error follows
                continue
            if key in seen:
                line = key_node.start_mark.line + 1
                raise yaml.constructor.ConstructorError(
                    None, None, f"the key {key!r} is given twice (line {line})"
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


class YamlInt(int):
    """A YAML integer that remembers how it was written: a text setting keeps `0123` as typed
    (YAML 1.1 reads it as the octal 83)."""

    text: str


class YamlFloat(float):
    """A YAML float that remembers how it was written (`1.10` stays `1.10` for a text setting)."""

    text: str


def _as_written(kind: type, construct):
    def constructor(loader: yaml.SafeLoader, node: yaml.ScalarNode):
        value = kind(construct(loader, node))
        value.text = node.value
        return value

    return constructor


UniqueKeyLoader.add_constructor(
    "tag:yaml.org,2002:int", _as_written(YamlInt, yaml.SafeLoader.construct_yaml_int)
)
UniqueKeyLoader.add_constructor(
    "tag:yaml.org,2002:float", _as_written(YamlFloat, yaml.SafeLoader.construct_yaml_float)
)


def load_yaml_overrides(path: str | Path) -> dict[str, Any]:
    """Read a YAML file of nested sections and flatten it to dotted keys."""
    try:
        text = Path(path).read_text(encoding="utf-8")
        data = yaml.load(text, Loader=UniqueKeyLoader) or {}  # noqa: S506 - a safe loader
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise ValueError(f"{path}: cannot read it as YAML settings ({reason})") from None
    if not isinstance(data, dict):
        raise ValueError(
            f"{path}: expected a mapping of config sections, got {type(data).__name__}"
        )
    return _flatten(data)


def to_dict(cfg: Any) -> dict[str, Any]:
    """The config as plain nested dicts (for metrics.json and config.yaml)."""
    return dataclasses.asdict(cfg)


def from_dict(data: dict[str, Any]) -> LabConfig:
    """The inverse of `to_dict`: a `LabConfig` from nested dicts (e.g. a run's config.json)."""
    cfg = LabConfig()
    apply_overrides(cfg, _flatten(data))
    return cfg


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(_flatten(value, dotted + "."))
        else:
            flat[dotted] = value
    return flat


def _coerce(value: Any, hint: Any, key: str) -> Any:
    # Accept ints for float fields and strings that YAML left as strings; refuse the rest.
    optional = False
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        optional = type(None) in typing.get_args(hint)
        if value is None and optional:
            return None
        hint = next(a for a in typing.get_args(hint) if a is not type(None))
    if isinstance(value, SetText):  # as typed on the command line
        if hint is str:
            return str(value)
        if not value.strip():
            raise TypeError(f"{key} expects {getattr(hint, '__name__', hint)}, got nothing")
        try:
            value = yaml.safe_load(value)
        except yaml.YAMLError:
            raise TypeError(
                f"{key} expects {getattr(hint, '__name__', hint)}, got {value!r}"
            ) from None
        if value is None and optional:  # `--set key=null`
            return None
    if hint in (int, float) and isinstance(value, str):
        # YAML reads "1e-3" (no dot) as a string; numbers written that way are still numbers.
        try:
            value = float(value) if hint is float else int(value)
        except ValueError:
            raise TypeError(f"{key} expects {hint.__name__}, got {value!r}") from None
    if hint is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if hint is str and isinstance(value, int | float):
        return getattr(value, "text", str(value))  # as written in a YAML file
    if (
        isinstance(hint, type)
        and isinstance(value, hint)
        and not (hint is int and isinstance(value, bool))
    ):
        return int(value) if hint is int else value  # a plain int, not a `YamlInt`
    raise TypeError(f"{key} expects {getattr(hint, '__name__', hint)}, got {value!r}")
