"""LoRA finetuning end to end on CPU: `ltx-train experiment=lora_style base=<dir>` trains only the
adapter, writes it in peft's format, resumes from a checkpoint without the base, and `ltx-generate
pretrained=<dir> lora=...` uses it."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir

from ltx_train.hydra_utils import CONF_DIR, register_resolvers
from ltx_train.train import train

register_resolvers()
FAST = ["trainer.val_check_interval=2", "trainer.limit_val_batches=1", "trainer.enable_progress_bar=false",
        "trainer.log_every_n_steps=1", "data.batch_size=2", "callbacks.sample_videos.steps=2"]


def compose_cfg(name: str, out: Path, *overrides: str):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(name, overrides=[f"paths.root_dir={out}", f"paths.output_dir={out}", *overrides])


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory) -> Path:
    return tiny_base(tmp_path_factory.mktemp("base") / "pretrained")


def tiny_base(path: Path) -> Path:
    """A tiny pretrained directory (random weights: LoRA mechanics need a base, not a good one)."""
    from ltx_train.models.audio.audio_vae import AudioVAE
    from ltx_train.models.audio.presets import audio_vae_config
    from ltx_train.models.text.encoder import FrozenTextEncoder
    from ltx_train.models.vae import VideoVAE, preset
    from ltx_train.pipeline import LTXVideoPipeline
    from test_pipeline import tiny_model

    torch.manual_seed(0)
    pipe = LTXVideoPipeline(VideoVAE(preset("tiny")), AudioVAE(audio_vae_config("tiny")), tiny_model(),
                            FrozenTextEncoder(max_length=16))
    return pipe.save_pretrained(path)


def test_lora_style_trains_only_the_adapter_and_exports_it(base_dir, synthetic_shards, tmp_path):
    from safetensors.torch import load_file

    from ltx_train.export import export
    from ltx_train.generate import generate
    from ltx_train.lora import read_adapter

    out = tmp_path / "run"
    data = [f"data.train_shards={synthetic_shards}/train-*.tar", f"data.val_shards={synthetic_shards}/val-*.tar"]
    metrics = train(compose_cfg("train", out, "experiment=lora_style", f"base={base_dir}", "trainer.max_steps=4",
                                "model.lora.rank=4", "model.warmup_steps=1", "model.lr=1e-2", *data, *FAST))
    assert metrics["train/loss"] == metrics["train/loss"]
    adapter = out / "adapter"
    assert (adapter / "adapter_model.safetensors").is_file() and (adapter / "adapter_config.json").is_file()
    weights = load_file(str(adapter / "adapter_model.safetensors"))
    assert weights and all("lora_" in k for k in weights)
    assert any(float(v.abs().max()) > 0 for k, v in weights.items() if "lora_B" in k), "the adapter trained"
    read_adapter(adapter)  # a valid adapter directory
    # side by side samples (adapter | base): twice the width
    import av
    sample = sorted((out / "samples").glob("sample_step*_0.mp4"))[-1]
    with av.open(str(sample)) as c:
        assert (c.streams.video[0].width, c.streams.video[0].height) == (128, 64)

    # the checkpoint holds the adapter, not the frozen base
    ckpt = torch.load(out / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["lora"]["base"] == str(base_dir.resolve())
    assert ckpt["state_dict"] and all("lora_" in k or k == "stats_ready" for k in ckpt["state_dict"])

    # resume continues at the saved step with the base reloaded from `base`
    resumed = train(compose_cfg("train", out, "experiment=lora_style", f"base={base_dir}", "trainer.max_steps=6",
                                "model.lora.rank=4", "model.warmup_steps=1", "model.lr=1e-2",
                                f"ckpt_path={out}/checkpoints/last.ckpt", *data, *FAST))
    assert resumed["train/loss"] == resumed["train/loss"]

    # ltx-export of a LoRA checkpoint writes the adapter alone
    exported = export(compose_cfg("export", tmp_path / "exp", f"checkpoint={out}/checkpoints/last.ckpt",
                                  f"out={tmp_path}/exported"))
    assert sorted(p.name for p in exported.iterdir()) == ["adapter_config.json", "adapter_model.safetensors"]

    # ltx-generate uses it through the same mechanism as pipe.load_lora_weights
    gen = generate(compose_cfg("generate", tmp_path / "gen", f"pretrained={base_dir}", f"lora=[{adapter}:0.8]",
                               "steps=2", "prompt=a red ball falls", "height=32", "width=32", "seconds=0.4"))
    assert gen[0].is_file()


def test_export_fuses_adapters_into_a_new_base_that_predicts_like_the_stacked_pipeline(tmp_path):
    """`ltx-export pretrained=<dir> lora=[...] lora_weights=[...]`: the adapters merged into a new base, whose
    model predicts what the base with the same adapters at the same weights predicts."""
    from ltx_train.config import ConfigError
    from ltx_train.export import export
    from ltx_train.models.audio.audio_vae import AudioVAE
    from ltx_train.models.audio.presets import audio_vae_config
    from ltx_train.models.text.encoder import FrozenTextEncoder
    from ltx_train.models.vae import VideoVAE, preset
    from ltx_train.pipeline import LTXVideoPipeline
    from test_lora import run, tiny_model, trained_adapter

    # a base whose output depends on its blocks (a fresh model's zero-initialised gates hide any adapter)
    base_dir = LTXVideoPipeline(VideoVAE(preset("tiny")), AudioVAE(audio_vae_config("tiny")), tiny_model(physics=True),
                                FrozenTextEncoder(max_length=16)).save_pretrained(tmp_path / "base")
    pipe = LTXVideoPipeline.from_pretrained(base_dir)
    style = trained_adapter(pipe.model, tmp_path, "style", seed=1)
    motion = trained_adapter(pipe.model, tmp_path, "motion", seed=2)
    out = export(compose_cfg("export", tmp_path / "job", f"pretrained={base_dir}", f"lora=[{style},{motion}]",
                             "lora_weights=[1.0,0.5]", f"out={tmp_path / 'fused'}"))
    fused = LTXVideoPipeline.from_pretrained(out)

    plain = run(pipe.model)
    pipe.load_lora_weights(style, adapter_name="style")
    pipe.load_lora_weights(motion, adapter_name="motion")
    pipe.set_adapters(["style", "motion"], weights=[1.0, 0.5])
    stacked = run(pipe.model)
    assert (stacked - plain).abs().max() > 1e-2                     # the adapters change the output ...
    torch.testing.assert_close(run(fused.model), stacked, rtol=1e-4, atol=1e-5)   # ... and so does the fused base
    assert not getattr(fused.model, "peft_config", None)           # a plain model: no LoRA layers left

    with pytest.raises(ConfigError, match="exactly one of checkpoint"):
        export(compose_cfg("export", tmp_path / "job", f"out={tmp_path / 'x'}"))
    with pytest.raises(ConfigError, match="one weight per adapter"):
        export(compose_cfg("export", tmp_path / "job", f"pretrained={base_dir}", f"lora=[{style}]",
                           "lora_weights=[1.0,0.5]", f"out={tmp_path / 'x'}"))
