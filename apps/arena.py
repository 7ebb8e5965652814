"""The arena: base, SFT and PPO answer side by side, and every vote becomes a preference pair.

    python -m apps.arena --run runs/tiny                    # the pipeline's models
    python -m apps.arena --model sft=runs/tiny/sft/model --model other=HuggingFaceTB/SmolLM2-135M
    python -m apps.arena --run runs/tiny --classroom --host 0.0.0.0

Handlers live in `apps.handlers`, `apps.board` and `apps.retrain`; this module only lays
out the page and wires components to them.
"""

from __future__ import annotations

import argparse
import os
from functools import partial
from pathlib import Path

import gradio as gr

from apps import board, retrain
from apps.guard import MAX_PROMPT_CHARS, Classroom, new_code
from apps.handlers import (
    BATTLE_NAMES,
    MAX_COMPARE,
    MAX_NEW_TOKENS,
    Arena,
    Session,
    ask,
    compare_choices,
    join,
    load_arena,
    vote,
)
from lab import recipes
from lab.evaluation import EVAL_DECODING
from lab.threads import set_torch_threads
from lab.world import last_content

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
INTRO = """# RLHF Lab arena
The same prompt goes to every model with the same seed and decoding settings. Vote for the
better answer: each vote becomes a `prompt` / `chosen` / `rejected` pair for the reward model."""


def build_app(arena: Arena, examples: list[str] | None = None) -> gr.Blocks:
    """The whole page: a header, shared decoding settings, and one tab per activity."""
    with gr.Blocks(title="RLHF Lab arena") as demo:
        session = gr.State(None)
        gr.Markdown(INTRO)
        if arena.classroom.join_code:
            join_box(arena, session)
        with gr.Accordion("Decoding settings (shared by every model)", open=False), gr.Row():
            settings = [
                gr.Slider(0, 2, EVAL_DECODING.temperature, step=0.05, label="temperature"),
                gr.Slider(0.05, 1, 1.0, step=0.05, label="top-p"),
                gr.Slider(
                    1, MAX_NEW_TOKENS, EVAL_DECODING.max_new_tokens, step=1, label="max tokens"
                ),
                gr.Number(EVAL_DECODING.seed, precision=0, label="seed"),
            ]
        with gr.Tabs():
            with gr.Tab("Compare") as compare:
                names = compare_tab(arena, session, settings, examples or [])
            with gr.Tab("Battle"):
                battle_tab(arena, session, settings, examples or [])
            with gr.Tab("Leaderboard") as leaderboard:
                leaderboard_tab(arena, leaderboard)
            with gr.Tab("Data"):
                data_tab(arena)
            with gr.Tab("Retrain"):
                retrain_tab(arena)
            with gr.Tab("Training dashboard"):
                dashboard_tab(arena)
        gr.on(  # a feedback round adds models while the page is open
            [demo.load, compare.select],
            partial(refresh_compare, arena),
            names,
            names,
            api_visibility="private",
        )
    return demo


def refresh_compare(arena: Arena, selected: list[str] | None) -> dict:
    """Compare's checkboxes with every model the arena has now."""
    choices, value = compare_choices(arena, selected)
    return gr.update(choices=choices, value=value)


def join_box(arena: Arena, session: gr.State) -> None:
    """Classroom mode: a join code opens voting for this browser session."""
    with gr.Row():
        code = gr.Textbox(label="Class join code", type="password", scale=3)
        button = gr.Button("Join", scale=1)
    status = gr.Markdown(label="status")
    gr.on(
        [button.click, code.submit],
        partial(join, arena),
        [code, session],
        [session, status],
        api_name="join",
    )


def answer_slots(
    n: int, labels: list[str], prefix: str
) -> tuple[list[gr.Textbox], list[gr.Markdown]]:
    """`n` read-only answer boxes with a stats line under each (plain text, never HTML)."""
    boxes, stats = [], []
    with gr.Row(equal_height=True):
        for i in range(n):
            with gr.Column():
                boxes.append(
                    gr.Textbox(
                        label=labels[i], lines=6, interactive=False, elem_id=f"{prefix}-answer-{i}"
                    )
                )
                stats.append(gr.Markdown(label=f"stats {i + 1}", elem_id=f"{prefix}-stats-{i}"))
    return boxes, stats


def compare_tab(
    arena: Arena, session: gr.State, settings: list, examples: list[str]
) -> gr.CheckboxGroup:
    """Every chosen model answers the same prompt; the student picks the best answer."""
    names = gr.CheckboxGroup(
        arena.pool.available, value=arena.pool.available[:MAX_COMPARE], label="Models"
    )
    if arena.pool.unavailable:
        gr.Markdown("Unavailable: " + ", ".join(f"`{n}`" for n in arena.pool.unavailable))
    prompt = gr.Textbox(
        label="Prompt", lines=2, max_length=MAX_PROMPT_CHARS, elem_id="compare-prompt"
    )
    button = gr.Button("Ask every model", variant="primary", elem_id="compare-ask")
    if examples:
        gr.Examples([[e] for e in examples], inputs=prompt)
    labels = [f"answer {i + 1}" for i in range(MAX_COMPARE)]
    boxes, stats = answer_slots(MAX_COMPARE, labels, "compare")
    best = gr.Radio([], label="Best answer")
    with gr.Row():
        vote_best = gr.Button("Vote: this one is best", variant="primary")
        vote_tie = gr.Button("All equally good")
        vote_bad = gr.Button("All bad")
    status = gr.Markdown(label="status")

    def run(prompt, models, temperature, top_p, max_tokens, seed, state):
        settings = (temperature, top_p, max_tokens, seed)
        for new, shown, texts, lines, message in ask(
            arena, "compare", prompt, models, settings, state
        ):
            yield new, *slot_updates(shown, texts, lines), gr.update(choices=shown), message

    outputs = [session, *boxes, *stats, best, status]
    gr.on(
        [button.click, prompt.submit],
        run,
        [prompt, names, *settings, session],
        outputs,
        api_name="compare",
    )

    def cast(outcome, choice, state: Session | None):
        winner = state.models.index(choice) if state and choice in state.models else None
        return vote(arena, outcome, winner, state)

    for button_, outcome in ((vote_best, "win"), (vote_tie, "tie"), (vote_bad, "both_bad")):
        button_.click(
            partial(cast, outcome),
            [best, session],
            [session, status],
            api_name=f"compare_{outcome}",
        )
    return names


def slot_updates(names: list[str], texts: list[str], lines: list[str]) -> list:
    """Fill the first len(names) answer slots, hide the rest: boxes first, then stats lines."""
    boxes = [
        gr.update(label=names[i], value=texts[i], visible=True)
        if i < len(names)
        else gr.update(value="", visible=False)
        for i in range(MAX_COMPARE)
    ]
    stats = [
        gr.update(value=lines[i] if i < len(lines) else "", visible=i < len(names))
        for i in range(MAX_COMPARE)
    ]
    return [*boxes, *stats]


def battle_tab(arena: Arena, session: gr.State, settings: list, examples: list[str]) -> None:
    """Two anonymous models answer; their names appear only after the vote."""
    prompt = gr.Textbox(
        label="Prompt", lines=2, max_length=MAX_PROMPT_CHARS, elem_id="battle-prompt"
    )
    button = gr.Button("Battle!", variant="primary", elem_id="battle-go")
    if examples:
        gr.Examples([[e] for e in examples], inputs=prompt)
    boxes, stats = answer_slots(2, list(BATTLE_NAMES), "battle")
    with gr.Row():
        buttons = {
            ("win", 0): gr.Button("A is better", elem_id="battle-a"),
            ("win", 1): gr.Button("B is better", elem_id="battle-b"),
            ("tie", None): gr.Button("Tie", elem_id="battle-tie"),
            ("both_bad", None): gr.Button("Both are bad", elem_id="battle-bad"),
        }
    status = gr.Markdown(label="status", elem_id="battle-status")

    def run(prompt, temperature, top_p, max_tokens, seed, state):
        settings = (temperature, top_p, max_tokens, seed)
        for new, _, texts, _, message in ask(arena, "battle", prompt, [], settings, state):
            texts = (texts + ["", ""])[:2]
            hidden = [
                gr.update(label=label, value=t)
                for label, t in zip(BATTLE_NAMES, texts, strict=True)
            ]
            yield new, *hidden, "", "", message

    outputs = [session, *boxes, *stats, status]
    gr.on(
        [button.click, prompt.submit], run, [prompt, *settings, session], outputs, api_name="battle"
    )

    def cast(outcome, winner, state: Session | None):
        counted_before = state is None or state.voted
        state, message = vote(arena, outcome, winner, state)
        if counted_before or not state.voted:  # nothing new recorded: reveal nothing
            return state, gr.update(), gr.update(), gr.update(), gr.update(), message
        labels = [
            gr.update(label=f"{label}: {name}")
            for label, name in zip(BATTLE_NAMES, state.models, strict=True)
        ]
        return state, *labels, *state.stats, message

    for (outcome, winner), button_ in buttons.items():
        name = f"battle_{outcome}" + ("" if winner is None else f"_{'ab'[winner]}")
        button_.click(partial(cast, outcome, winner), session, outputs, api_name=name)


def leaderboard_tab(arena: Arena, tab: gr.Tab) -> None:
    """Bradley–Terry ratings with intervals, win rates and the gold judge's view, kept fresh."""
    status = gr.Markdown(label="status", elem_id="leaderboard-status")
    refresh = gr.Button("Refresh", elem_id="leaderboard-refresh")
    with gr.Row():
        ratings, matrix = gr.Plot(label="Ratings"), gr.Plot(label="Win rates")
    table = gr.Dataframe(label="Leaderboard", interactive=False, elem_id="leaderboard-table")
    timer = gr.Timer(10)
    gr.on(
        [refresh.click, tab.select, timer.tick],
        partial(board.leaderboard, arena),
        outputs=[ratings, matrix, table, status],
        api_name="leaderboard",
    )


def data_tab(arena: Arena) -> None:
    """The votes, agreement measures, the export, and simulated voters (instructor)."""
    refresh = gr.Button("Refresh")
    votes_status = gr.Markdown(label="votes status")
    votes = gr.Dataframe(label="Votes (newest first)", interactive=False, wrap=True)
    agreement = gr.Dataframe(label="Agreement", interactive=False)
    refresh.click(partial(board.agreement, arena), outputs=agreement, api_name="agreement")
    with gr.Accordion("Instructor", open=False):
        password = gr.Textbox(label="Instructor password", type="password")
        with gr.Row():
            export = gr.Button("Export preference dataset")
            n_sim = gr.Number(20, precision=0, label="simulated votes", minimum=1, maximum=500)
            taste = gr.Dropdown(retrain.tastes(), value="", label="simulated class's taste")
            group = gr.Textbox(label="group (optional)", max_length=40)
            simulate = gr.Button("Cast simulated votes")
        files = gr.File(label="Exported files", interactive=False)
        status = gr.Markdown(label="status")
    export_root = arena.store.path.parent / "exports"
    export.click(
        partial(board.export, arena, out_root=export_root),
        password,
        [files, status],
        api_name="export",
    )
    simulate.click(
        partial(retrain.simulate, arena),
        [password, n_sim, taste, group],
        status,
        api_name="simulate",
    )
    gr.on(  # in classroom mode the votes (students' prompts) are the instructor's to read
        [refresh.click, password.submit],
        partial(board.votes_table, arena),
        inputs=password,
        outputs=[votes, votes_status],
        api_name="votes",
    )


def retrain_tab(arena: Arena) -> None:
    """Instructor: a feedback round on the class's votes in the background, before / after."""
    gr.Markdown(retrain.RETRAIN_HELP)
    with gr.Row():
        password = gr.Textbox(label="Instructor password", type="password")
        group = gr.Textbox(label="group (empty: every vote)", max_length=40)
        updates = gr.Number(
            retrain.FeedbackConfig().ppo_updates, precision=0, minimum=0, maximum=200,
            label="PPO updates after (0 = reward model only)",
        )  # fmt: skip
    button = gr.Button("Retrain", variant="primary", elem_id="retrain-go")
    message = gr.Markdown(elem_id="retrain-message")  # stays until the next click
    progress = gr.Textbox(label="Progress", interactive=False, elem_id="retrain-progress")
    with gr.Row():
        panel = gr.Dataframe(label="Before / after", interactive=False, elem_id="retrain-panel")
        plot = gr.Plot(label="Before / after")
    with gr.Accordion("Every number of the round", open=False):
        results = gr.Dataframe(label="All metrics", interactive=False)
    button.click(
        partial(retrain.start, arena), [password, updates, group], message, api_name="retrain"
    )
    gr.Timer(2).tick(
        partial(retrain.status, arena),
        outputs=[progress, panel, plot, results],
        api_visibility="private",
    )


def dashboard_tab(arena: Arena) -> None:
    """Each stage's logged training curves."""
    stage = gr.Radio(list(board.DASHBOARD), value="ppo", label="Stage")
    plot = gr.Plot()
    gr.on([stage.change], partial(board.dashboard, arena), stage, plot, api_name="dashboard")


def example_prompts(arena: Arena, n: int = 6) -> list[str]:
    """A few of the run's held-out prompts, to click instead of typing."""
    if arena.run_dir is None or arena.cfg is None:
        return []
    try:
        prompts = recipes.eval_prompts(arena.cfg, arena.run_dir / "world")
    except (OSError, ValueError):  # a run without its data (e.g. a hub recipe, offline)
        return []
    return [last_content(p, "user") for p in prompts[:n]]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="The RLHF Lab arena.")
    parser.add_argument("--run", type=Path, help="a pipeline run folder, e.g. runs/tiny")
    parser.add_argument("--model", action="append", default=[], metavar="NAME=PATH_OR_HUB_ID")
    parser.add_argument("--db", type=Path, default=Path("data/arena.sqlite"))
    parser.add_argument("--host", default="127.0.0.1", help="0.0.0.0 to serve a classroom LAN")
    parser.add_argument("--port", type=int, default=7860)
    parser.add_argument("--classroom", action="store_true", help="join code, password, quotas")
    parser.add_argument("--join-code", default="")
    parser.add_argument("--password", default="", help="instructor password")
    parser.add_argument("--quota", type=int, default=500, help="votes per annotator")
    parser.add_argument("--no-browser", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Load the models, build the page, serve it (no share links)."""
    args = parse_args(argv)
    set_torch_threads()
    models = dict(spec.split("=", 1) for spec in args.model if "=" in spec)
    if len(models) != len(args.model):
        raise SystemExit("--model takes NAME=PATH_OR_HUB_ID")
    classroom = Classroom(quota=args.quota)
    if args.classroom:
        classroom.join_code = args.join_code or new_code()
        classroom.password = args.password or new_code(6)
        print(f"join code: {classroom.join_code}   instructor password: {classroom.password}")
    arena = load_arena(args.run, models, args.db, classroom)
    for name, error in arena.pool.unavailable.items():
        print(f"[arena] {name} is unavailable: {error}")
    demo = build_app(arena, example_prompts(arena))
    demo.queue(default_concurrency_limit=8).launch(
        server_name=args.host,
        server_port=args.port,
        share=False,
        inbrowser=not args.no_browser,
        allowed_paths=[str(arena.store.path.parent / "exports")],
    )


if __name__ == "__main__":
    main()
