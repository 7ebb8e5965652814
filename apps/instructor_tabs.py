"""The instructor's side of the arena page: unlocking it, the Data tab's instructor controls and
the Retrain tab (a feedback round in the background, what the votes can teach, the groups'
policies side by side). Layout only: the handlers are `apps.board` and `apps.retrain`, which
check the instructor password themselves; hiding these controls is for the students' screens."""

from __future__ import annotations

from functools import partial

import gradio as gr

from apps import board, retrain
from apps.events import bind, instructor_event
from apps.handlers import Arena
from apps.inputs import checked_by_handler


def instructor_box(arena: Arena, outputs: list) -> None:
    """Classroom mode: students never see the instructor's controls until the password is typed.

    Hiding them is for the students' screens; every instructor action checks the password itself.
    """
    with gr.Accordion("Instructor", open=False):
        password = gr.Textbox(label="Instructor password", type="password", elem_id="unlock-pw")
        button = gr.Button("Show the instructor's controls", elem_id="unlock-go")
        status = gr.Markdown(elem_id="unlock-status")
    gr.on(
        [button.click, password.submit],
        bind(instructor_event, arena),
        password,
        [*outputs, status],
        api_visibility="private",
    )


def data_tab(arena: Arena, instructor_open: bool) -> tuple[gr.Column, gr.Textbox]:
    """Agreement measures for everyone; the votes, the export and simulated voters (instructor)."""
    refresh = gr.Button("Refresh agreement")
    agreement = gr.Dataframe(label="Agreement", interactive=False)
    refresh.click(partial(board.agreement, arena), outputs=agreement, api_name="agreement")
    with gr.Column(visible=instructor_open, elem_id="data-instructor") as instructor:
        gr.Markdown("### Instructor")
        password = gr.Textbox(label="Instructor password", type="password")
        with gr.Row():
            export = gr.Button("Export preference dataset")
            n_sim = checked_by_handler(
                gr.Number(20, precision=0, label="simulated votes", minimum=1, maximum=500)
            )
            taste = gr.Dropdown(retrain.tastes(), value="", label="simulated class's taste")
            group = gr.Textbox(label="group (optional)", max_length=40)
            simulate = gr.Button("Cast simulated votes")
        files = gr.File(label="Exported files", interactive=False)
        status = gr.Markdown(label="status")
        show_votes = gr.Button("Show the votes")
        votes_status = gr.Markdown(label="votes status")
        votes = gr.Dataframe(label="Votes (newest first)", interactive=False, wrap=True)
    export.click(
        bind(board.export, arena),
        password,
        [files, status],
        api_name="export",
    )
    simulate.click(
        bind(retrain.simulate, arena),
        [password, n_sim, taste, group],
        status,
        api_name="simulate",
    )
    gr.on(  # in classroom mode the votes (students' prompts) are the instructor's to read
        [show_votes.click, password.submit],
        bind(board.votes_table, arena),
        inputs=password,
        outputs=[votes, votes_status],
        api_name="votes",
    )
    return instructor, password


def retrain_tab(arena: Arena) -> gr.Textbox:
    """Instructor: a feedback round on the class's votes in the background, before / after;
    returns its password box (unlocking the controls fills it in)."""
    gr.Markdown(retrain.RETRAIN_HELP)
    with gr.Row():
        password = gr.Textbox(label="Instructor password", type="password")
        group = gr.Textbox(label="group (empty: every vote)", max_length=40)
        per_group = gr.Checkbox(label="one round per group (a reward model and policy each)")
        updates = checked_by_handler(gr.Number(
            retrain.FeedbackConfig().ppo_updates, precision=0, minimum=0, maximum=200,
            label="PPO updates after (0 = reward model only)",
        ))  # fmt: skip
    vote_content_view(arena, password, group)
    button = gr.Button("Retrain", variant="primary", elem_id="retrain-go")
    message = gr.Markdown(elem_id="retrain-message")  # stays until the next click
    progress = gr.Textbox(label="Progress", interactive=False, elem_id="retrain-progress")
    with gr.Row():
        panel = gr.Dataframe(label="Before / after", interactive=False, elem_id="retrain-panel")
        plot = gr.Plot(label="Before / after")
    with gr.Accordion("Every number of the round", open=False):
        results = gr.Dataframe(label="All metrics", interactive=False)
    button.click(
        bind(retrain.start, arena), [password, updates, group, per_group], message,
        api_name="retrain",
    )  # fmt: skip
    gr.Timer(2).tick(
        partial(retrain.status, arena),
        outputs=[progress, panel, plot, results],
        api_visibility="private",
    )
    groups_view(arena, password)
    return password


def vote_content_view(arena: Arena, password: gr.Textbox, group: gr.Textbox) -> None:
    """Before a round: who the votes so far are about, and what they can teach it."""
    with gr.Accordion("What can these votes teach? (before you retrain)", open=False):
        show = gr.Button("Count the vote pairs", elem_id="votes-content-show")
        note = gr.Markdown(elem_id="votes-content-note")
        table = gr.Dataframe(
            label="Models in the vote pairs", interactive=False, elem_id="votes-content"
        )
    show.click(bind(retrain.vote_content, arena), [password, group], [note, table],
               api_name="vote_content")  # fmt: skip


def groups_view(arena: Arena, password: gr.Textbox) -> None:
    """The latest round's policies (one per group) answering the same held-out prompts."""
    gr.Markdown("### The groups side by side")
    show = gr.Button("Show the latest round's policies side by side", elem_id="groups-show")
    note = gr.Markdown(elem_id="groups-note")
    plot = gr.Plot(label="Length, polite phrases and gold per policy")
    styles = gr.Dataframe(label="Means over the held-out prompts", interactive=False)
    answers = gr.Dataframe(
        label="The answers that differ most", interactive=False, wrap=True, elem_id="groups-answers"
    )
    show.click(bind(retrain.group_view, arena), password, [note, plot, styles, answers],
               api_name="groups")  # fmt: skip
