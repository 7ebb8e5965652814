"""Metric names, defined once and used identically in logs, plots, notebooks and the app."""

# Stage 0: the world; stage 1: the base model
WORLD_PREFIX = "world/"
WORLD_N_PAIRS_TRAIN = "world/n_pairs_train"  # one `world/n_<file>` per generated file
WORLD_AGREEMENT = "world/{split}_annotator_gold_agreement"  # split: pairs_train or pairs_test
WORLD_PAIRS_TRAIN_AGREEMENT = WORLD_AGREEMENT.format(split="pairs_train")
WORLD_SFT_GOLD_MEAN = "world/sft_gold_mean"
PRETRAIN_LOSS = "pretrain/loss"
PRETRAIN_EVAL_LOSS = "pretrain/eval_loss"
PRETRAIN_EVAL_PPL = "pretrain/eval_perplexity"
PRETRAIN_LR = "pretrain/lr"
PRETRAIN_TOKENS_PER_S = "pretrain/tokens_per_s"
PRETRAIN_IN_WORLD = "pretrain/in_world_rate"
PRETRAIN_FIRST_LOSS = "pretrain/first_loss"
PRETRAIN_TRAIN_TOKENS = "pretrain/train_tokens"  # in the packed training blocks
PRETRAIN_TOKENS_SEEN = "pretrain/tokens_seen"  # steps x batch x seq_len x processes
PRETRAIN_SAMPLES = "pretrain/samples"  # a few answers to held-out prompts
PRETRAIN_BASE_MODEL = "pretrain/base_model"  # a hub model used instead of pretraining

# Stage 2: supervised fine-tuning
SFT_LOSS = "sft/loss"
SFT_LR = "sft/lr"
SFT_TOKEN_ACCURACY = "sft/token_accuracy"
SFT_EVAL_LOSS = "sft/eval_loss"
SFT_EVAL_PPL = "sft/eval_perplexity"
SFT_BASE_EVAL_LOSS = "sft/base_eval_loss"
SFT_WIN_TIE_LOSS = "sft/win_tie_loss_vs_base"
SFT_TRAIN_EXAMPLES = "sft/train_examples"
SFT_STEPS = "sft/steps"
SFT_SAMPLES = "sft/samples"  # base and SFT answers to the first held-out prompts

# Stage 3: the reward model
REWARD_LOSS = "reward/loss"
REWARD_LR = "reward/lr"
REWARD_TRAIN_ACCURACY = "reward/train_accuracy"
REWARD_ACCURACY = "reward/accuracy"
REWARD_GOLD_ACCURACY = "reward/gold_accuracy"
REWARD_MARGIN = "reward/margin"
REWARD_TRAIN_PAIRS = "reward/train_pairs"
REWARD_EVAL_PAIRS = "reward/eval_pairs"
REWARD_SKIPPED_PAIRS = "reward/skipped_pairs"  # invalid rows of `reward.train_data`
REWARD_STEPS = "reward/steps"

# A policy trained from the base model against a classifier (`+sentiment`, `+detox`): the start
# model's numbers beside the policy's, on the same held-out prompts (notebook 08).
EVAL_REWARD_START = "eval/reward_start"  # the reward (e.g. P(positive)) of the base's samples
EVAL_POLITE = "eval/polite_per_answer"  # gold judge's polite sentences per answer
EVAL_RUDE_UNSAFE = "eval/rude_unsafe_per_answer"  # rude + unsafe sentences per answer
EVAL_GARBLED = "eval/garbled_per_answer"  # sentences that are not world text, per answer
EVAL_START_POLITE = "eval/start_polite_per_answer"
EVAL_START_RUDE_UNSAFE = "eval/start_rude_unsafe_per_answer"
EVAL_START_GARBLED = "eval/start_garbled_per_answer"
CLASSIFIER_LOSS = "classifier/loss"
CLASSIFIER_ACCURACY = "classifier/accuracy"  # held-out texts, argmax against the hard label
CLASSIFIER_STEPS = "classifier/steps"

# Stage 4: PPO (per update, on the rollout batch)
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
PPO_EVAL_KL = "ppo/eval_kl"  # as dpo/eval_kl: exact KL to SFT on held-out prompts, at the end
PPO_EVAL_REWARD = "ppo/eval_reward"  # reward-model score of the same samples
PPO_EVAL_EOS_RATE = "ppo/eval_eos_rate"
PPO_WIN_TIE_LOSS = "ppo/win_tie_loss_vs_sft"
PPO_PROCESSES = "ppo/processes"  # data-parallel processes (accelerate launch)
PPO_UPDATES = "ppo/updates"

# Feedback: the reward model adapted to a class's votes (lab.feedback), then a PPO round (lab.feedback_round)
FEEDBACK_ACCURACY_BEFORE = "feedback/accuracy_before"  # the world's held-out pairs, vs labels
FEEDBACK_ACCURACY_AFTER = "feedback/accuracy_after"
FEEDBACK_GOLD_ACCURACY_BEFORE = "feedback/gold_accuracy_before"  # the same pairs, vs gold
FEEDBACK_GOLD_ACCURACY_AFTER = "feedback/gold_accuracy_after"
FEEDBACK_GOLD_ACCURACY_BEFORE_CI = "feedback/gold_accuracy_before_ci"  # [low, high], Wilson 95%
FEEDBACK_GOLD_ACCURACY_AFTER_CI = "feedback/gold_accuracy_after_ci"
# Held out: the vote pairs the round's start model never trained on (k-fold); never the others
FEEDBACK_VOTES_ACCURACY_BEFORE = "feedback/votes_accuracy_before"  # held-out votes (k-fold)
FEEDBACK_VOTES_ACCURACY_AFTER = "feedback/votes_accuracy_after"
FEEDBACK_VOTES_ACCURACY_BEFORE_CI = "feedback/votes_accuracy_before_ci"  # [low, high], Wilson 95%
FEEDBACK_VOTES_ACCURACY_AFTER_CI = "feedback/votes_accuracy_after_ci"
FEEDBACK_VOTES_ACCURACY_CHANGE_CI = "feedback/votes_accuracy_change_ci"  # after - before, paired
FEEDBACK_VOTES_ACCURACY_TRAINED = "feedback/votes_accuracy_trained"  # the kept model, in-sample
FEEDBACK_VOTE_PAIRS_TRAIN = "feedback/vote_pairs_train"  # vote pairs the kept model trained on
FEEDBACK_VOTE_PAIRS_HELDOUT = "feedback/vote_pairs_heldout"  # new ones, held out (0: too few)
FEEDBACK_VOTE_PAIRS_SEEN = "feedback/vote_pairs_seen"  # the start model trained on them already
FEEDBACK_REPLAY_PAIRS = "feedback/replay_pairs"  # original pairs replayed beside the votes
FEEDBACK_FOLDS = "feedback/folds"
FEEDBACK_GROUP = "feedback/group"  # '' = every vote
FEEDBACK_NOTE = "feedback/note"  # why a number is missing (too few votes to hold any out)
FEEDBACK_REWARD_FROM = "feedback/reward_from"  # the reward model the round started from
FEEDBACK_POLICY_FROM = "feedback/policy_from"  # the policy the PPO round started from
FEEDBACK_PPO_REWARD = "feedback/ppo_reward"  # delta (new minus old reward model) or model
FEEDBACK_REWARD_DIR = "feedback/reward_dir"  # inside the round folder
FEEDBACK_POLICY_DIR = "feedback/policy_dir"
FEEDBACK_CV_SECONDS = "feedback/cv_seconds"
FEEDBACK_REWARD_SECONDS = "feedback/reward_seconds"
FEEDBACK_PPO_SECONDS = "feedback/ppo_seconds"
FEEDBACK_ROUND_SECONDS = "feedback/round_seconds"
FEEDBACK_POLICY_SAMPLES = "feedback/policy_samples"  # answers per held-out prompt measuring it
# {measure: {before, after, diff, low, high}}: `lab.group_compare.compute_style_change` of the
# round's policy against the one it started from (tiny world: the gold judge measures them)
FEEDBACK_POLICY_CHANGE = "feedback/policy_change"

# Gold evaluation on held-out prompts (a policy against the one before it; notebook 05)
EVAL_GOLD_MEAN = "eval/gold_mean"
EVAL_LENGTH_MEAN = "eval/length_mean"
EVAL_BASE_GOLD_MEAN = "eval/base_gold_mean"
EVAL_WIN_RATE = "eval/win_rate"

# Every stage
STAGE_SECONDS = "time/seconds"
STAGE_FINGERPRINT = "stage/config_fingerprint"  # the settings a stage ran with (lab.stages)
STAGE_OUTPUTS = "stage/outputs"  # what a finished stage left for later ones ("model,eval.jsonl")
STAGE_INPUTS = "stage/input_files"  # the local files its settings named, with digests (JSON text)
NUM_PARAMS = "model/num_params"

# Stage 6: DPO (per logged step on training pairs; eval_* on the held-out pairs)
DPO_LOSS = "dpo/loss"  # -log sigmoid(margin); log 2 at the start, when policy == SFT
DPO_LR = "dpo/lr"
DPO_ACCURACY = "dpo/rewards_accuracy"  # implicit reward of chosen > rejected
DPO_MARGIN = "dpo/margin"  # implicit reward chosen - rejected, beta * log(pi / pi_ref)
DPO_REWARD_CHOSEN = "dpo/reward_chosen"
DPO_REWARD_REJECTED = "dpo/reward_rejected"
DPO_EVAL_LOSS = "dpo/eval_loss"
DPO_EVAL_ACCURACY = "dpo/eval_rewards_accuracy"
DPO_EVAL_MARGIN = "dpo/eval_margin"
DPO_EVAL_KL = "dpo/eval_kl"  # KL(policy || SFT) per response on held-out prompts, at the end
DPO_EVAL_REWARD = "dpo/eval_reward"  # reward-model score of the same samples
DPO_EVAL_EOS_RATE = "dpo/eval_eos_rate"
DPO_WIN_TIE_LOSS = "dpo/win_tie_loss_vs_sft"
DPO_TRAIN_PAIRS = "dpo/train_pairs"
DPO_EVAL_PAIRS = "dpo/eval_pairs"
DPO_STEPS = "dpo/steps"

# Stage 6: GRPO (per optimizer step, on the step's completions)
GRPO_REWARD = "grpo/reward"  # reward-model score (with the missing-EOS penalty)
GRPO_REWARD_STD = "grpo/reward_std"
GRPO_KL = "grpo/kl"  # TRL's k3 KL(policy || SFT) per token (not per response as ppo/kl)
GRPO_LOSS = "grpo/loss"
GRPO_LR = "grpo/lr"
GRPO_ENTROPY = "grpo/entropy"
GRPO_LENGTH = "grpo/completion_length"
GRPO_CLIPPED_RATIO = "grpo/clipped_ratio"  # completions cut at max length, without EOS
GRPO_ZERO_STD = "grpo/frac_reward_zero_std"  # groups whose completions all scored the same
GRPO_EVAL_KL = "grpo/eval_kl"  # as dpo/eval_kl
GRPO_EVAL_REWARD = "grpo/eval_reward"
GRPO_EVAL_EOS_RATE = "grpo/eval_eos_rate"
GRPO_WIN_TIE_LOSS = "grpo/win_tie_loss_vs_sft"
GRPO_TRAIN_PROMPTS = "grpo/train_prompts"
GRPO_STEPS = "grpo/steps"

# Stage 6: ORPO (per logged step on training pairs; eval_* on the held-out pairs, before training
# and after each epoch). An answer's log-prob is its mean per token, as in `lab.preference_math`.
ORPO_LOSS = "orpo/loss"  # nll_loss + beta * the odds-ratio term
ORPO_LR = "orpo/lr"
ORPO_NLL = "orpo/nll_loss"  # the SFT loss on the chosen answers
ORPO_LOG_ODDS_RATIO = (
    "orpo/log_odds_ratio"  # log odds(chosen) - log odds(rejected); TRL: log_odds_chosen
)
ORPO_ACCURACY = (
    "orpo/rewards_accuracy"  # log-prob of chosen > rejected (no reference: 50% is not the start)
)
ORPO_MARGIN = "orpo/margin"  # beta * (log-prob of chosen - of rejected)
ORPO_EVAL_LOSS = "orpo/eval_loss"
ORPO_EVAL_NLL = "orpo/eval_nll_loss"
ORPO_EVAL_LOG_ODDS_RATIO = "orpo/eval_log_odds_ratio"
ORPO_EVAL_ACCURACY = "orpo/eval_rewards_accuracy"
ORPO_EVAL_MARGIN = "orpo/eval_margin"
ORPO_EVAL_KL = "orpo/eval_kl"  # as dpo/eval_kl
ORPO_EVAL_REWARD = "orpo/eval_reward"
ORPO_EVAL_EOS_RATE = "orpo/eval_eos_rate"
ORPO_WIN_TIE_LOSS = "orpo/win_tie_loss_vs_sft"
ORPO_TRAIN_PAIRS = "orpo/train_pairs"
ORPO_EVAL_PAIRS = "orpo/eval_pairs"
ORPO_STEPS = "orpo/steps"
