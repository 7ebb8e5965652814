"""Where RL's reward comes from: one spec string, one scorer `(prompts, completions) -> scores`.

    model                              the run's learned reward model (the default)
    function:pkg.module.name           any Python function (prompts, completions) -> list of floats
    classifier:PATH[:LABEL[:OUTPUT]]   an AutoModelForSequenceClassification (folder or hub id),
                                       read as one label's probability (OUTPUT `prob`, the
                                       default) or its logit (`logit`); LABEL is a name from the
                                       model's id2label or an index (default: the last label)

`{run}` in a spec stands for the run folder: `classifier:{run}/classifier/model:clean` is the
classifier the run's own classifier stage trained. Prompts are strings or conversations;
completions are the answers as plain text. A classifier reads the completion alone (as TRL's
detoxification example does): the answer is what the policy controls.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from lab.models import resolve_device
from lab.reward_model import check_same_template, load_reward_model, score

Scorer = Callable[[Sequence, Sequence[str]], list[float]]
KINDS = ("model", "function", "classifier")
OUTPUTS = ("prob", "logit")
USAGE = "use model, function:module.name or classifier:PATH[:LABEL[:prob|logit]]"


@dataclass(frozen=True)
class RewardSpec:
    """A parsed reward spec: `RewardSpec("classifier", "lvwerra/distilbert-imdb", "POSITIVE", "logit")`."""

    kind: str
    """model, function or classifier."""
    target: str = ""
    """The function's dotted name, or the classifier's folder or hub id."""
    label: str = ""
    """Classifier only: the label's name or index; empty = the last label."""
    output: str = "prob"
    """Classifier only: prob (softmax over the labels) or logit."""


def parse_spec(spec: str, run_dir: str | Path | None = None) -> RewardSpec:
    """Read a spec string (pure: imports and loads nothing); `{run}` becomes `run_dir`."""
    if run_dir is not None:
        spec = spec.replace("{run}", str(run_dir))
    kind, _, rest = spec.strip().partition(":")
    if kind not in KINDS:
        raise ValueError(f"reward spec {spec!r}: unknown kind {kind!r}; {USAGE}")
    if kind == "model":
        if rest:
            raise ValueError(f"reward spec {spec!r}: `model` takes no argument; {USAGE}")
        return RewardSpec("model")
    if not rest:
        raise ValueError(f"reward spec {spec!r}: {kind} needs a target; {USAGE}")
    if kind == "function":
        if "." not in rest or ":" in rest:
            raise ValueError(f"reward spec {spec!r}: expected function:module.name; {USAGE}")
        return RewardSpec("function", rest)
    target, *extra = rest.split(":")
    if len(extra) > 2 or not target:
        raise ValueError(f"reward spec {spec!r}: expected classifier:PATH[:LABEL[:OUTPUT]]")
    label, output = (extra[0] if extra else ""), (extra[1] if len(extra) > 1 else "prob")
    if output not in OUTPUTS:
        raise ValueError(f"reward spec {spec!r}: output {output!r} is not prob or logit")
    return RewardSpec("classifier", target, label, output)


def load_scorer(
    spec: str,
    run_dir: str | Path,
    device="cpu",
    reward_model: str | Path | None = None,
    policy_tokenizer=None,
) -> Scorer:
    """The scorer a spec names. `reward_model` replaces the run's `reward/model` for `model`;
    with `policy_tokenizer` a reward model must share its chat template."""
    s = parse_spec(spec, run_dir)
    if s.kind == "model":
        folder = str(reward_model or Path(run_dir) / "reward" / "model")
        rm, rm_tokenizer = load_reward_model(folder, device)
        if policy_tokenizer is not None:
            check_same_template(policy_tokenizer, rm_tokenizer, "the policy", folder)
        return model_scorer(rm, rm_tokenizer)
    if s.kind == "function":
        return function_scorer(import_function(s.target))
    model, tokenizer = load_classifier(s.target, device)
    return classifier_scorer(model, tokenizer, label_index(model.config, s.label), s.output)


def model_scorer(rm, rm_tokenizer) -> Scorer:
    """The learned reward model (`lab.reward_model.score`) as a scorer."""
    return lambda prompts, completions: score(rm, rm_tokenizer, prompts, completions)


def difference_scorer(scorer: Scorer, baseline: Scorer) -> Scorer:
    """`scorer` minus `baseline` on the same answers: what one reward model adds to another.

    A feedback round rewards its adapted reward model minus the one it adapted from: only what
    the votes changed pushes the policy, and the errors both share cancel out.
    """

    def difference(prompts: Sequence, completions: Sequence[str]) -> list[float]:
        new, old = scorer(prompts, completions), baseline(prompts, completions)
        if not len(new) == len(old) == len(completions):
            raise ValueError(
                f"a reward and its baseline gave {len(new)} and {len(old)} scores "
                f"for {len(completions)} answers"
            )
        return [a - b for a, b in zip(new, old, strict=True)]

    return difference


def import_function(dotted: str) -> Callable:
    """`pkg.module.name` -> the function, or a one-line error saying what failed."""
    module_name, _, name = dotted.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError as e:
        raise ValueError(f"reward function {dotted!r}: cannot import {module_name!r} ({e})") from e
    fn = getattr(module, name, None)
    if not callable(fn):
        raise ValueError(f"reward function {dotted!r}: {module_name} has no function {name!r}")
    return fn


def function_scorer(fn: Callable) -> Scorer:
    """A plain `(prompts, completions) -> scores` function, its output checked and made floats."""

    def scorer(prompts: Sequence, completions: Sequence[str]) -> list[float]:
        scores = [float(x) for x in fn(list(prompts), list(completions))]
        if len(scores) != len(completions):
            raise ValueError(f"{fn.__name__} gave {len(scores)} scores for {len(completions)}")
        return scores

    return scorer


def load_classifier(path_or_id: str, device="cpu"):
    """A sequence classifier, frozen in eval mode, and its tokenizer padding on the right."""
    model = AutoModelForSequenceClassification.from_pretrained(path_or_id)
    model = model.to(resolve_device(str(device))).eval().requires_grad_(False)
    tokenizer = AutoTokenizer.from_pretrained(path_or_id)
    tokenizer.padding_side = "right"
    if tokenizer.pad_token is None:  # GPT-2-style tokenizers: the mask decides what is padding
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    if model.config.pad_token_id is None:  # decoder classifiers read the last non-pad token
        model.config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def label_index(config, label: str) -> int:
    """The output a label names (`"POSITIVE"` or `"1"`); empty = the last label."""
    id2label = {int(i): str(name) for i, name in config.id2label.items()}
    if label == "":
        return config.num_labels - 1
    if label.isdigit() and int(label) < config.num_labels:
        return int(label)
    for i, name in id2label.items():
        if name == label:
            return i
    labels = ", ".join(f"{i}={n}" for i, n in sorted(id2label.items()))
    raise ValueError(f"classifier has no label {label!r}; its labels: {labels}")


def classifier_scorer(model, tokenizer, index: int, output: str, batch_size: int = 32) -> Scorer:
    """Label `index`'s probability (softmax over the labels) or logit for each completion."""
    max_length = min(tokenizer.model_max_length, 512)

    @torch.no_grad()
    def scorer(prompts: Sequence, completions: Sequence[str]) -> list[float]:
        out: list[float] = []
        for start in range(0, len(completions), batch_size):
            texts = list(completions[start : start + batch_size])
            batch = tokenizer(
                texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt"
            ).to(model.device)
            logits = model(**batch).logits.float()  # (B, labels)
            read = logits.softmax(-1) if output == "prob" else logits
            out += read[:, index].tolist()
        return out

    return scorer
