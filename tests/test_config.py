import ast
import inspect

import pytest
import yaml

from lab.config import LabConfig
from lab.overrides import CHOICES, apply_overrides, parse_set_args, to_dict
from lab.profiles import GPU, LORA, PROFILES, load_config
from lab.recipes import RECIPES


def test_tiny_is_the_defaults():
    assert load_config("tiny") == LabConfig(profile="tiny")


def test_profiles_are_small_diffs():
    """A profile is the shared GPU (and LoRA) diff plus a few fields of its own."""
    assert len(GPU) <= 18 and len(LORA) <= 12  # a few lines per trained stage (ORPO's included)
    for name, diff in PROFILES.items():
        own = {k for k in diff if k not in GPU and k not in LORA}
        assert len(own) <= 4, f"profile {name} should be a small diff, has its own {sorted(own)}"
        load_config(name)  # every key in every profile exists and has the right type
    for name in RECIPES:
        load_config(f"smollm2-135m+{name}")  # and in every recipe


def test_smollm_profile_names_a_hub_model():
    cfg = load_config("smollm2-135m")
    assert cfg.model.name_or_path == "HuggingFaceTB/SmolLM2-135M"
    assert cfg.model.dtype == "bfloat16"
    assert cfg.world == LabConfig().world  # same world, different model


def test_set_args_are_read_for_their_settings_type():
    cfg = load_config(
        "tiny", parse_set_args(["pretrain.steps=5", "model.name_or_path=x/y", "pretrain.lr=0.5"])
    )
    assert (cfg.pretrain.steps, cfg.model.name_or_path, cfg.pretrain.lr) == (5, "x/y", 0.5)
    for typed in ("0123", "1:30", "yes", "0x1F", "1.10"):  # YAML would turn these into others
        cfg = load_config("tiny", parse_set_args([f"model.name_or_path={typed}"]))
        assert cfg.model.name_or_path == typed
    later = load_config("tiny", parse_set_args(["pretrain.steps=3", "pretrain.steps=4"]))
    assert later.pretrain.steps == 4  # the later value wins, as on any command line
    with pytest.raises(TypeError, match="pretrain.lr expects float"):
        load_config("tiny", parse_set_args(["pretrain.lr=[1"]))
    cfg = load_config(
        "tiny", parse_set_args(["pretrain.lr=1", "seed=3", "world.annotator_noise=1e-3"])
    )
    assert cfg.pretrain.lr == 1.0 and isinstance(cfg.pretrain.lr, float)
    assert cfg.world.annotator_noise == 1e-3  # YAML leaves "1e-3" a string; still a float here
    assert cfg.seed == 3


@pytest.mark.parametrize(
    "overrides, error, words",
    [
        ({"pretrain.stepz": 1}, KeyError, "pretrain.stepz"),
        ({"nosuch.steps": 1}, KeyError, "nosuch"),
        ({"pretrain.steps": "many"}, TypeError, "pretrain.steps expects int"),
        ({"pretrain.steps": 1.5}, TypeError, "pretrain.steps"),
        ({"pretrain.steps": True}, TypeError, "pretrain.steps"),
        ({"ppo.updates": -3}, ValueError, "ppo.updates must be a finite number, 0 or more; got -3"),
        ({"ppo.updates": 0}, ValueError, "ppo.updates must be above 0, got 0"),
        ({"ppo.lr": float("nan")}, ValueError, "ppo.lr must be a finite number"),
        ({"ppo.lr": float("inf")}, ValueError, "ppo.lr must be a finite number"),
        ({"data.max_examples": -1}, ValueError, "data.max_examples must be"),
        ({"model.dtype": "int8"}, ValueError, "model.dtype must be one of float32, bfloat16"),
        ({"ppo.kl_estimator": "k9"}, ValueError, "ppo.kl_estimator must be one of k1, k3"),
        ({"log.report_to": "wandb"}, ValueError, "log.report_to must be one of none"),
        ({"world.n_annotators": 0}, ValueError, "world.n_annotators must be above 0"),
        ({"world.n_pairs_test": 0}, ValueError, "world.n_pairs_test must be above 0"),
        ({"ppo.temperature": 0.0}, ValueError, "ppo.temperature must be above 0"),  # NaN log-probs
        ({"grpo.temperature": 0.0}, ValueError, "grpo.temperature must be above 0"),
        ({"ppo.kl_horizon": 0}, ValueError, "ppo.kl_horizon must be above 0"),
        ({"device": "gpu"}, ValueError, "device must be auto, cpu, cuda, cuda:N or mps; got 'gpu'"),
        ({"ppo.policy": "xyz"}, ValueError, "ppo.policy must be one of sft, base"),
        ({"ppo.reward": "foo"}, ValueError, "ppo.reward must be model, function:module.name or"),
        ({"grpo.reward": "function:"}, ValueError, "grpo.reward must be model"),
        ({"dpo.loss_type": "sigmod"}, ValueError, "dpo.loss_type must be one of sigmoid, hinge"),
        ({"grpo.loss_type": "sigmoid"}, ValueError, "grpo.loss_type must be one of dapo, grpo"),
        (
            {"dpo.loss_type": "exo_pair"},
            ValueError,
            "dpo.loss_type must be one of",
        ),  # needs smoothing
        (
            {"sft.warmup_ratio": 1.0},
            ValueError,
            "sft.warmup_ratio is a share of the steps: below 1",
        ),
    ],
)
def test_bad_overrides_name_the_field(overrides, error, words):
    with pytest.raises(error, match=words):
        apply_overrides(LabConfig(), overrides)


def test_the_loss_choices_are_losses_trl_documents():
    from trl import DPOConfig, GRPOConfig

    for section, config in (("dpo", DPOConfig), ("grpo", GRPOConfig)):
        help_text = config.__dataclass_fields__["loss_type"].metadata["help"]
        for choice in CHOICES[f"{section}.loss_type"]:
            assert f"'{choice}'" in help_text or f'"{choice}"' in help_text, (section, choice)
            apply_overrides(LabConfig(), {f"{section}.loss_type": choice})


def test_bad_set_syntax():
    with pytest.raises(ValueError, match="key=value"):
        parse_set_args(["pretrain.steps"])


def test_an_empty_set_value_is_refused_for_numbers_and_kept_for_text():
    for empty in ("", " "):
        with pytest.raises(TypeError, match="pretrain.steps expects int, got nothing"):
            load_config("tiny", parse_set_args([f"pretrain.steps={empty}"]))
        with pytest.raises(TypeError, match="ppo.whiten_rewards expects bool, got nothing"):
            load_config("tiny", parse_set_args([f"ppo.whiten_rewards={empty}"]))
    assert load_config("tiny", parse_set_args(["model.name_or_path="])).model.name_or_path == ""
    for good in ("cpu", "cuda", "cuda:1", "auto", "mps"):
        assert load_config("tiny", {"device": good}).device == good


def test_a_profile_is_chosen_by_name_not_set_as_a_setting(tmp_path):
    printed = tmp_path / "printed.yaml"  # what `python -m lab config` prints, edited
    printed.write_text(yaml.safe_dump({**to_dict(load_config("tiny")), "seed": 5}))
    assert load_config("tiny", {}, str(printed)).seed == 5  # its own profile line is fine
    with pytest.raises(KeyError, match="--set: profile is not a setting: choose a profile with"):
        load_config("tiny", parse_set_args(["profile=qwen2.5-0.5b"]))
    (tmp_path / "mine.yaml").write_text("profile: qwen2.5-0.5b\n")
    with pytest.raises(KeyError, match="mine.yaml: profile is not a setting"):
        load_config("tiny", {}, str(tmp_path / "mine.yaml"))


def test_a_settings_file_that_cannot_be_read_is_named_in_one_line(tmp_path):
    (tmp_path / "bad.yaml").write_text("ppo: [1, 2")
    (tmp_path / "latin.yaml").write_bytes(b"ppo:\n  lr: \xff\n")
    for name in ("missing.yaml", "bad.yaml", "latin.yaml", ""):
        with pytest.raises(ValueError, match=f"{tmp_path / name}: cannot read it as YAML") as err:
            load_config("tiny", {}, str(tmp_path / name))
        assert "\n" not in str(err.value)


def test_a_key_given_twice_in_a_settings_file_is_refused_with_its_line(tmp_path):
    path = tmp_path / "twice.yaml"
    path.write_text("ppo:\n  lr: 0.001\n  updates: 3\n  lr: 0.1\nsft:\n  lr: 0.1\n")
    with pytest.raises(ValueError, match=r"twice.yaml: .*the key 'lr' is given twice \(line 4\)"):
        load_config("tiny", {}, str(path))
    path.write_text("ppo:\n  lr: 0.001\nppo:\n  updates: 3\n")  # a section twice: the same
    with pytest.raises(ValueError, match=r"the key 'ppo' is given twice \(line 3\)"):
        load_config("tiny", {}, str(path))
    path.write_text("ppo:\n  lr: 0.001\nsft:\n  lr: 0.1\n")  # one key in two sections: fine
    assert load_config("tiny", {}, str(path)).sft.lr == 0.1
    path.write_text("sft: &train {lr: 0.0003, epochs: 2}\nreward: {<<: *train, lr: 0.001}\n")
    cfg = load_config("tiny", {}, str(path))  # a merge key, then a key of its own: fine
    assert (cfg.reward.lr, cfg.reward.epochs, cfg.sft.lr) == (0.001, 2, 0.0003)


def test_a_settings_file_keeps_text_as_written(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("model:\n  name_or_path: 0123\nsft:\n  lr: 1.10\npretrain:\n  steps: 0x10\n")
    cfg = load_config("tiny", {}, str(path))
    assert cfg.model.name_or_path == "0123"  # YAML 1.1 would read the octal 83
    assert (cfg.sft.lr, cfg.pretrain.steps) == (1.1, 16) and type(cfg.pretrain.steps) is int


def test_yaml_file_then_set_wins(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump({"pretrain": {"steps": 7, "lr": 0.01}, "world": {"seed": 4}}))
    cfg = load_config("tiny", {"pretrain.steps": 9}, str(path))
    assert (cfg.pretrain.steps, cfg.pretrain.lr, cfg.world.seed) == (9, 0.01, 4)


def test_unknown_profile():
    with pytest.raises(KeyError, match="unknown profile"):
        load_config("gpt-5")


def test_every_field_has_a_docstring():
    import lab.config as module

    tree = ast.parse(inspect.getsource(module))
    for cls in (n for n in tree.body if isinstance(n, ast.ClassDef)):
        body = cls.body
        for i, node in enumerate(body):
            if isinstance(node, ast.AnnAssign):
                nxt = body[i + 1] if i + 1 < len(body) else None
                assert isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant), (
                    f"{cls.name}.{node.target.id} needs a one-line docstring"
                )


def test_a_run_records_its_config_and_reads_it_back(tmp_path):
    from lab.overrides import from_dict, to_dict
    from lab.stages import CONFIG_FILE, load_run_config, run_stages

    cfg = load_config("smollm2-135m", {"ppo.kl_coef": 0.2})
    assert from_dict(to_dict(cfg)) == cfg
    with pytest.raises(FileNotFoundError, match="pipeline"):
        load_run_config(tmp_path)
    small = load_config("tiny", {"world.n_pretrain_docs": 50, "world.n_sft": 20})
    run_stages(small, tmp_path, until="world")
    assert (tmp_path / CONFIG_FILE).exists() and load_run_config(tmp_path) == small
