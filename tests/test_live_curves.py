"""`live_curves` redraws a stage's log while the body runs, and once more at the end."""

import json
import time

import IPython.display

from lab.notebook import live_curves


class FakeHandle:
    """Stands in for IPython's DisplayHandle: keeps every figure it is sent."""

    def __init__(self):
        self.points = []

    def update(self, fig):
        self.points.append(len(fig.data[0].y))


def test_live_curves_redraws_while_training(tmp_path, monkeypatch):
    handle = FakeHandle()
    monkeypatch.setattr(IPython.display, "display", lambda *a, **k: handle)
    log = tmp_path / "log.jsonl"
    with live_curves(tmp_path, ["ppo/reward"], every=0.01):
        for step in range(1, 4):
            with log.open("a") as f:
                f.write(json.dumps({"step": step, "ppo/reward": float(step)}) + "\n")
            time.sleep(0.1)
    assert handle.points[0] < 3 and handle.points[-1] == 3, handle.points  # grew while it ran
    assert handle.points == sorted(handle.points)


def test_live_curves_skips_a_half_written_line(tmp_path, monkeypatch):
    handle = FakeHandle()
    monkeypatch.setattr(IPython.display, "display", lambda *a, **k: handle)
    (tmp_path / "log.jsonl").write_text('{"step": 1, "ppo/reward": 1.0}\n{"step": 2, "ppo/rew')
    with live_curves(tmp_path, ["ppo/reward"], every=0.01):
        time.sleep(0.05)
    assert handle.points == []  # nothing drawn from a broken file, and no error


def test_live_curves_without_a_log_draws_nothing(tmp_path, monkeypatch):
    handle = FakeHandle()
    monkeypatch.setattr(IPython.display, "display", lambda *a, **k: handle)
    with live_curves(tmp_path / "missing", ["ppo/reward"], every=0.01):
        pass
    assert handle.points == []
