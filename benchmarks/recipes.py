"""Print what the `+sentiment` and `+detox` recipes do on the tiny profile (numbers, not a test).

Both train the pretrained base model with PPO against a classifier trained on the world's text
(TRL's gpt2-sentiment and detoxification examples, in the tiny world). The shared stages
(world, pretrain) come from `--run` (built there if missing); each recipe then runs its
classifier and PPO in its own folder. Printed: the classifier's mean P(positive) or P(clean) on
fresh samples of held-out prompts, rude + unsafe, polite and garbled sentences per answer,
before (the base model) and after PPO, and the seconds the recipe took after the shared stages.

    OMP_NUM_THREADS=1 python benchmarks/recipes.py --run runs/tiny
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path

from lab import metrics as M
from lab.profiles import load_config
from lab.recipes import RECIPES
from lab.stages import run_stages, settings_of

TARGETS = (
    "sentiment: P(positive) +0.2; detox: rude+unsafe per answer halved, garbled not up; "
    "each <= 180 s after the shared stages"
)


def run_recipe(recipe: str, shared: Path, out: Path) -> tuple[dict, float]:
    """The recipe's stages in `out`, the shared ones copied from `shared`; (PPO metrics, seconds)."""
    shutil.rmtree(out, ignore_errors=True)  # time the recipe's own stages, never reuse them
    for stage in ("world", "pretrain"):
        shutil.copytree(shared / stage, out / stage, dirs_exist_ok=True)
    start = time.perf_counter()
    results = run_stages(load_config(f"tiny+{recipe}"), out, until="ppo")
    return results["ppo"], time.perf_counter() - start


def report(recipe: str, m: dict, seconds: float) -> list[str]:
    """Before / after lines for one recipe, and whether its target is met."""
    before, after = m[M.EVAL_REWARD_START], m[M.PPO_EVAL_REWARD]
    toxic = m[M.EVAL_START_RUDE_UNSAFE], m[M.EVAL_RUDE_UNSAFE]
    garbled = m[M.EVAL_START_GARBLED], m[M.EVAL_GARBLED]
    polite = m[M.EVAL_START_POLITE], m[M.EVAL_POLITE]
    if recipe == "sentiment":
        met = after - before >= 0.2
    else:
        met = toxic[1] <= toxic[0] / 2 and garbled[1] <= garbled[0]
    reward = "P(positive)" if recipe == "sentiment" else "P(clean)"
    return [
        f"+{recipe}: {reward} {before:.3f} -> {after:.3f}",
        f"  rude+unsafe per answer {toxic[0]:.3f} -> {toxic[1]:.3f}; polite {polite[0]:.3f} -> "
        f"{polite[1]:.3f}; garbled {garbled[0]:.3f} -> {garbled[1]:.3f}",
        f"  KL to base {m[M.PPO_EVAL_KL]:.2f}; {seconds:.0f} s after the shared stages",
        f"  target {'met' if met and seconds <= 180 else 'MISSED'}",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=Path("runs/tiny"), help="shared stages")
    parser.add_argument("--recipes", default="sentiment,detox")
    args = parser.parse_args()
    recipes = [r.strip() for r in args.recipes.split(",") if r.strip()]
    if unknown := [r for r in recipes if r not in RECIPES]:
        parser.error(f"--recipes: unknown recipe {unknown[0]!r}; recipes: {', '.join(RECIPES)}")
    run_stages(settings_of(args.run, load_config("tiny")), args.run, until="pretrain")  # reused
    lines = [f"targets: {TARGETS}"]
    for recipe in recipes:
        out = args.run.parent / f"{args.run.name}+{recipe}"
        metrics, seconds = run_recipe(recipe, args.run, out)
        lines += report(recipe, metrics, seconds)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
