"""The arena in a real browser: Debian's Chromium driven by Playwright (no browser downloads)."""

from __future__ import annotations

import os
import re
import shutil

import pytest

from tests.conftest import serve

CHROMIUM = "/usr/bin/chromium"
HOSTILE = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script> What is 2 plus 3?'
# Quiet flags: without them Chromium keeps calling home, and this machine refuses every call.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

pytestmark = pytest.mark.skipif(
    not shutil.which(CHROMIUM), reason=f"{CHROMIUM} missing: `.ci/run` installs Debian's chromium"
)


@pytest.fixture
def page(arena_server):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(arena_server[1])
        yield page
        browser.close()


def leaderboard_shows(page, text: str) -> None:
    """Open the leaderboard, refresh it, and wait until its status line shows `text`."""
    from playwright.sync_api import expect

    page.get_by_role("tab", name="Leaderboard").click()
    page.locator("#leaderboard-refresh").click()
    expect(page.locator("#leaderboard-status")).to_contain_text(text, timeout=30_000)


def test_prompt_battle_vote_and_leaderboard_in_chromium(arena_server, page, tmp_path):
    before = arena_server[0].store.count()
    leaderboard_shows(page, f"{before} votes" if before else "No votes yet")

    # Compare: every model answers the same prompt, with its stats line.
    page.get_by_role("tab", name="Compare").click()
    page.locator("#compare-prompt textarea").fill("What is the capital of Zarnia?")
    page.locator("#compare-ask").click()
    page.locator("#compare-stats-0").filter(has_text="reward").wait_for(timeout=60_000)
    assert page.locator("#compare-answer-0 textarea").input_value()

    # Battle: anonymous answers, a vote, then the names are revealed.
    page.get_by_role("tab", name="Battle").click()
    page.locator("#battle-prompt textarea").fill(HOSTILE)
    page.locator("#battle-go").click()
    page.locator("#battle-status").filter(has_text="Which is better").wait_for(timeout=60_000)
    page.locator("#battle-a").click()
    page.locator("#battle-status").filter(has_text="Vote #").wait_for(timeout=60_000)  # busy CI
    revealed = page.locator("#battle-status").inner_text()  # "Model A was sft · Model B was ppo"
    # The first line names the models; a second may say the reward model and gold disagree.
    pair = re.findall(r"was (\S+?)(?: ·|$)", revealed.splitlines()[0])
    assert len(pair) == 2, revealed
    page.screenshot(path=os.environ.get("ARENA_SCREENSHOT", str(tmp_path / "arena.png")))

    # The leaderboard counts the new vote; the hostile prompt never ran as HTML.
    leaderboard_shows(page, f"{before + 1} votes")
    table = page.locator("#leaderboard-table").inner_text()
    assert all(name in table for name in pair), (pair, table)  # the battle's two models counted
    assert page.evaluate("window.__xss") is None
    assert page.locator("img[src='x']").count() == 0


@pytest.fixture
def retrain_server(small_ppo_run, tmp_path):
    """The arena on a copy of the small run (a round writes into it), with a terse class's votes."""
    from apps.arena import build_app
    from apps.loading import load_arena
    from apps.simulate import simulate_votes

    run = shutil.copytree(small_ppo_run, tmp_path / "run")
    arena = load_arena(run, {}, tmp_path / "votes.sqlite")
    simulate_votes(arena, 60, seed=3, taste="terse")
    demo = build_app(arena).queue(default_concurrency_limit=8)
    yield arena, serve(demo)
    demo.close()


def test_votes_retrain_and_the_new_policy_in_compare(retrain_server):
    """The instructor's loop in a browser: Retrain on the class's votes, read the before/after
    panel, then find the round's policy among Compare's models without reloading."""
    from playwright.sync_api import expect, sync_playwright

    arena, url = retrain_server
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url)
        page.get_by_role("tab", name="Retrain").click()
        page.get_by_label("PPO updates after (0 = reward model only)").fill("2")
        page.locator("#retrain-go").click()
        expect(page.locator("#retrain-message")).to_contain_text("Retraining on", timeout=30_000)
        expect(page.locator("#retrain-progress textarea")).to_have_value(
            re.compile("done"), timeout=600_000
        )
        expect(page.locator("#retrain-panel")).to_contain_text("agreement with the class")
        expect(page.locator("#retrain-message")).to_contain_text("Retraining on")  # still there
        page.get_by_role("tab", name="Compare").click()
        expect(page.get_by_label("ppo-round-001")).to_be_visible(timeout=30_000)
        browser.close()
    assert "ppo-round-001" in arena.pool.available


@pytest.fixture
def classroom_server(small_ppo_run, tmp_path):
    """The arena in classroom mode on the small run: join code c0de, instructor password pw."""
    from apps.arena import build_app, example_prompts
    from apps.guard import Classroom
    from apps.loading import load_arena

    room = Classroom(join_code="c0de", password="pw", min_seconds_between_votes=0)
    arena = load_arena(small_ppo_run, {}, tmp_path / "class.sqlite", room)
    demo = build_app(arena, example_prompts(arena)).queue(default_concurrency_limit=8)
    yield arena, serve(demo)
    demo.close()


def join_battle_and_vote(browser, url: str, button: str) -> str:
    """A student's path: join with the code (the box folds away), battle, vote; the reveal."""
    from playwright.sync_api import expect

    page = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
    page.goto(url)
    expect(page.get_by_role("tab", name="Retrain")).to_have_count(0)  # no instructor controls
    expect(page.locator("#data-instructor")).to_be_hidden()
    page.locator("#join-code input, #join-code textarea").first.fill("c0de")
    page.locator("#join-go").click()
    expect(page.locator("#join-status")).to_contain_text("Joined", timeout=30_000)
    expect(page.locator("#join-box")).to_be_hidden()
    page.get_by_role("tab", name="Battle").click()
    page.locator("#battle-prompt textarea").fill("What is 19 plus 3?")
    page.locator("#battle-go").click()
    page.locator("#battle-status").filter(has_text="Which is better").wait_for(timeout=60_000)
    page.locator(button).click()
    page.locator("#battle-status").filter(has_text="Vote #").wait_for(timeout=60_000)  # busy CI
    expect(page.locator("#battle-stats-0")).to_contain_text("gold")  # the gold judge, revealed
    revealed = page.locator("#battle-status").inner_text()
    page.reload()  # the same student: still joined, the box stays folded
    expect(page.locator("#join-status")).to_contain_text("remembers", timeout=30_000)
    expect(page.locator("#join-box")).to_be_hidden()
    return revealed


def test_two_students_join_battle_and_vote_and_the_instructor_sees_it(classroom_server):
    from playwright.sync_api import expect, sync_playwright

    arena, url = classroom_server
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        teacher = browser.new_context(viewport={"width": 1400, "height": 1000}).new_page()
        teacher.goto(url)
        leaderboard_shows(teacher, "No votes yet")
        join_battle_and_vote(browser, url, "#battle-a")
        join_battle_and_vote(browser, url, "#battle-tie")
        leaderboard_shows(teacher, "2 votes: 2 blind battles")
        # The instructor unlocks the controls on their own page only.
        teacher.get_by_text("Instructor", exact=True).click()
        teacher.locator("#unlock-pw input").fill("pw")
        teacher.locator("#unlock-go").click()
        expect(teacher.get_by_role("tab", name="Retrain")).to_be_visible(timeout=30_000)
        browser.close()
    votes = arena.store.votes()
    assert len(votes) == 2 and votes["annotator"].nunique() == 2  # two students, two ids
    assert sorted(votes["outcome"]) == ["tie", "win"]
