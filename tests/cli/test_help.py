"""Help texts: every config key with its default under ``ratt train --help``, defaults on
every sub-command's options, no reStructuredText markup."""

from __future__ import annotations

import dataclasses

import pytest

from ratt.cli import COMMANDS, build_parser
from ratt.config import TrainConfig


def _help(command: str) -> str:
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return sub.choices[command].format_help()


def _keys(sections=None) -> list[str]:
    config = TrainConfig()
    return [
        f"{section.name}.{field.name}"
        for section in dataclasses.fields(config)
        if sections is None or section.name in sections
        for field in dataclasses.fields(getattr(config, section.name))
    ]


@pytest.mark.parametrize("command", ["train", "sweep"])
def test_train_and_sweep_help_list_every_config_key_with_its_default(command):
    text = _help(command)
    for key in _keys():
        assert f"{key} = " in text, key
    assert "optim.epochs = 50" in text and "method.alpha = 0.2" in text


def test_eval_help_lists_the_keys_its_settings_can_change():
    """``ratt eval W --model M key=value``: the data, model and attack keys, not training's."""
    text = _help("eval")
    for key in _keys(("data", "model", "attack")):
        assert f"{key} = " in text, key
    assert "optim.epochs = " not in text and "method.alpha = " not in text


@pytest.mark.parametrize("command", COMMANDS)
def test_help_has_no_rst_markup_and_shows_defaults(command):
    text = _help(command)
    assert "``" not in text and ":func:" not in text
    if command in ("landscape", "bench", "sweep"):
        assert "default" in text
    if command == "landscape":
        assert "(default: 2048)" in text  # --n


def test_ratt_config_shows_the_resolved_configuration(capsys):
    from ratt.cli import main

    assert main(["config", "--show", "method=rat_trades", "epochs=3"]) == 0
    out = capsys.readouterr().out
    assert "name: rat_trades" in out and "epochs: 3" in out
