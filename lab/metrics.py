"""Metric names, defined once and used identically in logs, plots, notebooks and the app."""

# Stage 0: the world and the base model
WORLD_PREFIX = "world/"
PRETRAIN_LOSS = "pretrain/loss"
PRETRAIN_EVAL_LOSS = "pretrain/eval_loss"
PRETRAIN_EVAL_PPL = "pretrain/eval_perplexity"
PRETRAIN_LR = "pretrain/lr"
PRETRAIN_TOKENS_PER_S = "pretrain/tokens_per_s"
PRETRAIN_IN_WORLD = "pretrain/in_world_rate"

# Every stage
STAGE_SECONDS = "time/seconds"
NUM_PARAMS = "model/num_params"
