"""Progress reports from a long job (a stage run from the arena) to whoever shows them."""

from __future__ import annotations

from collections.abc import Callable

from transformers import TrainerCallback

Progress = Callable[[float, str], None]  # (fraction done in [0, 1], a short message)


class ReportProgress(TrainerCallback):
    """Report a trainer's progress to a `Progress` callback: optimizer steps done / steps planned."""

    def __init__(self, progress: Progress):
        self.progress = progress

    def on_step_end(self, args, state, control, **kwargs):
        done = state.global_step / max(state.max_steps, 1)
        self.progress(done, f"training step {state.global_step}/{state.max_steps}")
