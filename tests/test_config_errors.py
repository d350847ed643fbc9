"""Bad configs fail before anything is built, naming the full key: constructor arguments are checked
against their annotations, and what the README promises is what happens."""
from __future__ import annotations

import re
import typing
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from ltx_train.config import ConfigError, check_arguments
from ltx_train.hydra_utils import CONF_DIR, register_resolvers
from ltx_train.train import train

register_resolvers()
README = Path(__file__).resolve().parent.parent / "README.md"


def compose_train(out: Path, *overrides: str):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose("train", overrides=[f"paths.root_dir={out}", f"paths.output_dir={out}", *overrides])


def readme_examples() -> list[tuple[str, str]]:
    """(command line, message) pairs the README shows as `ltx-train ...` stops with `...`."""
    text = " ".join(README.read_text().split())  # a code span may wrap across lines
    return re.findall(r"`ltx-train ([^`]+)` stops with `([^`]+)`", text)


def test_readme_shows_the_type_errors():
    assert len(readme_examples()) >= 2


@pytest.mark.parametrize("args,message", readme_examples())
def test_readme_config_errors_are_what_happens(synthetic_shards, tmp_path, args, message):
    cfg = compose_train(tmp_path, *args.split(), f"data.train_shards={synthetic_shards}/train-*.tar",
                        f"data.val_shards={synthetic_shards}/val-*.tar")
    with pytest.raises(ConfigError) as err:
        train(cfg)
    assert str(err.value) == message
    assert not (tmp_path / "checkpoints").exists() and not (tmp_path / "csv").exists()  # no trainer ran


@pytest.mark.parametrize("override,message", [
    ("model.lr=abc", "model.lr: expected a number, got str 'abc'"),
    ("data.batch_size=2.5", "data.batch_size: expected an integer, got float 2.5"),
    ("data.max_bad_fraction=lots", "data.max_bad_fraction: expected a number, got str 'lots'"),
    ("trainer.max_steps=many", "model.total_steps: expected an integer, got str 'many' "
                               "(model.total_steps is an interpolation: override trainer.max_steps instead)"),
    ("trainer.precision=bf17", "trainer.precision: expected one of"),
    ("+model.lrr=1", "model.lrr: unknown key for VAEModule (valid keys: vae, lr,"),
    ("callbacks.model_checkpoint.keep_last=one", "callbacks.model_checkpoint.keep_last: expected an integer"),
])
def test_bad_values_anywhere_are_named_before_building(tmp_path, override, message):
    # shards that do not exist: the data would fail if it were built, so the error proves nothing was
    cfg = compose_train(tmp_path, "experiment=vae_tiny", override, "data.train_shards=/nowhere/t-*.tar")
    with pytest.raises(ConfigError) as err:
        train(cfg)
    assert str(err.value).startswith(message)


def test_check_arguments_follows_the_signature():
    def target(n: int, rate: float = 1.0, mode: typing.Literal["a", "b"] = "a", pair: tuple[int, int] | None = None,
               name: "str | None" = None):
        return n

    check_arguments(target, {"n": 3, "rate": 2, "mode": "b", "pair": [1, 2], "name": None, "_target_": "x"}, "cfg")
    for values, message in [({"n": True}, "cfg.n: expected an integer, got bool True"),
                            ({"mode": "c"}, "cfg.mode: expected one of 'a', 'b', got str 'c'"),
                            ({"pair": [1]}, "cfg.pair: expected 2 items, got 1"),
                            ({"other": 1}, "cfg.other: unknown key for")]:
        with pytest.raises(ConfigError, match=re.escape(message)):
            check_arguments(target, values, "cfg")
    check_arguments(lambda **kw: kw, {"anything": object()}, "cfg")  # **kwargs takes any key
