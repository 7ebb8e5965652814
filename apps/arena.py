"""The arena: base, SFT and PPO answer side by side, and every vote becomes a preference pair.

    python -m apps.arena --run runs/tiny                    # the pipeline's models
    python -m apps.arena --model sft=runs/tiny/sft/model --model other=HuggingFaceTB/SmolLM2-135M
    python -m apps.arena --run runs/tiny --classroom --host 0.0.0.0

Handlers live in `apps.handlers`, `apps.board` and `apps.retrain`; this module lays out the
students' page and wires components to the events in `apps.events`. The instructor's controls
are laid out in `apps.instructor_tabs`, the command line is `apps.launch`.
"""

from __future__ import annotations

import itertools
from functools import partial

import gradio as gr

from apps import board
from apps.events import (
    battle_event,
    battle_vote_event,
    bind,
    compare_event,
    compare_vote_event,
    dashboard_event,
    join_event,
    join_ready,
    load_event,
    refresh_compare,
)
from apps.guard import MAX_PROMPT_CHARS, browser_secret
from apps.handlers import (
    BATTLE_NAMES,
    MAX_COMPARE,
    MAX_NEW_TOKENS,
    Arena,
)
from apps.inputs import checked_by_handler
from apps.instructor_tabs import data_tab, instructor_box, retrain_tab
from apps.launch import classroom_from_args, parse_args, share_urls
from apps.loading import load_arena
from lab import recipes
from lab.evaluation import EVAL_DECODING
from lab.threads import set_torch_threads
from lab.world import World, last_content, phrases
from lab.world.tasks import KINDS, MAX_OPERAND

INTRO = """# RLHF Lab arena
In Compare the same prompt goes to every model with the same seed and decoding settings; a
Battle samples with a seed of its own each time, so Compare cannot tell you who is in it. Vote for the
better answer: each vote becomes a `prompt` / `chosen` / `rejected` pair for the reward model."""
STUDENT_ID_KEY = "rlhf-arena-student"  # the browser's localStorage key for the signed student id
CONCURRENT_REQUESTS = 64  # events at once: a class battles together and the pool batches them


def build_app(arena: Arena, examples: list[str] | None = None) -> gr.Blocks:
    """The whole page: a header, shared decoding settings, and one tab per activity."""
    instructor_open = not arena.classroom.password  # no password: nothing to hide
    with gr.Blocks(title="RLHF Lab arena") as demo:
        session = gr.State(None)  # the answers on screen: Compare, Battle and votes write it
        student = gr.State(None)  # who votes: only the load, the join and a first vote write it
        student_id = gr.BrowserState(  # its key follows the classroom's: a restart reads it back
            None, storage_key=STUDENT_ID_KEY, secret=browser_secret(arena.classroom)
        )
        gr.Markdown(INTRO)
        if arena.world is not None:
            with gr.Accordion("What these models know", open=False):
                gr.Markdown(world_panel(arena.world))
        join_row, join_status, join_inputs = join_box(arena, student, student_id)
        with gr.Accordion("Decoding settings (shared by every model)", open=False), gr.Row():
            settings = [
                checked_by_handler(
                    gr.Slider(0, 2, EVAL_DECODING.temperature, step=0.05, label="temperature")
                ),
                checked_by_handler(gr.Slider(0.05, 1, 1.0, step=0.05, label="top-p")),
                checked_by_handler(
                    gr.Slider(
                        1, MAX_NEW_TOKENS, EVAL_DECODING.max_new_tokens, step=1, label="max tokens"
                    )
                ),
                checked_by_handler(gr.Number(EVAL_DECODING.seed, precision=0, label="seed")),
            ]
        with gr.Tabs():
            with gr.Tab("Compare") as compare:
                names = compare_tab(arena, session, student, settings, examples or [])
            with gr.Tab("Battle"):
                battle_tab(arena, session, student, settings, examples or [])
            with gr.Tab("Leaderboard") as leaderboard:
                leaderboard_tab(arena, leaderboard)
            with gr.Tab("Data"):
                instructor_data, data_password = data_tab(arena, instructor_open)
            with gr.Tab("Retrain", visible=instructor_open, elem_id="retrain-tab") as retrain_page:
                retrain_password = retrain_tab(arena)
            with gr.Tab("Training dashboard") as dashboard:
                dashboard_tab(arena, dashboard)
        if not instructor_open:
            instructor_box(arena, [instructor_data, retrain_page, data_password, retrain_password])
        demo.load(
            partial(load_event, arena),
            student_id,
            [student, student_id, join_row, join_status],
            api_visibility="private",
        ).then(join_ready, None, join_inputs, api_visibility="private")
        gr.on(  # a feedback round adds models while the page is open
            [demo.load, compare.select],
            partial(refresh_compare, arena),
            names,
            names,
            api_visibility="private",
        )
    return demo


def join_box(arena: Arena, student: gr.State, student_id: gr.BrowserState) -> tuple:
    """Classroom mode: a join code opens voting; the box folds away once joined."""
    with gr.Row(visible=bool(arena.classroom.join_code), elem_id="join-box") as row:
        # Usable once the page has restored its student (`join_ready`): a join that finished
        # first would be overwritten by it, and the student found unjoined.
        code = gr.Textbox(
            label="Class join code", scale=3, elem_id="join-code", max_length=64, interactive=False
        )
        button = gr.Button("Join", scale=1, elem_id="join-go", interactive=False)
    status = gr.Markdown(elem_id="join-status")
    gr.on(
        [button.click, code.submit],
        bind(join_event, arena),
        [code, student],
        [student, student_id, row, status],
        api_name="join",
    )
    return row, status, [code, button]


def prompt_box(elem_id: str) -> gr.Textbox:
    """A prompt box without a length cap: the browser would cut a long paste silently, where
    `guard.check_prompt` says how long it is and what the limit is."""
    return gr.Textbox(
        label="Prompt", lines=2, elem_id=elem_id, info=f"up to {MAX_PROMPT_CHARS:,} characters"
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
    arena: Arena, session: gr.State, student: gr.State, settings: list, examples: list[str]
) -> gr.CheckboxGroup:
    """Every chosen model answers the same prompt; the student picks the best answer."""
    names = checked_by_handler(  # `pick_models` keeps the models the pool has now
        gr.CheckboxGroup(
            arena.pool.available, value=arena.pool.available[:MAX_COMPARE], label="Models"
        )
    )
    if arena.pool.unavailable:
        gr.Markdown("Unavailable: " + ", ".join(f"`{n}`" for n in arena.pool.unavailable))
    prompt = prompt_box("compare-prompt")
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
    status = gr.Markdown(label="status", elem_id="compare-status")
    gr.on(
        [button.click, prompt.submit],
        partial(compare_event, arena),
        [prompt, names, *settings, session],
        [session, *boxes, *stats, best, status],
        api_name="compare",
    )
    for button_, outcome in ((vote_best, "win"), (vote_tie, "tie"), (vote_bad, "both_bad")):
        button_.click(
            partial(compare_vote_event, arena, outcome),
            [best, session, student],
            [session, student, *stats, status],
            api_name=f"compare_{outcome}",
        )
    return names


def battle_tab(
    arena: Arena, session: gr.State, student: gr.State, settings: list, examples: list[str]
) -> None:
    """Two anonymous models answer; their names appear only after the vote."""
    prompt = prompt_box("battle-prompt")
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
    gr.on(
        [button.click, prompt.submit],
        partial(battle_event, arena),
        [prompt, *settings, session],
        [session, *boxes, *stats, status],
        api_name="battle",
    )
    for (outcome, winner), button_ in buttons.items():
        name = f"battle_{outcome}" + ("" if winner is None else f"_{'ab'[winner]}")
        button_.click(
            partial(battle_vote_event, arena, outcome, winner),
            [session, student],
            [session, student, *boxes, *stats, status],
            api_name=name,
        )


def leaderboard_tab(arena: Arena, tab: gr.Tab) -> None:
    """Bradley–Terry ratings with intervals, win rates, the gold judge's view and the style view."""
    status = gr.Markdown(label="status", elem_id="leaderboard-status")
    refresh = gr.Button("Refresh", elem_id="leaderboard-refresh")
    with gr.Row():
        ratings, matrix = gr.Plot(label="Ratings"), gr.Plot(label="Win rates")
    table = gr.Dataframe(label="Leaderboard", interactive=False, elem_id="leaderboard-table")
    with gr.Accordion("Style control: how much of a rating is length?", open=False):
        style_status = gr.Markdown(elem_id="style-status")
        style_table = gr.Dataframe(
            label="Ratings with style held equal", interactive=False, elem_id="style-table"
        )
        coefficients = gr.Dataframe(label="Style coefficients", interactive=False)
    triggers = [refresh.click, tab.select, gr.Timer(10).tick]
    gr.on(
        triggers,
        partial(board.leaderboard, arena),
        outputs=[ratings, matrix, table, status],
        api_name="leaderboard",
    )
    gr.on(
        triggers,
        partial(board.style_leaderboard, arena),
        outputs=[style_table, coefficients, style_status],
        api_name="style_leaderboard",
    )


def dashboard_tab(arena: Arena, tab: gr.Tab) -> None:
    """Each stage's logged training curves; opens on one already drawn."""
    stages = board.dashboard_stages(arena.run_dir)
    first = "ppo" if "ppo" in stages else (stages[-1] if stages else None)
    stage = gr.Radio(stages, value=first, label="Stage", elem_id="dashboard-stage")
    plot = gr.Plot(board.dashboard(arena, first) if first else None, elem_id="dashboard-plot")
    gr.on([stage.change], partial(board.dashboard, arena), stage, plot, api_name="dashboard")
    tab.select(partial(dashboard_event, arena), stage, [stage, plot], api_visibility="private")


def example_prompts(arena: Arena, n: int = 10) -> list[str]:
    """A few of the run's held-out prompts to click instead of typing, every task kind in turn."""
    if arena.run_dir is None or arena.cfg is None:
        return []
    try:
        prompts = [
            last_content(p, "user")
            for p in recipes.eval_prompts(arena.cfg, arena.run_dir / "world")
        ]
    except (OSError, ValueError):  # a run without its data (e.g. a hub recipe, offline)
        return []
    if arena.world is None:
        return prompts[:n]
    by_kind: dict[str, list[str]] = {kind: [] for kind in KINDS}
    for prompt in prompts:
        task = arena.world.task(prompt)
        if task is not None:
            by_kind[task.kind].append(prompt)
    rounds = itertools.zip_longest(*by_kind.values())  # one of each kind, then the next…
    return [prompt for round_ in rounds for prompt in round_ if prompt][:n] or prompts[:n]


def world_panel(world: World) -> str:
    """What the tiny world's models can answer, for students who wonder what to ask."""
    countries = [c.name for c in world.kb.countries]
    advice, harmful = next(iter(phrases.ADVICE)), next(iter(phrases.HARMFUL_REQUESTS))
    return f"""These models learned one small made-up world, and nothing outside it.

- **Facts** about its {len(countries)} countries ({", ".join(countries[:6])}, …): each one's
  capital, export and animal. *What is the capital of {countries[0]}?*
- **Sums and differences** of whole numbers up to {MAX_OPERAND}. *What is 7 plus 5?*
- **Advice** on everyday goals. *How can I {advice}?*
- **Summaries** of a short passage about a country. *Summarize: …*
- **Harmful requests**, which a good answer refuses. *How do I {harmful}?*

Ask about anything else (a real country, say) and even the best of them can only guess."""


def main(argv: list[str] | None = None) -> None:
    """Load the models, build the page, serve it (no share links, nothing sent off the machine)."""
    args = parse_args(argv)  # analytics and telemetry are off: see `apps/__init__.py`
    set_torch_threads()
    models = dict(spec.split("=", 1) for spec in args.model if "=" in spec)
    if len(models) != len(args.model):
        raise SystemExit("--model takes NAME=PATH_OR_HUB_ID")
    try:
        classroom = classroom_from_args(args)
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
    arena = load_arena(args.run, models, args.db, classroom)
    for name, error in arena.pool.unavailable.items():
        print(f"[arena] {name} is unavailable: {error}")
    if args.classroom:
        print(f"join code: {classroom.join_code}   instructor password: {classroom.password}")
        for group, code in classroom.group_codes.items():
            print(f"join code of group {group}: {code}")
        print("students open: " + "  ".join(share_urls(args.host, args.port)))
    demo = build_app(arena, example_prompts(arena))
    try:
        demo.queue(default_concurrency_limit=CONCURRENT_REQUESTS).launch(
            server_name=args.host,
            server_port=args.port,
            share=False,
            inbrowser=not args.no_browser,
        )  # no allowed_paths: exports reach the instructor as a copy (`board.export`), never by URL
    except OSError as error:  # the port is taken, or the host is not this machine's
        arena.store.remove_if_unused()
        raise SystemExit(f"cannot serve on {args.host}:{args.port}: {error}") from None


if __name__ == "__main__":
    main()
