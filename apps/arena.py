"""The arena: base, SFT and PPO answer side by side, and every vote becomes a preference pair.

    python -m apps.arena --run runs/tiny                    # the pipeline's models
    python -m apps.arena --model sft=runs/tiny/sft/model --model other=HuggingFaceTB/SmolLM2-135M
    python -m apps.arena --run runs/tiny --classroom --host 0.0.0.0

Handlers live in `apps.handlers`, `apps.board` and `apps.retrain`; this module lays out the
page and wires components to the events in `apps.events`.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import itertools
import socket
import types
from collections.abc import Callable
from functools import partial
from pathlib import Path

import gradio as gr

from apps import board, retrain
from apps.events import (
    battle_event,
    battle_vote_event,
    compare_event,
    compare_vote_event,
    dashboard_event,
    instructor_event,
    join_event,
    load_event,
    refresh_compare,
)
from apps.guard import MAX_PROMPT_CHARS, Classroom, new_code, parse_groups
from apps.handlers import (
    BATTLE_NAMES,
    MAX_COMPARE,
    MAX_NEW_TOKENS,
    Arena,
    load_arena,
)
from apps.inputs import checked_by_handler
from lab import recipes
from lab.evaluation import EVAL_DECODING
from lab.threads import set_torch_threads
from lab.world import World, last_content, phrases
from lab.world.tasks import KINDS, MAX_OPERAND

INTRO = """# RLHF Lab arena
The same prompt goes to every model with the same seed and decoding settings. Vote for the
better answer: each vote becomes a `prompt` / `chosen` / `rejected` pair for the reward model."""
STUDENT_ID_KEY = "rlhf-arena-student"  # the browser's localStorage key for the signed student id
CONCURRENT_REQUESTS = 64  # events at once: a class battles together and the pool batches them


def build_app(arena: Arena, examples: list[str] | None = None) -> gr.Blocks:
    """The whole page: a header, shared decoding settings, and one tab per activity."""
    instructor_open = not arena.classroom.password  # no password: nothing to hide
    with gr.Blocks(title="RLHF Lab arena") as demo:
        session = gr.State(None)
        student_id = gr.BrowserState(None, storage_key=STUDENT_ID_KEY)
        gr.Markdown(INTRO)
        if arena.world is not None:
            with gr.Accordion("What these models know", open=False):
                gr.Markdown(world_panel(arena.world))
        join_row, join_status = join_box(arena, session, student_id)
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
                names = compare_tab(arena, session, settings, examples or [])
            with gr.Tab("Battle"):
                battle_tab(arena, session, settings, examples or [])
            with gr.Tab("Leaderboard") as leaderboard:
                leaderboard_tab(arena, leaderboard)
            with gr.Tab("Data"):
                instructor_data, data_password = data_tab(arena, instructor_open)
            with gr.Tab("Retrain", visible=instructor_open, elem_id="retrain-tab") as retrain_page:
                retrain_tab(arena)
            with gr.Tab("Training dashboard") as dashboard:
                dashboard_tab(arena, dashboard)
        if not instructor_open:
            instructor_box(arena, [instructor_data, retrain_page, data_password])
        demo.load(
            partial(load_event, arena),
            student_id,
            [session, student_id, join_row, join_status],
            api_visibility="private",
        )
        gr.on(  # a feedback round adds models while the page is open
            [demo.load, compare.select],
            partial(refresh_compare, arena),
            names,
            names,
            api_visibility="private",
        )
    return demo


def bind(fn: Callable, arena: Arena) -> Callable:
    """`partial(fn, arena)` that keeps `fn`'s type hints, which Gradio reads to pass a gr.Request."""
    return types.MethodType(fn, arena)


def join_box(arena: Arena, session: gr.State, student_id: gr.BrowserState) -> tuple:
    """Classroom mode: a join code opens voting; the box folds away once joined."""
    with gr.Row(visible=bool(arena.classroom.join_code), elem_id="join-box") as row:
        code = gr.Textbox(label="Class join code", scale=3, elem_id="join-code", max_length=64)
        button = gr.Button("Join", scale=1, elem_id="join-go")
    status = gr.Markdown(elem_id="join-status")
    gr.on(
        [button.click, code.submit],
        bind(join_event, arena),
        [code, session],
        [session, student_id, row, status],
        api_name="join",
    )
    return row, status


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
    names = checked_by_handler(  # `pick_models` keeps the models the pool has now
        gr.CheckboxGroup(
            arena.pool.available, value=arena.pool.available[:MAX_COMPARE], label="Models"
        )
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
            [best, session],
            [session, *stats, status],
            api_name=f"compare_{outcome}",
        )
    return names


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
    outputs = [session, *boxes, *stats, status]
    gr.on(
        [button.click, prompt.submit],
        partial(battle_event, arena),
        [prompt, *settings, session],
        outputs,
        api_name="battle",
    )
    for (outcome, winner), button_ in buttons.items():
        name = f"battle_{outcome}" + ("" if winner is None else f"_{'ab'[winner]}")
        button_.click(
            partial(battle_vote_event, arena, outcome, winner), session, outputs, api_name=name
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


def retrain_tab(arena: Arena) -> None:
    """Instructor: a feedback round on the class's votes in the background, before / after."""
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


def share_urls(host: str, port: int) -> list[str]:
    """The addresses students type: this machine's LAN addresses when serving on every interface."""
    if host not in ("0.0.0.0", "::", ""):
        return [f"http://{host}:{port}"]
    return [f"http://{address}:{port}" for address in lan_addresses()] or [
        f"http://localhost:{port}"
    ]


def lan_addresses() -> list[str]:
    """This machine's IPv4 addresses other than loopback (no packet is sent to find them)."""
    found = set()
    with contextlib.suppress(OSError):
        found.update(socket.gethostbyname_ex(socket.gethostname())[2])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe, contextlib.suppress(OSError):
        probe.connect(("10.255.255.255", 1))  # a UDP connect sends nothing: it picks the interface
        found.add(probe.getsockname()[0])
    return sorted(a for a in found if not a.startswith("127.") and a != "0.0.0.0")


def port_number(text: str) -> int:
    """`--port`: a TCP port, 1 to 65535."""
    if not text.strip().isdigit() or not 1 <= int(text) <= 65535:
        raise argparse.ArgumentTypeError(f"a port is a whole number from 1 to 65535, got {text!r}")
    return int(text)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="The RLHF Lab arena.")
    parser.add_argument("--run", type=Path, help="a pipeline run folder, e.g. runs/tiny")
    parser.add_argument("--model", action="append", default=[], metavar="NAME=PATH_OR_HUB_ID")
    parser.add_argument("--db", type=Path, default=Path("data/arena.sqlite"))
    parser.add_argument("--host", default="127.0.0.1", help="0.0.0.0 to serve a classroom LAN")
    parser.add_argument("--port", type=port_number, default=7860)
    parser.add_argument("--classroom", action="store_true", help="join code, password, quotas")
    parser.add_argument("--join-code", default="")
    parser.add_argument(
        "--groups", default="",
        help="classroom: one join code per group, e.g. 'terse,warm' (votes carry the group)",
    )  # fmt: skip
    parser.add_argument("--password", default="", help="instructor password")
    parser.add_argument("--quota", type=int, default=500, help="votes per annotator")
    parser.add_argument("--no-browser", action="store_true")
    return parser.parse_args(argv)


def classroom_from_args(args: argparse.Namespace) -> Classroom:
    """The classroom's rules; its secret follows its codes, so a restart keeps students' ids."""
    classroom = Classroom(quota=args.quota)
    if args.groups and not args.classroom:
        raise ValueError("--groups gives each group a join code: it needs --classroom")
    if args.classroom:
        classroom.join_code = args.join_code or new_code()
        classroom.password = args.password or new_code(6)
        both = f"{classroom.join_code}\0{classroom.password}".encode()
        classroom.secret = hashlib.sha256(b"rlhf-arena\0" + both).hexdigest()
        classroom.group_codes = {  # derived like the secret: a restart keeps every group's code
            group: hashlib.sha256(f"{classroom.secret}\0{group}".encode()).hexdigest()[:6]
            for group in parse_groups(args.groups)
        }
    return classroom


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
