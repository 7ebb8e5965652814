"""RLHF Lab: every stage of RLHF (base, SFT, reward model, PPO) on one machine, offline by default."""

__version__ = "0.1.0"
