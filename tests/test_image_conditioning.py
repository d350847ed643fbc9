"""Image-to-video with spatial image features: the first frame's feature tokens join the DiT's joint
sequence (own projection, modality embedding and RoPE positions on frame 0), null tokens stand for
"no image" (training dropout, text-to-video, image guidance), and the model, the objective, the
pipeline, the latent cache and training carry them end to end."""
from __future__ import annotations

import json
import shutil

import pytest
import torch

from ltx_train.data.latent_cache import LatentCacheError
from ltx_train.models.dit.dit import JointDiT, JointDiTConfig
from ltx_train.models.dit.presets import preset as dit_preset
from ltx_train.models.dit.rope import rope_cos_sin
from ltx_train.models.image.encoder import ImageEncoderConfig
from ltx_train.models.ltx import LTXModel, LTXModelConfig
from ltx_train.models.text.connector import connector_preset
from ltx_train.objectives.joint import JointLossConfig, joint_losses

IMAGE = ImageEncoderConfig(kind="conv", width=32, channels=(8, 8, 8))


def image_model(seed: int = 0, image: ImageEncoderConfig | None = IMAGE) -> LTXModel:
    torch.manual_seed(seed)
    cfg = LTXModelConfig(dit=dit_preset("tiny", text_dim=64),
                         connector=connector_preset("baseline", width=64, registers=4, layers=1, in_dim=384,
                                                    in_layers=7), image=image)
    model = LTXModel(cfg)
    with torch.no_grad():  # adaLN-zero starts as the identity: give every layer weights so outputs differ
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model


def inputs(b=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return dict(video=torch.randn(b, 16, 2, 8, 8, generator=g), audio=torch.randn(b, 8, 6, generator=g),
                sigma=torch.full((b,), 0.7), text=torch.randn(b, 5, 64, generator=g))


def frames(b=2, seed=1):
    return torch.rand(b, 3, 64, 64, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_image_tokens_sit_on_the_first_frame_grid():
    dit = JointDiT(JointDiTConfig(image_dim=8, width=64, heads=2))
    pos = dit.positions(3, (2, 4, 4), 5, 24.0, 1, image_grid=(4, 4))
    assert pos.shape == (1, 3 + 16 + 32 + 5, 3)
    img, video = pos[0, 3:19], pos[0, 19:51]
    # the same grid as the video: each image token has the position (so the rotation) of its frame-0 token
    assert torch.equal(img, video[:16])
    cos, sin = rope_cos_sin(pos, dit.axes_dim)
    assert torch.equal(cos[0, 0, 3:19], cos[0, 0, 19:35]) and torch.equal(sin[0, 0, 3:19], sin[0, 0, 19:35])
    # a coarser grid: cell centres in video-token units, all at frame 0's time
    coarse = dit.positions(3, (2, 4, 4), 5, 24.0, 1, image_grid=(2, 2))[0, 3:7]
    assert coarse[:, 0].eq(video[0, 0]).all()
    assert coarse[:, 1:].tolist() == [[0.5, 0.5], [0.5, 2.5], [2.5, 0.5], [2.5, 2.5]]


def test_the_model_reads_the_image_and_null_tokens_mean_no_image():
    model = image_model().eval()
    x = inputs()
    with torch.no_grad():
        real = model(**x, image=model.image_tokens(frames()))
        other = model(**x, image=model.image_tokens(frames(seed=5)))
        null = model(**x, image=model.image_tokens(None, batch=2, size=(64, 64)))
        kept = model(**x, image=model.image_tokens(frames(), torch.tensor([True, False])))
    assert not torch.allclose(real["video"], other["video"]), "the image tokens change the prediction"
    torch.testing.assert_close(kept["video"][0], real["video"][0])   # keep=True: the image's own tokens
    torch.testing.assert_close(kept["video"][1], null["video"][1])   # keep=False: the null tokens
    assert model.image_grid(64, 64) == (8, 8) and model.image_tokens(frames())[1] == (8, 8)
    with pytest.raises(ValueError, match="pass image=model.image_tokens"):
        model(**x)
    plain = image_model(image=None)
    assert plain.image_tokens(frames()) is None
    with pytest.raises(ValueError, match="no image encoder"):
        plain(**x, image=model.image_tokens(frames()))


def test_image_configuration_errors_name_the_setting():
    with pytest.raises(ValueError, match="dit.image_dim=16 must equal the image encoder's width 32"):
        LTXModelConfig(dit=dit_preset("tiny", text_dim=256, image_dim=16), image=IMAGE)
    with pytest.raises(ValueError, match="needs an image encoder"):
        LTXModelConfig(dit=dit_preset("tiny", text_dim=256, image_dim=16))
    cfg = LTXModelConfig(dit=dit_preset("tiny", text_dim=256), image=IMAGE)
    assert cfg.dit.image_dim == 32
    again = LTXModelConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again.image == IMAGE and again.dit.image_dim == 32


def test_the_objective_gives_image_tokens_to_first_frame_clips_only_and_trains_the_encoder():
    model = image_model()
    seen = {}
    original = model.image_tokens

    def spy(images, keep=None, **kw):
        seen["keep"] = keep.clone()
        return original(images, keep, **kw)
    model.image_tokens = spy
    b = 8
    batch = {"fps": torch.full((b,), 24.0), "audio_mask": torch.ones(b, dtype=torch.bool),
             "video": torch.rand(b, 3, 9, 64, 64) * 2 - 1}
    z_v, z_a = torch.randn(b, 16, 2, 8, 8), torch.randn(b, 8, 6)
    cfg = JointLossConfig(first_frame_prob=0.5, image_dropout=0.0, physics=False)
    losses = joint_losses(model, z_v, z_a, torch.randn(b, 5, 64), None, batch, cfg, torch.Generator().manual_seed(0))
    losses["loss"].backward()
    keep = seen["keep"]
    assert 0 < keep.sum() < b, "some clips are image-conditioned, some not"
    grads = [p.grad for p in model.image_encoder.parameters()]
    assert all(g is not None for g in grads) and sum(g.abs().sum() for g in grads) > 0
    # the same draw with every conditioned clip's image dropped: only null tokens
    cfg_drop = JointLossConfig(first_frame_prob=0.5, image_dropout=1.0, physics=False)
    joint_losses(model, z_v, z_a, torch.randn(b, 5, 64), None, batch, cfg_drop, torch.Generator().manual_seed(0))
    assert not seen["keep"].any()
    with pytest.raises(ValueError, match="no first frames"):
        joint_losses(model, z_v, z_a, torch.randn(b, 5, 64), None, {k: v for k, v in batch.items() if k != "video"},
                     cfg, torch.Generator().manual_seed(0))


def test_a_clip_image_encoder_sets_the_token_width_and_stays_frozen(tmp_path):
    from transformers import CLIPVisionConfig, CLIPVisionModel
    torch.manual_seed(0)
    CLIPVisionModel(CLIPVisionConfig(hidden_size=24, intermediate_size=48, num_hidden_layers=2,
                                     num_attention_heads=2, image_size=32, patch_size=8)).save_pretrained(tmp_path / "clip")
    model = image_model(image=ImageEncoderConfig(kind="clip", clip_path=str(tmp_path / "clip")))
    assert model.cfg.dit.image_dim == 24 and model.dit.image_in.in_features == 24
    assert model.image_grid(64, 48) == (4, 4)
    assert not any(p.requires_grad for p in model.image_encoder.parameters())
    tokens, grid = model.image_tokens(frames())
    assert tokens.shape == (2, 16, 24) and grid == (4, 4)
    model.save_pretrained(tmp_path / "model")
    loaded = LTXModel.from_pretrained(tmp_path / "model")
    with torch.no_grad():
        a = model.eval()(**inputs(), image=model.image_tokens(frames()))
        b = loaded.eval()(**inputs(), image=loaded.image_tokens(frames()))
    torch.testing.assert_close(a["video"], b["video"])


@pytest.fixture(scope="module")
def image_pipe(tiny_base_dir):
    from ltx_train.pipeline import LTXVideoPipeline
    pipe = LTXVideoPipeline.from_pretrained(tiny_base_dir)
    base = pipe.model
    cfg = LTXModelConfig.from_dict({**base.cfg.to_dict(), "image": {"kind": "conv", "width": 32,
                                                                    "channels": [8, 8, 8]}})
    model = LTXModel(cfg)
    missing, _ = model.load_state_dict(base.state_dict(), strict=False)
    assert all(k.startswith(("image_", "dit.image_")) for k in missing)
    with torch.no_grad():  # untrained image parts: give them weight so the image matters
        for name, p in model.named_parameters():
            if "image" in name:
                p.add_(0.5 * torch.randn_like(p))
    pipe.model = model.eval()
    return pipe


def test_the_pipeline_conditions_on_image_features_and_guides_on_them(image_pipe, tmp_path):
    from ltx_train.pipeline import LTXVideoPipeline
    pipe = image_pipe
    img = frames(1)[0]
    kw = dict(steps=2, seconds=0.4, height=64, width=64, seed=0)
    t2v = pipe(["a red ball falls"], **kw)[0]                       # text-to-video: null tokens
    i2v = pipe(["a red ball falls"], image=img, **kw)[0]
    calls = []
    dit_forward = pipe.model.dit.forward
    pipe.model.dit.forward = lambda *a, **k: calls.append(1) or dit_forward(*a, **k)
    guided = pipe(["a red ball falls"], image=img, image_guidance_scale=2.0, **kw)[0]
    pipe.model.dit.forward = dit_forward
    assert len(calls) == 2 * 3, "text and image guidance: three model calls a step"
    assert not (t2v.frames == i2v.frames).all() and not (guided.frames == i2v.frames).all()
    # the features go into the encoding cache with the prompts and latents, and come back equal
    cache = pipe.enable_encoding_cache(tmp_path / "enc")
    first = pipe.image_features(img[None])
    again = pipe.image_features(img[None])
    assert torch.equal(first[0], again[0]) and first[1] == again[1] == (8, 8)
    assert cache.stats()["hits"] == 1 and cache.stats()["misses"] == 1
    pipe.encoding_cache = None
    # and the model round-trips through a pretrained directory with its image encoder
    out = pipe.save_pretrained(tmp_path / "p")
    loaded = LTXVideoPipeline.from_pretrained(out)
    assert loaded.model.image_encoder is not None
    assert (loaded(["a red ball falls"], image=img, **kw)[0].frames == i2v.frames).all()
    with pytest.raises(ValueError, match="image_guidance_scale must be a number >= 0"):
        pipe(["a red ball falls"], image=img, image_guidance_scale=-1.0, **kw)


def test_the_latent_cache_stores_first_frames_and_an_old_cache_is_refused(latent_cache, tiny_base_dir, tmp_path):
    from ltx_train.data.latents import LatentStream
    from ltx_train.modules.dit_module import DiTModule

    stream = LatentStream(latent_cache, "val", 2, role="val", train=False, seed=0)
    stream.worker_init()
    sample = stream.load(0)
    assert sample["first_frame"].shape == (3, 64, 64)
    assert -1 <= sample["first_frame"].min() and sample["first_frame"].max() <= 1
    image = {"kind": "conv", "width": 32, "channels": [8, 8, 8]}
    module = DiTModule(latents=str(latent_cache), dit={"preset": "tiny"}, image=image)
    assert module.model.image_encoder is not None
    old = tmp_path / "old"
    shutil.copytree(latent_cache, old)
    manifest = json.loads((old / "manifest.json").read_text())
    del manifest["first_frames"]
    (old / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(LatentCacheError, match="holds no first frames"):
        DiTModule(latents=str(old), dit={"preset": "tiny"}, image=image)


def test_dit_training_with_image_features_runs_exports_and_generates(latent_cache, tmp_path):
    from ltx_train.export import export
    from ltx_train.pipeline import LTXVideoPipeline
    from ltx_train.train import train
    from test_latent_cache import FAST
    from test_lora_training import compose_cfg

    out = tmp_path / "dit"
    metrics = train(compose_cfg("train", out, "experiment=dit_tiny", "data=latents", f"data.path={latent_cache}",
                                "trainer.max_steps=2", "model.first_frame_prob=0.5",
                                "+model.image={kind: conv, width: 32, channels: [8, 8, 8]}", *FAST))
    assert metrics["train/loss"] == metrics["train/loss"]
    exported = export(compose_cfg("export", tmp_path / "exp", f"checkpoint={out}/checkpoints/last.ckpt",
                                  f"out={tmp_path}/pretrained"))
    pipe = LTXVideoPipeline.from_pretrained(exported)
    assert pipe.model.image_encoder is not None and pipe.model.cfg.image.width == 32
    clip = pipe(["a red ball falls"], image=frames(1)[0], image_guidance_scale=1.5, steps=2, seconds=0.4,
                height=64, width=64, seed=0)[0]
    assert clip.frames.shape[1:] == (64, 64, 3)
