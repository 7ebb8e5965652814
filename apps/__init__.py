"""The Gradio arena: blind battles between the lab's models, votes, the leaderboard, retraining."""

import os

# Nothing the arena runs calls home. Set before gradio and huggingface_hub are imported:
# huggingface_hub reads its telemetry switch once, at import. A user's own setting still wins.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
