"""Running stages: a stage that fails leaves the run folder as it found it."""

from __future__ import annotations

import json

import pytest

from lab import stages
from lab.config import LabConfig


def fake_stages(monkeypatch, fail: set[str], depends_on: tuple[str, ...] = ("world",)) -> None:
    """Two quick stages, `a` then `b`, each writing a file of the world seed it ran with."""

    def make(name: str):
        def run(cfg: LabConfig, run_dir) -> dict:
            (run_dir / name).mkdir(parents=True, exist_ok=True)
            (run_dir / name / "made.txt").write_text(str(cfg.world.seed))
            if name in fail:
                raise RuntimeError(f"{name} broke")
            return {"seed": cfg.world.seed}

        return stages.Stage(name, run, depends_on)

    monkeypatch.setattr(stages, "STAGES", [make("a"), make("b")])
    monkeypatch.setattr(stages, "STAGE_NAMES", ["a", "b"])


def test_a_failed_stage_leaves_the_finished_folder_and_the_settings(monkeypatch, tmp_path):
    fake_stages(monkeypatch, fail=set())
    cfg = LabConfig()
    stages.run_stages(cfg, tmp_path, "b")
    settings = (tmp_path / "config.json").read_text()
    fake_stages(monkeypatch, fail={"b"})
    cfg.world.seed = 7  # both stages are stale: `a` reruns, then `b` fails half-way
    with pytest.raises(RuntimeError, match="b broke"):
        stages.run_stages(cfg, tmp_path, "b")
    assert (tmp_path / "b" / "made.txt").read_text() == "0"  # the finished folder is back
    assert json.loads((tmp_path / "b" / "metrics.json").read_text())["seed"] == 0
    assert (tmp_path / "a" / "made.txt").read_text() == "7"  # `a` finished with the new seed
    assert (tmp_path / "config.json").read_text() == settings
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "b", "config.json"]
    fake_stages(monkeypatch, fail=set())  # the next run sees `b` stale and runs it
    assert stages.run_stages(cfg, tmp_path, "b")["b"]["seed"] == 7


def test_a_run_killed_mid_stage_gets_its_finished_folder_back(monkeypatch, tmp_path):
    fake_stages(monkeypatch, fail=set())
    cfg = LabConfig()
    stages.run_stages(cfg, tmp_path, "b")
    (tmp_path / "b").rename(tmp_path / "b.previous")  # as a killed run leaves it
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "half.txt").write_text("")
    results = stages.run_stages(cfg, tmp_path, "b")
    assert results["b"]["seed"] == 0 and not (tmp_path / "b" / "half.txt").exists()
    assert not (tmp_path / "b.previous").exists()


def test_an_unknown_stage_name_is_refused_before_anything_runs(monkeypatch, tmp_path):
    fake_stages(monkeypatch, fail=set())
    cfg = LabConfig(stages="a,bb")
    with pytest.raises(ValueError, match="unknown stage 'bb'; stages: a, b"):
        stages.run_stages(cfg, tmp_path, "b")
    assert not list(tmp_path.iterdir())


def test_a_stage_whose_output_is_gone_runs_again_and_so_do_the_stages_after_it(
    monkeypatch, tmp_path, capsys
):
    fake_stages(monkeypatch, fail=set())
    cfg = LabConfig()
    stages.run_stages(cfg, tmp_path, "b")
    assert json.loads((tmp_path / "a" / "metrics.json").read_text())["stage/outputs"] == "made.txt"
    (tmp_path / "a" / "made.txt").unlink()  # a student deleted the model to save space
    capsys.readouterr()
    stages.run_stages(cfg, tmp_path, "b")
    out = capsys.readouterr().out
    assert "[a] running" in out and "(made.txt missing)" in out and "[b] running" in out
    assert (tmp_path / "a" / "made.txt").exists()
    stages.run_stages(cfg, tmp_path, "b")  # whole again: reused
    assert "[a] reusing" in capsys.readouterr().out


def test_a_data_file_fixed_in_place_reruns_the_stage_that_reads_it(monkeypatch, tmp_path, capsys):
    data = tmp_path / "pairs.jsonl"
    data.write_text('{"prompt": "p", "chosen": "a", "rejected": "b"}\n')
    fake_stages(monkeypatch, fail=set(), depends_on=("reward",))
    cfg, run = LabConfig(), tmp_path / "run"
    plain = stages.fingerprint(cfg, ("reward",))
    cfg.reward.train_data = str(data)
    stages.run_stages(cfg, run, "b")
    stages.run_stages(cfg, run, "b")
    assert "[a] reusing" in capsys.readouterr().out
    data.write_text('{"prompt": "p", "chosen": "a", "rejected": "c"}\n')  # fixed, same name
    stages.run_stages(cfg, run, "b")
    out = capsys.readouterr().out
    assert f"[a] running -> {run / 'a'} ({data} changed)" in out and "[b] running" in out
    data.unlink()  # moved away, or the run copied to another machine: no change to rerun for
    stages.run_stages(cfg, run, "b")
    assert "[a] reusing" in capsys.readouterr().out
    cfg.reward.train_data = ""
    assert stages.fingerprint(cfg, ("reward",)) == plain  # the settings alone, as before


def test_a_script_reusing_a_run_takes_the_runs_own_settings(monkeypatch, tmp_path):
    fake_stages(monkeypatch, fail=set())
    made = LabConfig()
    made.world.seed = 9
    stages.run_stages(made, tmp_path, "b")
    defaults = LabConfig()
    assert stages.settings_of(tmp_path, defaults).world.seed == 9  # not the defaults' 0
    assert stages.settings_of(tmp_path / "new", defaults) is defaults
