"""The pipeline as a product: a pretrained directory of safetensors + json that loads without pickles,
generates the same clips as the pipeline that wrote it, and names what is wrong with a bad one."""
from __future__ import annotations

import json
import pickle

import numpy as np
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
    # the model run in bf16 (from_pretrained(dtype=...)): the text encoder's float32 states are cast
    # for the connector (a dtype mismatch before session 8, first seen on the GPU)
    clips = generate(LTXVideoPipeline.from_pretrained(half, dtype=torch.bfloat16))
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


def test_batched_generation_gives_the_clips_of_one_call(pipe):
    prompts = ["a red ball falls", "a blue box slides", "a green ball rolls"]
    kw = dict(steps=2, seconds=0.4, height=32, width=32, seed=5)
    whole = pipe(prompts, **kw)
    batched = pipe(prompts, batch_size=2, **kw)      # [2 prompts] + [1 prompt], each prompt its own noise
    assert [c.prompt for c in batched] == prompts
    for a, b in zip(whole, batched):
        assert np.abs(a.frames.astype(int) - b.frames.astype(int)).max() <= 1   # float rounding of batch size
        np.testing.assert_allclose(a.audio, b.audio, atol=1e-4)
    with pytest.raises(ValueError, match="batch_size"):
        pipe(prompts, batch_size=0, **kw)


def test_ltx_generate_reads_a_prompts_file_in_batches(pipe, tmp_path, capsys):
    from ltx_train.config import ConfigError
    from ltx_train.generate import generate as ltx_generate
    from test_lora_training import compose_cfg
    out = pipe.save_pretrained(tmp_path / "p")
    pf = tmp_path / "prompts.txt"
    pf.write_text("# three clips\na red ball falls\n\na blue box slides\na green ball rolls\n")
    args = [f"pretrained={out}", f"prompts_file={pf}", "batch_size=2", "steps=2", "seconds=0.4", "height=32",
            "width=32", "device=cpu"]
    paths = ltx_generate(compose_cfg("generate", tmp_path / "gen", *args, f"out_dir={tmp_path}/gen"))
    records = json.loads((tmp_path / "gen" / "prompts.json").read_text())
    assert len(paths) == 3 and [r["prompt"] for r in records] == ["a red ball falls", "a blue box slides",
                                                                   "a green ball rolls"]
    for run in ("c1", "c2"):   # the second process-like call reads every prompt's states from the disk cache
        ltx_generate(compose_cfg("generate", tmp_path / run, *args, f"encoding_cache={tmp_path}/enc",
                                 f"out_dir={tmp_path}/{run}"))
    printed = capsys.readouterr().out
    # 3 prompts and the negative "" in two batches ("" read back in the second): then everything from disk
    assert "1 hits, 4 misses, 4 entries" in printed and "5 hits, 0 misses, 4 entries" in printed
    q = ltx_generate(compose_cfg("generate", tmp_path / "q", *args, "quantize=int8", f"out_dir={tmp_path}/q"))
    assert len(q) == 3
    with pytest.raises(ConfigError, match="quantize: expected null or one of"):
        ltx_generate(compose_cfg("generate", tmp_path / "g4", *args, "quantize=int4"))
    with pytest.raises(ConfigError, match="prompts_file gives the prompts; do not also give prompt"):
        ltx_generate(compose_cfg("generate", tmp_path / "g2", *args, "prompt=x"))
    with pytest.raises(ConfigError, match="batch_size: expected an integer >= 1"):
        ltx_generate(compose_cfg("generate", tmp_path / "g3", *args[:2], "batch_size=0"))


def test_int8_weights_give_outputs_close_to_float_in_a_quarter_of_the_trunk_memory(pipe, tmp_path):
    from ltx_train.lora import LoraError
    from ltx_train.quantize import QuantizeError, quantize_model, trunk_linears
    from test_dit import randomize_zero_init

    model = tiny_model(seed=1)
    randomize_zero_init(model.dit)                  # open the adaLN-zero gates: the blocks carry the signal
    g = torch.Generator().manual_seed(0)
    video, audio = torch.randn(2, 16, 3, 4, 4, generator=g), torch.randn(2, 8, 10, generator=g)
    hidden = torch.randn(2, 6, 7, 384, generator=g)
    sigma = torch.tensor([0.3, 0.8])
    with torch.no_grad():
        text, mask = model.encode_text(hidden)
        ref = model(video, audio, sigma, text, mask)
        trunk = sum(m.weight.numel() * 4 for n, m in model.named_modules() if n in set(trunk_linears(model)))
        report = quantize_model(model, "int8")
        text_q, mask_q = model.encode_text(hidden)
        out = model(video, audio, sigma, text_q, mask_q)
    assert report["layers"] == len(trunk_linears(model)) > 0
    # int8 data + per-channel scales in place of fp32 trunk weights: the trunk's bytes fall to ~1/4
    assert report["bytes_before"] - report["bytes_after"] > 0.7 * trunk
    for k in ("video", "audio"):
        rel = (out[k] - ref[k]).norm() / ref[k].norm()
        assert 0 < rel < 0.02, (k, float(rel))       # changed (quantized), but within 2%

    out_dir = pipe.save_pretrained(tmp_path / "p")
    q = LTXVideoPipeline.from_pretrained(out_dir, quantize="int8")
    assert q.model.ltx_quantized == "int8" and len(generate(q)) == 2
    with pytest.raises(LoraError, match="the model is quantized"):
        q.load_lora_weights(tmp_path / "none", adapter_name="x")
    with pytest.raises(QuantizeError, match="unknown mode"):
        quantize_model(tiny_model(), "int4")


def test_cpu_offload_gives_the_same_clips_and_runs_each_part_alone_on_the_device(tmp_path):
    """``enable_model_cpu_offload``: every component lives in host memory and is moved to the execution
    device only for its own work. On this CPU-only machine the execution device is the CPU too, so the
    test records the moves: each component's forward must run inside its own window, with no other
    component's window open; the clips equal those of the plain pipeline."""
    from ltx_train.pipeline import LTXVideoPipeline
    path = LTXVideoPipeline(VideoVAE(vae_preset("tiny")), AudioVAE(audio_vae_config("tiny")), tiny_model(),
                            FrozenTextEncoder(max_length=16)).save_pretrained(tmp_path / "p")
    kw = dict(steps=2, seconds=0.4, height=32, width=32, seed=3, image=torch.rand(3, 32, 32) * 2 - 1)
    plain = LTXVideoPipeline.from_pretrained(path)("a red ball falls", **kw)
    pipe = LTXVideoPipeline.from_pretrained(path).enable_model_cpu_offload("cpu")
    resident, runs = set(), []
    for name in pipe.PARTS:
        part = getattr(pipe, name)
        if part is None:
            continue
        move = part.to

        def to(dev, *a, _name=name, _move=move, **k):   # in: the execution device (torch.device); out: "cpu"
            (resident.add if isinstance(dev, torch.device) else resident.discard)(_name)
            return _move(dev, *a, **k)
        part.to = to
        for m in part.modules():   # every layer: the VAEs run through encode() / decode(), not forward()
            m.register_forward_pre_hook(lambda m, args, _name=name: runs.append((_name, set(resident))))
    offloaded = pipe("a red ball falls", **kw)
    assert {n for n, _ in runs} == {"text_encoder", "vae", "audio_vae", "model"}
    assert all(open_ == {n} for n, open_ in runs), runs[:5]
    assert not resident                                  # everything went back to host memory
    np.testing.assert_array_equal(offloaded[0].frames, plain[0].frames)
    np.testing.assert_allclose(offloaded[0].audio, plain[0].audio, atol=1e-6)


def test_a_device_map_places_each_part_and_bad_placements_are_refused(pipe, tmp_path):
    from ltx_train.config import ConfigError
    from ltx_train.generate import generate as ltx_generate
    from test_lora_training import compose_cfg
    kw = dict(steps=2, seconds=0.4, height=32, width=32, seed=3)
    before = pipe("a blue box slides", **kw)
    pipe.place({"model": "cpu", "text_encoder": "cpu", "vae": "cpu", "audio_vae": "cpu"})
    np.testing.assert_array_equal(pipe("a blue box slides", **kw)[0].frames, before[0].frames)
    with pytest.raises(ValueError, match="device_map: unknown component 'unet'"):
        pipe.place({"unet": "cpu"})
    out = pipe.save_pretrained(tmp_path / "p")
    args = [f"pretrained={out}", "prompt=a blue box slides", "steps=2", "seconds=0.4", "height=32", "width=32",
            "device=cpu"]
    for extra in (["offload=true"], ["device_map={model: cpu, vae: cpu}"]):
        paths = ltx_generate(compose_cfg("generate", tmp_path / extra[0][:6], *args, *extra,
                                         f"out_dir={tmp_path}/{extra[0][:6]}"))
        assert len(paths) == 1 and paths[0].stat().st_size > 0
    with pytest.raises(ConfigError, match="at most one of offload=true"):
        ltx_generate(compose_cfg("generate", tmp_path / "both", *args, "offload=true", "device_map={model: cpu}",
                                 f"out_dir={tmp_path}/both"))


def test_int8_without_torchao_is_a_clear_error(pipe, monkeypatch):
    import sys

    from ltx_train.quantize import QuantizeError, quantize_model
    monkeypatch.setitem(sys.modules, "torchao", None)              # as if torchao were not installed
    monkeypatch.setitem(sys.modules, "torchao.quantization", None)
    with pytest.raises(QuantizeError, match="needs torchao.*pip install torchao"):
        quantize_model(tiny_model(), "int8")
