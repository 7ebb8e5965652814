"""Number and slider inputs that hand the handler exactly what the client sent.

Gradio checks a `gr.Number` or `gr.Slider` value before the handler runs: through the API a
value of "abc" then fails inside Gradio (a generic error for the client, a traceback in the
log), an out-of-range one gets a message that names no field, and `precision=0` silently
rounds 2.5 to 2. The arena's handlers check every value themselves (`apps.guard.whole_number`,
`apps.handlers.parse_decoding`) and say what is wrong in one line, so these inputs pass the
value through unchanged. In the browser they look and behave as Gradio's own.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

__all__ = ["CheckedNumber", "CheckedSlider"]

class CheckedNumber(gr.Number):
    """`gr.Number` whose value reaches the handler as sent (the handler checks it)."""

    is_template = True  # drawn by gr.Number's own front end

    def preprocess(self, payload: Any) -> Any:
        """The client's value, unchanged."""
        return payload
    from collections.abc import Callable, Sequence
    from typing import TYPE_CHECKING, Any, Literal

    from gradio.blocks import Block

    if TYPE_CHECKING:
        from gradio.components import Timer
        from gradio.components.base import Component

class CheckedSlider(gr.Slider):
    """`gr.Slider` whose value reaches the handler as sent (the handler checks it)."""

    is_template = True  # drawn by gr.Slider's own front end

    def preprocess(self, payload: Any) -> Any:
        """The client's value, unchanged."""
        return payload
    from collections.abc import Callable, Sequence
    from typing import TYPE_CHECKING, Any, Literal

    from gradio.blocks import Block

    if TYPE_CHECKING:
        from gradio.components import Timer
        from gradio.components.base import Component
