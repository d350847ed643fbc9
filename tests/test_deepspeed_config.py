"""`ltx_train.parallelize.DeepSpeedStrategy`'s configuration, checked on the CPU (skipped without DeepSpeed;
training under it needs CUDA: tests/test_gpu_strategies.py)."""
from __future__ import annotations

import pytest

pytest.importorskip("deepspeed", reason="DeepSpeed is not installed (pip install '.[distributed]')")

from lightning.pytorch.plugins.precision.deepspeed import DeepSpeedPrecision  # noqa: E402

from ltx_train.config import ConfigError  # noqa: E402
from ltx_train.parallelize import DeepSpeedStrategy  # noqa: E402


def formatted(precision: str, **kwargs) -> dict:
    s = DeepSpeedStrategy(**kwargs)
    s._precision_plugin = DeepSpeedPrecision(precision)
    s._format_config()
    return s.config


def test_float32_weights_under_bf16_autocast_and_our_offloaded_optimiser():
    cfg = formatted("32-true", stage=2, offload_optimizer=True)
    assert cfg["torch_autocast"] == {"enabled": True, "dtype": "bfloat16"}
    assert "bf16" not in cfg and cfg["zero_force_ds_cpu_optimizer"] is False
    assert cfg["zero_optimization"]["stage"] == 2
    assert "torch_autocast" not in formatted("32-true", stage=3, autocast=None)


def test_half_precision_weights_with_autocast_are_refused_by_name():
    with pytest.raises(ConfigError, match="trainer.precision=32-true"):
        formatted("bf16-mixed", stage=3)
    with pytest.raises(ConfigError, match="trainer.strategy.autocast must be"):
        DeepSpeedStrategy(stage=2, autocast="int8")
