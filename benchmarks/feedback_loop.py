"""Print what one feedback round does with a simulated class's votes (numbers, not a test).

A class with taste `terse` casts battle votes in the arena; one `lab feedback` round with the
defaults adapts the reward model and runs PPO from the current policy. Printed: agreement with
the class on held-out votes (and the ceiling the class's own noise allows), what the votes can
teach (each model's share of the vote pairs and the share of them it won; the pairs whose
answers differ only in polite phrases), gold accuracy on the world's held-out pairs, two probes
of what the reward model learnt (padding; whether it can tell a right fact from a wrong one),
the new policy against the previous one on held-out prompts, time.
`--groups`: a `terse` and a `warm` class, one round per group; the two policies' lengths.

The new policy is measured twice: on the one answer per held-out prompt saved with each policy
(T=0.7), and on the `--samples` answers per prompt (default 8) that the round itself measured
both policies on (`FeedbackConfig.samples`; its ppo/ folder keeps them), compared prompt by
prompt under the class's taste with 95% bootstrap intervals
(`lab.group_compare.compute_policy_change`). One answer is a noisy view: once the two policies'
first words differ, the rest are independent draws, so a prompt's credit or utility flips either
way by chance; on two of the seeds below a single draw made the credit drop look 2-3x larger.

The round's policy is rewarded with the adapted reward model's score minus the old one's
(`FeedbackConfig.ppo_reward_delta`), its critic starting at a zero head. 200 votes, vote seeds
0-2, 2 CPU cores, a fresh tiny run (PPO gold -0.48 on one answer per prompt, answers 14.0
tokens, credit 0.266 over 8 samples), 8 samples per prompt, the reward model adapted at half
the reward stage's learning rate (`FeedbackConfig.lr_scale` 0.5): padding -32%, -46%, -39%;
length -22%, -22%, -22%; credit -0.043, -0.037, -0.020 (intervals within [-0.060, -0.002]);
better under `terse` on 80%, 80%, 83% of prompts (Wilson lower bounds 74-77%); agreement
0.72 -> 0.85, 0.65 -> 0.82, 0.65 -> 0.73 (ceilings 0.95, 0.97, 0.94); gold accuracy
0.720 -> 0.697, 0.713, 0.708; the adapted model prefers the policy's padded answers without
their padding on 69%, 89%, 83% of them; round 92-98 s. `--groups` (seed 0): the warm group's
policy +37% padding, +20% length, its answers 54% longer than the terse group's; both rounds
178 s. At a fifth of the rate (`--set lr_scale=0.2`, the default before): padding -26%, -28%,
-24%; length -18%, -17%, -16%; credit -0.032, -0.027, -0.006; better on 77%, 78%, 78%;
agreement -> 0.81, 0.78, 0.73; gold accuracy -> 0.713, 0.708, 0.725; the padding probe 39%
(seed 0). Harder on seed 0, reward model only: `lr_scale=0.7` agreement 0.85, gold accuracy
0.693, probe 66%; `epochs=8` at 0.2: 0.82, 0.697, 63%; `lr_scale=0.5 epochs=6` 0.80, 0.695, 73%;
`lr_scale=0.5 epochs=8` 0.77; `replay=2` at 0.5: 0.79, 0.715, 35%. 40 PPO updates instead of
20 (`--set ppo_updates=40`): padding -32% and -54% (seeds 0, 1), credit -0.055 and -0.029;
beta 0.15 (`--set ppo_kl_coef=0.15`, seed 0): padding -32%, credit -0.042, no further.
Measured before each batch of held-out prompts drew from its own seed (`generation.batch_seed`),
so with less tightly paired samples: one answer per prompt, credit -0.058, -0.070, +0.029,
better on 39-46%; with beta 0.1 (`--set ppo_kl_coef=0.1`): padding -31%, -44%, -36%, length
-20%, -25%, -20%, credit -0.046, -0.077, -0.017, better on 68%, 68%, 78%; a control round with
a zero reward: padding +3%, credit -0.002 (one answer per prompt). On a run whose PPO policy
was weaker (gold -0.66), the same round moved padding only 5-10%.

    python benchmarks/feedback_loop.py --run runs/tiny --votes 200
    python benchmarks/feedback_loop.py --run runs/tiny --votes 200 --groups
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import tempfile
import time
from pathlib import Path

import pandas as pd

from apps.loading import load_arena
from apps.simulate import simulate_votes
from lab import metrics as M
from lab.config import LabConfig
from lab.evaluation import EVAL_DECODING
from lab.feedback import FeedbackConfig
from lab.feedback_round import current_models, feedback_round
from lab.group_compare import (
    MEASURED_START_TABLE,
    MEASURED_TABLE,
    answers_of,
    compute_policy_change,
    policy_home,
)
from lab.intervals import wilson_interval
from lab.leaderboard import compute_model_counts
from lab.overrides import apply_overrides, parse_set_args
from lab.reward_model import load_reward_model
from lab.reward_model import score as rm_score
from lab.stages import CONFIG_FILE
from lab.votes_db import pairs_to_battles, to_preferences
from lab.world.judge import classify, score, split_sentences
from lab.world.tastes import compute_style_only_pairs, taste_weights

LABELS = {
    "padding": "polite+filler phrases per answer",
    "length": "answer length (tokens)",
    "credit": "credit",
    "utility": "utility under the taste",
}
TARGETS = (
    "agreement >= 0.80 or ceiling - 0.05; gold loss <= 0.03; polite+filler -50%; length -20%; "
    "credit drop <= 0.05; new beats old on >= 70% of prompts"
)


def one_line(err: Exception) -> str:
    """An error's message as one line (a KeyError's without its quotes)."""
    text = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
    return text.splitlines()[0] if text.strip() else type(err).__name__


def noise_ceiling(world, pairs: list[dict], taste: str) -> float:
    """Agreement of the class's noiseless taste with its own (noisy) votes."""
    w = taste_weights(taste)
    agree = [
        score(world.features(p["prompt"], p["chosen"]), w)
        > score(world.features(p["prompt"], p["rejected"]), w)
        for p in pairs
    ]
    return sum(agree) / len(agree)


def prefers_second(reward_model: Path, rows: list[tuple]) -> int:
    """How many (prompt, first, second) rows the reward model scores the second answer higher in."""
    rm, tokenizer = load_reward_model(reward_model, "cpu")
    prompts = [r[0] for r in rows]
    first = rm_score(rm, tokenizer, prompts, [r[1] for r in rows])
    second = rm_score(rm, tokenizer, prompts, [r[2] for r in rows])
    return sum(b > a for a, b in zip(first, second, strict=True))


def pleasantry_probe(reward_model: Path, table: pd.DataFrame) -> str:
    """What a reward model learned about padding: on the policy's own answers that have polite
    or filler sentences, how often it scores the answer higher with them taken out."""
    rows = []
    for prompt, answer in zip(table["prompt"], table["answer"], strict=True):
        sentences = split_sentences(answer)
        kept = [s for s in sentences if classify(s)[0] not in ("polite", "filler")]
        if kept and len(kept) < len(sentences):
            rows.append((prompt, answer, " ".join(kept)))
    if not rows:
        return "n/a (no padded answers)"
    prefers = prefers_second(reward_model, rows) / len(rows)
    return f"prefers the answer without them on {prefers:.0%} of {len(rows)} padded answers"


def grounding_probe(world, reward_model: Path, table: pd.DataFrame) -> str:
    """Whether a reward model can tell a right answer from a wrong one of the same kind: each
    of the policy's answers the judge credits against the next credited answer of the same
    kind, which is not right for this prompt (another country's capital, another sum)."""
    right = [r for r in table.itertuples() if world.features(r.prompt, r.answer).credit >= 1]
    rows = []
    for i, r in enumerate(right):
        others = right[i + 1 :] + right[:i]  # the next ones first: the pairing is deterministic
        wrong = next((o.answer for o in others if o.kind == r.kind
                      and world.features(r.prompt, o.answer).credit < 1), None)  # fmt: skip
        if wrong is not None:
            rows.append((r.prompt, wrong, r.answer))
    if not rows:
        return "n/a (no credited answers)"
    hits = prefers_second(reward_model, rows)
    low, high = wilson_interval(hits, len(rows))
    return (
        f"prefers the right answer to a wrong one of the same kind on {hits / len(rows):.0%} "
        f"[{low:.0%}, {high:.0%}] of {len(rows)} pairs (chance: 50%)"
    )


def vote_composition(world, pairs: list[dict]) -> list[str]:
    """What the class's vote pairs can teach: each model's share of the pairs and the share of
    them it won, and the pairs whose answers differ in polite phrases and nothing else."""
    models = compute_model_counts(pairs_to_battles(pairs))
    polite = compute_style_only_pairs(world, pairs)
    return [
        "  models in the vote pairs (share of pairs, share won): "
        + ", ".join(
            f"{r.model} {r.battles / len(pairs):.0%} {r.wins / r.battles:.0%}"
            for r in models.itertuples()
        ),
        f"  pairs that differ only in polite phrases: {len(polite)} of {len(pairs)}; "
        f"the less polite answer chosen in {int(polite['chosen_has_less'].sum())}",
    ]


def ci(m: dict, name: str, ci_name: str) -> str:
    """'0.812 [0.780, 0.840]'."""
    if m.get(name) is None:
        return "n/a"
    low, high = m[ci_name]
    return f"{m[name]:.3f} [{low:.3f}, {high:.3f}]"


def report_policy(
    world, old_policy: Path, new_policy: Path, samples: int | None, taste: str
) -> pd.DataFrame:
    """Print how the policy moved: on the saved answers, then on the `samples` answers per prompt
    the round measured both policies on (kept in the round's ppo-G/: `policy_home`)."""
    old_table = pd.read_json(answers_of(old_policy), lines=True)
    new_table = pd.read_json(answers_of(new_policy), lines=True)
    table, wins = compute_policy_change(world, old_table, new_table, taste)
    one = table.set_index("measure")
    print(f"  one answer per prompt (the saved tables): padding {one.loc['padding', 'change']:+.0%}, "
          f"length {one.loc['length', 'change']:+.0%}, credit {one.loc['credit', 'diff']:+.3f}, "
          f"better under {taste} on {wins.win:.0%} of prompts (ties {wins.tie:.0%})")  # fmt: skip
    if not samples:
        print("  the round measured no policy on several answers per prompt (samples=0)")
        return one
    print(f"  {samples} answers per prompt (T={EVAL_DECODING.temperature}), paired by prompt, "
          "95% bootstrap intervals over prompts:")  # fmt: skip
    measured = policy_home(new_policy)
    before, after = (pd.read_json(measured / name, lines=True)
                     for name in (MEASURED_START_TABLE, MEASURED_TABLE))  # fmt: skip
    table, wins = compute_policy_change(world, before, after, taste)
    for row in table.itertuples():
        print(f"    {LABELS[row.measure]}: {row.before:.3f} -> {row.after:.3f} ({row.change:+.0%}; "
              f"difference {row.diff:+.3f} [{row.low:+.3f}, {row.high:+.3f}])")  # fmt: skip
    low, high = wilson_interval(round(wins.win * wins.n), wins.n)
    print(f"  new policy beats old under {taste}: {wins.win:.0%} [{low:.0%}, {high:.0%}] of prompts "
          f"(ties {wins.tie:.0%}, losses {wins.loss:.0%})")  # fmt: skip
    return table.set_index("measure")


def report_group(
    world, folder: Path, m: dict, pairs, taste: str, old_policy: Path
) -> pd.DataFrame | None:
    """Print one group's before/after; return the policy change over the answers the round
    measured (None for a round without a policy)."""
    print(
        f"  vote pairs used: {m[M.FEEDBACK_VOTE_PAIRS_TRAIN]} (+{m[M.FEEDBACK_REPLAY_PAIRS]} replayed)"
    )
    before = ci(m, M.FEEDBACK_VOTES_ACCURACY_BEFORE, M.FEEDBACK_VOTES_ACCURACY_BEFORE_CI)
    after = ci(m, M.FEEDBACK_VOTES_ACCURACY_AFTER, M.FEEDBACK_VOTES_ACCURACY_AFTER_CI)
    change = m.get(M.FEEDBACK_VOTES_ACCURACY_CHANGE_CI)
    paired = f" (change [{change[0]:+.3f}, {change[1]:+.3f}], paired by prompt)" if change else ""
    print(
        f"  agreement with the class, held-out votes ({m[M.FEEDBACK_FOLDS]}-fold): {before} -> {after}"
        + paired
    )
    print(
        f"  noise ceiling (noiseless {taste} taste vs its votes): {noise_ceiling(world, pairs, taste):.3f}"
    )
    print("\n".join(vote_composition(world, pairs)))
    gold = [ci(m, *names) for names in (
        (M.FEEDBACK_GOLD_ACCURACY_BEFORE, M.FEEDBACK_GOLD_ACCURACY_BEFORE_CI),
        (M.FEEDBACK_GOLD_ACCURACY_AFTER, M.FEEDBACK_GOLD_ACCURACY_AFTER_CI))]  # fmt: skip
    print(f"  gold accuracy, world's held-out pairs: {gold[0]} -> {gold[1]}")
    old_table = pd.read_json(answers_of(old_policy), lines=True)
    for label, model in (("before", Path(m[M.FEEDBACK_REWARD_FROM])),
                         ("after", folder / m[M.FEEDBACK_REWARD_DIR] / "model")):  # fmt: skip
        print(
            f"  reward model {label}, polite/filler sentences: {pleasantry_probe(model, old_table)}"
        )
        print(f"  reward model {label}, facts: {grounding_probe(world, model, old_table)}")
    times = (
        f"  reward model {m[M.FEEDBACK_REWARD_SECONDS]:.0f} s "
        f"(cross-validation {m[M.FEEDBACK_CV_SECONDS]:.0f} s)"
    )
    if M.FEEDBACK_POLICY_DIR not in m:  # --set ppo_updates=0: the reward model only
        print(times)
        return None
    policy, samples = folder / m[M.FEEDBACK_POLICY_DIR], m.get(M.FEEDBACK_POLICY_SAMPLES)
    change = report_policy(world, old_policy, policy, samples, taste)
    print(f"{times}, PPO {m[M.FEEDBACK_PPO_SECONDS]:.0f} s ({m['ppo/updates']} updates)")
    return change


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=Path("runs/tiny"))
    parser.add_argument("--votes", type=int, default=200, help="battle votes per class")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--groups", action="store_true", help="a terse and a warm class")
    parser.add_argument("--samples", type=int, default=8,
                        help="answers per held-out prompt that measure each policy")  # fmt: skip
    parser.add_argument("--set", nargs="*", default=[], metavar="FIELD=VALUE",
                        help="FeedbackConfig overrides, e.g. epochs=3 replay=0.5")  # fmt: skip
    parser.add_argument("--ppo", nargs="*", default=[], metavar="FIELD=VALUE",
                        help="the round's PPO settings, e.g. lr=5e-5 (beta: --set ppo_kl_coef=B)")  # fmt: skip
    args = parser.parse_args(argv)
    if args.samples < 1:
        parser.error(f"--samples: at least 1 answer per prompt, got {args.samples}")
    if args.votes < 1:
        parser.error(f"--votes: at least 1 vote, got {args.votes}")
    for flag, items in (("--set", args.set), ("--ppo", args.ppo)):
        for item in items:
            if not item.partition("=")[1] or not item.partition("=")[0].strip():
                parser.error(f"{flag}: expected FIELD=VALUE, got {item!r}")
    fb = FeedbackConfig(samples=args.samples)  # the round measures both policies
    ppo_values = parse_set_args(args.ppo)
    if "kl_coef" in ppo_values:  # the round's beta is FeedbackConfig's, not the profile's
        parser.error("the round's beta is --set ppo_kl_coef=B, not --ppo kl_coef=B")
    checked = LabConfig()  # the --ppo values, read and checked before any model loads
    for flag, target, values in (
        ("--set", fb, parse_set_args(args.set)),
        ("--ppo", checked, {f"ppo.{key}": value for key, value in ppo_values.items()}),
    ):
        try:
            apply_overrides(target, values)
        except (KeyError, TypeError, ValueError) as err:
            parser.error(f"{flag}: {one_line(err)}")
    if not args.run.is_dir():
        parser.error(f"--run {args.run}: no such folder (make pipeline writes runs/tiny)")
    if not (args.run / CONFIG_FILE).is_file():
        parser.error(f"--run {args.run}: not a pipeline run (no {CONFIG_FILE})")
    print(f"{fb}")
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"  # a copy: the run itself stays clean
        shutil.copytree(args.run, run, ignore=shutil.ignore_patterns("checkpoints", "feedback"))
        arena = load_arena(run, {}, Path(tmp) / "votes.sqlite")
        ppo = dataclasses.replace(
            arena.cfg.ppo, **{key: getattr(checked.ppo, key) for key in ppo_values}
        )
        arena.cfg = dataclasses.replace(arena.cfg, ppo=ppo)
        tastes = ["terse", "warm"] if args.groups else ["terse"]
        t0 = time.perf_counter()
        for i, taste in enumerate(tastes):
            simulate_votes(arena, args.votes, seed=args.seed + i, taste=taste, group=taste)
        print(
            f"{len(tastes)} x {args.votes} simulated battle votes in {time.perf_counter() - t0:.0f} s"
        )
        pairs = to_preferences(arena.store.votes())
        old_policy = current_models(run)[1]
        folder, summary = feedback_round(arena.cfg, run, pairs, fb, per_group=args.groups)
        print(f"round: {summary[M.FEEDBACK_ROUND_SECONDS]:.0f} s  (targets: {TARGETS})")
        lengths = {}
        for label, m in summary["groups"].items():
            taste = label if label in tastes else "terse"
            print(f"[{label}]")
            group_pairs = [p for p in pairs if p["group"] == taste]
            change = report_group(arena.world, folder, m, group_pairs, taste, old_policy)
            lengths[label] = None if change is None else change.loc["length", "after"]
        if args.groups and None not in lengths.values():
            a, b = lengths["terse"], lengths["warm"]
            print(f"mean answer length: terse {a:.1f}, warm {b:.1f} tokens ({b / a - 1:+.0%})")


if __name__ == "__main__":
    main()
