"""Inputs that hand the handler exactly what the client sent.

Gradio checks a `gr.Number` or `gr.Slider` value before the handler runs: through the API a
value of "abc" then fails inside Gradio (a generic error for the client, a traceback in the
log), an out-of-range one gets a message that names no field, and `precision=0` silently
rounds 2.5 to 2. The arena's handlers check every value themselves (`apps.guard.whole_number`,
`apps.handlers.parse_decoding`) and say what is wrong in one line, so these inputs pass the
value through unchanged. The same holds for Compare's model list: Gradio refuses a model
that is not among the choices the page was built with, so a model a feedback round added
could not be asked for through the API; `apps.handlers.pick_models` keeps the models the pool
has now. In the browser they are Gradio's own components.

(A subclass would do the same, but Gradio writes a `.pyi` stub beside the module of every
component subclass at import time; an instance's own `preprocess` needs nothing written.)
"""

from __future__ import annotations

from typing import Any, TypeVar

import gradio as gr

Input = TypeVar("Input", gr.Number, gr.Slider, gr.CheckboxGroup)

__all__ = ["checked_by_handler", "passthrough"]


def passthrough(payload: Any) -> Any:
    """The client's value, unchanged."""
    return payload


def checked_by_handler(component: Input) -> Input:
    """`component` with Gradio's own value check switched off: the handler checks the value."""
    component.preprocess = passthrough  # the instance's, ahead of the class's
    return component
