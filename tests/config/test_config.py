from __future__ import annotations

import pytest

from ratt.config import TrainConfig, from_dict, resolve_key
from ratt.errors import UserError
from ratt.runs import build_config
from ratt.train.schedules import lr_multiplier


def test_overrides_accept_dotted_bare_and_section_keys():
    config = build_config(
        overrides=["optim.lr=0.2", "epochs=3", "method=pgd_at", "eps=8/255", "test_attacks=clean,pgd10"]
    )
    assert config.optim.lr == 0.2 and config.optim.epochs == 3
    assert config.method.name == "pgd_at"
    assert config.attack.eps == "8/255"
    assert config.run.test_attacks == ["clean", "pgd10"]


def test_unknown_key_suggests_the_close_one():
    with pytest.raises(UserError, match="did you mean 'epochs'"):
        build_config(overrides=["epocs=3"])


def test_ambiguous_bare_key_is_an_error():
    with pytest.raises(UserError, match="ambiguous"):
        resolve_key("name")


@pytest.mark.parametrize(
    "override,message",
    [
        ("epochs=two", "integer"),
        ("epochs=0", "epochs"),
        ("lr=-1", "lr"),
        ("eps=-0.1", "eps"),
        ("steps=0", "steps"),
        ("batch_size=0", "batch_size"),
        ("model=resnet19", "did you mean"),
        ("method=trade", "did you mean"),
        ("data=cifar", "dataset"),
        ("test_attacks=pgd", "attack"),
    ],
)
def test_bad_values_are_user_errors(override, message):
    with pytest.raises(UserError, match=message):
        build_config(overrides=[override])


def test_yaml_sections_reject_unknown_keys():
    with pytest.raises(UserError, match="optim.lrr"):
        from_dict({"optim": {"lrr": 0.1}})


def test_default_config_round_trips_through_a_dict():
    config = TrainConfig()
    assert from_dict(config.to_dict()) == config


def test_piecewise_schedule_drops_at_the_papers_epochs():
    mult = lr_multiplier("piecewise", 200, 10, [0.5, 0.75], 0.1)
    assert mult(99 * 10 + 9) == 1.0
    assert mult(100 * 10) == pytest.approx(0.1)
    assert mult(150 * 10) == pytest.approx(0.01)


def test_cosine_and_onecycle_start_and_end_where_expected():
    cos = lr_multiplier("cosine", 10, 10, [], 0.1)
    one = lr_multiplier("onecycle", 10, 10, [], 0.1)
    assert cos(0) == 1.0 and cos(100) == pytest.approx(0.0, abs=1e-12)
    assert one(0) == 0.0 and one(40) == pytest.approx(1.0) and one(100) == pytest.approx(0.0)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("lr=inf", "finite"),
        ("beta=nan", "finite"),
        ("step=0", "attack.step must be > 0"),
        ("method=awp+awp+trades", "AWP wraps a base method once"),
        ("test_attacks=", "at least one attack"),
        ("noise=cauchy", "method.noise"),
        ("sigma_target=0.1 method=awp+rat_trades", "no effect under awp"),
    ],
)
def test_values_that_would_fail_late_or_silently_are_refused_up_front(override, message):
    with pytest.raises(ValueError, match=message):  # a UserError is a ValueError
        build_config(overrides=override.split())


@pytest.mark.parametrize("target", ["dir", "/dev/zero", "big"])
def test_config_files_must_be_small_regular_files(tmp_path, target):
    path = {"dir": tmp_path, "/dev/zero": "/dev/zero", "big": tmp_path / "big.yaml"}[target]
    if target == "big":
        path.write_text("# " + "x" * (2 << 20))
    with pytest.raises(UserError, match="not a regular file|larger than 1 MiB"):
        build_config(path)


def test_mapping_fields_take_entries_from_the_command_line():
    from ratt.config import parse_config  # types only: pkg.mod need not exist

    config = parse_config(overrides=["model=pkg.mod:build", "model.kwargs.width=2", "model.kwargs.act=relu"])
    assert config.model.kwargs == {"width": 2, "act": "relu"}
    assert from_dict(config.to_dict()).model.kwargs == {"width": 2, "act": "relu"}
