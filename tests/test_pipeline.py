"""The pipeline as a product: a pretrained directory of safetensors + json that loads without pickles,
generates the same clips as the pipeline that wrote it, and names what is wrong with a bad one."""
from __future__ import annotations

import json
import pickle

import pytest
import torch

from ltx_train.models.audio.audio_vae import AudioVAE
from ltx_train.models.audio.presets import audio_vae_config, vocoder_config
from ltx_train.models.audio.vocoder import HiFiGAN
from ltx_train.models.dit.physics_heads import PhysicsHeadsConfig
from ltx_train.models.dit.presets import preset as dit_preset
from ltx_train.models.ltx import LTXModel, LTXModelConfig
from ltx_train.models.text.connector import connector_preset
from ltx_train.models.text.encoder import FrozenTextEncoder
from ltx_train.models.vae import VideoVAE
from ltx_train.models.vae import preset as vae_preset
from ltx_train.pipeline import LTXVideoPipeline
from ltx_train.pretrained import PretrainedError, component_from_checkpoint, load_component, safe_load_checkpoint


def tiny_model(seed: int = 0) -> LTXModel:
    torch.manual_seed(seed)
    cfg = LTXModelConfig(dit=dit_preset("tiny", patch_size=(1, 2, 2), text_dim=64),
                         connector=connector_preset("baseline", width=64, registers=4, layers=1, in_dim=384, in_layers=7),
                         physics=PhysicsHeadsConfig(width=128, hidden=32))
    model = LTXModel(cfg)
    with torch.no_grad():  # adaLN-zero starts as the identity: give the output layers weights so outputs differ
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
    model.set_latent_stats(torch.stack([torch.randn(16) * 0.1, torch.rand(16) + 0.5]),
                           torch.stack([torch.randn(8) * 0.1, torch.rand(8) + 0.5]))
    return model


@pytest.fixture(scope="module")
def pipe() -> LTXVideoPipeline:
    torch.manual_seed(0)
    return LTXVideoPipeline(VideoVAE(vae_preset("tiny")), AudioVAE(audio_vae_config("tiny")), tiny_model(),
                            FrozenTextEncoder(max_length=16), HiFiGAN(vocoder_config("tiny")))


def generate(p: LTXVideoPipeline, **kw):
    return p(["a red ball falls", "a blue box slides"], steps=2, seconds=0.4, height=32, width=32, seed=3, **kw)


def test_save_pretrained_then_from_pretrained_generates_the_same_clips(pipe, tmp_path):
    out = pipe.save_pretrained(tmp_path / "p")
    index = json.loads((out / "model_index.json").read_text())
    assert index["_class_name"] == "LTXVideoPipeline" and index["model"] == ["ltx_train", "LTXModel"]
    for part in ("vae", "audio_vae", "vocoder", "model"):
        assert (out / part / "config.json").is_file() and (out / part / "model.safetensors").is_file()
    assert not list(out.rglob("*.ckpt")) and not list(out.rglob("*.bin")), "no pickles in a pretrained dir"
    loaded = LTXVideoPipeline.from_pretrained(out)
    for a, b in zip(generate(pipe), generate(loaded)):
        assert (a.frames == b.frames).all() and (a.audio == b.audio).all()


def test_text_encoder_can_be_copied_into_the_directory(pipe, tmp_path):
    out = pipe.save_pretrained(tmp_path / "p", copy_text_encoder=True)
    assert (out / "text_encoder" / "model.safetensors").is_file()
    loaded = LTXVideoPipeline.from_pretrained(out)
    assert loaded.text_encoder.path == str(out / "text_encoder")
    assert (generate(pipe)[0].frames == generate(loaded)[0].frames).all()


def test_bf16_model_halves_its_file_and_still_generates(pipe, tmp_path):
    full = pipe.save_pretrained(tmp_path / "fp32")
    half = pipe.save_pretrained(tmp_path / "bf16", dtype=torch.bfloat16)
    s32, s16 = ((d / "model" / "model.safetensors").stat().st_size for d in (full, half))
    assert s16 < 0.55 * s32
    clips = generate(LTXVideoPipeline.from_pretrained(half))
    assert clips[0].frames.shape == (9, 32, 32, 3)


def test_a_missing_or_mismatched_component_fails_naming_the_file_and_key(pipe, tmp_path):
    out = pipe.save_pretrained(tmp_path / "p")
    (out / "vocoder" / "model.safetensors").unlink()
    with pytest.raises(PretrainedError, match=r"vocoder/model\.safetensors"):
        LTXVideoPipeline.from_pretrained(out)

    out = pipe.save_pretrained(tmp_path / "q")
    cfg = json.loads((out / "model" / "config.json").read_text())
    cfg["dit"]["width"] = 96  # another architecture than the weights
    cfg["physics"]["width"] = 96
    (out / "model" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(PretrainedError, match=r"model/model\.safetensors: key 'dit\.\S+' has shape"):
        LTXVideoPipeline.from_pretrained(out)

    (out / "model_index.json").unlink()
    with pytest.raises(PretrainedError, match="model_index.json"):
        LTXVideoPipeline.from_pretrained(out)
    with pytest.raises(PretrainedError, match="holds a VideoVAE, expected a LTXModel"):
        load_component(out / "vae", expect="LTXModel")


def test_impossible_generation_settings_are_refused(pipe):
    for kw, key in (({"steps": 0}, "steps"), ({"seconds": 0}, "seconds"), ({"height": -8}, "height"),
                    ({"width": 30}, "width"), ({"sampler": "ddim"}, "sampler")):
        with pytest.raises(ValueError, match=key):
            pipe(["x"], **kw)


class _Planted:
    def __reduce__(self):
        import os
        return (os.system, ("touch /tmp/ltx_planted_pickle_ran",))


def test_a_crafted_pickle_checkpoint_is_refused_without_running_code(tmp_path):
    import os
    marker = "/tmp/ltx_planted_pickle_ran"
    if os.path.exists(marker):
        os.remove(marker)
    bad = tmp_path / "bad.ckpt"
    with open(bad, "wb") as f:
        pickle.dump({"state_dict": {}, "components": {}, "x": _Planted()}, f, protocol=2)
    with pytest.raises(PretrainedError, match="bad.ckpt"):
        safe_load_checkpoint(bad)
    with pytest.raises(PretrainedError, match="bad.ckpt"):
        component_from_checkpoint(bad, "vae")
    assert not os.path.exists(marker)


def test_a_model_without_physics_heads_round_trips(tmp_path):
    cfg = tiny_model().cfg
    model = LTXModel(LTXModelConfig(dit=cfg.dit, connector=cfg.connector, physics=None))
    model.save_pretrained(tmp_path / "m")
    loaded = LTXModel.from_pretrained(tmp_path / "m")
    assert loaded.physics is None and loaded.cfg == model.cfg


def test_griffin_lim_audio_is_reproducible_for_a_seed(pipe):
    p = LTXVideoPipeline(pipe.vae, pipe.audio_vae, pipe.model, pipe.text_encoder, None)
    a, b = (p(["a ball"], steps=1, seconds=0.4, height=32, width=32, seed=5)[0].audio for _ in range(2))
    assert (a == b).all()


def test_a_checkpoint_of_the_wrong_model_is_named_as_such(tmp_path):
    import lightning as L

    from ltx_train.export import pipeline_from_checkpoints
    from ltx_train.modules.vae_module import VAEModule

    module = VAEModule({"preset": "tiny"})
    ckpt = {"state_dict": module.state_dict(), "hyper_parameters": dict(module.hparams),
            "pytorch-lightning_version": L.__version__}
    module.on_save_checkpoint(ckpt)
    torch.save(ckpt, tmp_path / "vae.ckpt")
    with pytest.raises(PretrainedError, match=r"vae\.ckpt: holds vae, not a 'model' component"):
        pipeline_from_checkpoints(tmp_path / "vae.ckpt")
