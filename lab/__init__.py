"""RLHF Lab: every stage of RLHF on one machine, offline by default.

Stages, numbered as their notebooks: 1 base model (`pretrain`), 2 `sft`, 3 `reward`, 4 `ppo`,
5 evaluation, 6 `dpo` and `grpo`; then the arena's feedback round (`feedback`, notebook 07).
ARCHITECTURE.md draws the modules and the direction of their imports.
"""

__version__ = "0.1.0"
