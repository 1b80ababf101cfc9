"""lift3d.presets and the fit CLI: the preset gives the defaults of typed nested options that land in the run's
config.json; --help lists them; the engine never imports presets."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from lift3d.cli import entrypoint, parse_fit
from lift3d.presets import PRESETS, get_preset


def test_typed_nested_options_override_the_chosen_preset():
    fit = parse_fit(
        [
            "scene",
            "--preset",
            "tiny",
            "--model.embedding-dim",
            "8",
            "--losses.num-slots",
            "12",
            "--model.radiance.upsample-steps",
            "3",
            "5",
            "--set",
            "losses.kernel=exp_distance",
            "--iterations",
            "7",
        ]
    )
    cfg, tiny = fit.resolved_config(), get_preset("tiny")
    assert (cfg.model.embedding_dim, cfg.losses.num_slots, cfg.model.radiance.upsample_steps) == (8, 12, (3, 5))
    assert cfg.losses.kernel == "exp_distance" and cfg.optim.iterations == 7
    assert cfg.optim.rays_per_batch == tiny.optim.rays_per_batch == 256  # untouched: the preset's value
    assert parse_fit(["scene"]).resolved_config() == get_preset("cpu-small")


def test_help_lists_nested_options_with_the_presets_defaults(capsys):
    with pytest.raises(SystemExit):
        parse_fit(["--preset", "tiny", "--help"])
    text = " ".join(re.sub(r"[│╭╮╰╯─]", " ", capsys.readouterr().out).split())
    assert "--model.embedding-dim" in text and "--losses.num-slots" in text
    assert re.search(r"--optim\.iterations INT .*?\(default: 30\)", text)  # tiny's 30, not the dataclass's 4000


def test_an_option_lands_in_the_stored_config(tiny_scene_dir, tmp_path):
    run = tmp_path / "run"
    entrypoint(
        [
            "fit",
            str(tiny_scene_dir),
            "--out",
            str(run),
            "--preset",
            "tiny",
            "--iterations",
            "12",
            "--model.embedding-dim",
            "4",
            "--seed",
            "3",
        ]
    )
    stored = json.loads((run / "config.json").read_text())
    assert stored["preset"] == "tiny" and stored["config"]["model"]["embedding_dim"] == 4
    assert stored["config"]["seed"] == 3 and stored["config"]["optim"]["iterations"] == 12


def test_every_preset_names_a_registered_objective_and_the_engine_never_imports_presets():
    from lift3d.objectives import OBJECTIVES

    assert all(get_preset(name).losses.instance_loss in OBJECTIVES for name in PRESETS)
    code = "import sys, lift3d.engine.trainer, lift3d.pipeline; print('lift3d.presets' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
