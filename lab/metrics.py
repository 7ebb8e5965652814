"""Metric names, defined once and used identically in logs, plots, notebooks and the app."""

# Stage 0: the world and the base model
WORLD_PREFIX = "world/"
PRETRAIN_LOSS = "pretrain/loss"
PRETRAIN_EVAL_LOSS = "pretrain/eval_loss"
PRETRAIN_EVAL_PPL = "pretrain/eval_perplexity"
PRETRAIN_LR = "pretrain/lr"
PRETRAIN_TOKENS_PER_S = "pretrain/tokens_per_s"
PRETRAIN_IN_WORLD = "pretrain/in_world_rate"

# Stage 1: supervised fine-tuning
SFT_LOSS = "sft/loss"
SFT_LR = "sft/lr"
SFT_TOKEN_ACCURACY = "sft/token_accuracy"
SFT_EVAL_LOSS = "sft/eval_loss"
SFT_EVAL_PPL = "sft/eval_perplexity"
SFT_BASE_EVAL_LOSS = "sft/base_eval_loss"

# Stage 2: the reward model
REWARD_LOSS = "reward/loss"
REWARD_LR = "reward/lr"
REWARD_TRAIN_ACCURACY = "reward/train_accuracy"
REWARD_ACCURACY = "reward/accuracy"
REWARD_GOLD_ACCURACY = "reward/gold_accuracy"
REWARD_MARGIN = "reward/margin"

# Stage 3: PPO (per update, on the rollout batch)
PPO_REWARD = "ppo/reward"  # reward-model score
PPO_RLHF_REWARD = "ppo/rlhf_reward"  # score - beta * KL
PPO_KL = "ppo/kl"  # KL(policy || SFT) per response, k1
PPO_KL_COEF = "ppo/kl_coef"
PPO_ENTROPY = "ppo/entropy"
PPO_APPROX_KL = "ppo/approx_kl"  # KL(old || new) within an update
PPO_CLIPFRAC = "ppo/clipfrac"
PPO_VALUE_CLIPFRAC = "ppo/value_clipfrac"
PPO_POLICY_LOSS = "ppo/policy_loss"
PPO_VALUE_LOSS = "ppo/value_loss"
PPO_RATIO = "ppo/ratio"
PPO_GRAD_NORM = "ppo/grad_norm"
PPO_EXPLAINED_VARIANCE = "ppo/explained_variance"
PPO_LENGTH = "ppo/response_length"
PPO_EOS_RATE = "ppo/eos_rate"
PPO_GOLD = "ppo/gold"  # gold-judge score of the batch (tiny world only)
PPO_EVAL_KL = "ppo/eval_kl"  # on held-out prompts, at the end
PPO_EVAL_REWARD = "ppo/eval_reward"

# Feedback: the reward model retrained on the original pairs plus a class's votes
FEEDBACK_ACCURACY_BEFORE = "feedback/accuracy_before"  # the world's held-out pairs, vs labels
FEEDBACK_ACCURACY_AFTER = "feedback/accuracy_after"
FEEDBACK_GOLD_ACCURACY_BEFORE = "feedback/gold_accuracy_before"  # the same pairs, vs gold
FEEDBACK_GOLD_ACCURACY_AFTER = "feedback/gold_accuracy_after"
FEEDBACK_VOTES_ACCURACY_BEFORE = "feedback/votes_accuracy_before"  # the held-out votes
FEEDBACK_VOTES_ACCURACY_AFTER = "feedback/votes_accuracy_after"
FEEDBACK_VOTE_PAIRS_TRAIN = "feedback/vote_pairs_train"
FEEDBACK_VOTE_PAIRS_HELDOUT = "feedback/vote_pairs_heldout"
FEEDBACK_NOTE = "feedback/note"  # why a number is missing (too few votes to hold any out)

# Gold evaluation on held-out prompts (a policy against the one before it)
EVAL_GOLD_MEAN = "eval/gold_mean"
EVAL_LENGTH_MEAN = "eval/length_mean"
EVAL_BASE_GOLD_MEAN = "eval/base_gold_mean"
EVAL_WIN_RATE = "eval/win_rate"

# Every stage
STAGE_SECONDS = "time/seconds"
NUM_PARAMS = "model/num_params"
