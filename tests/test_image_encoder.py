"""Image encoders for image-to-video conditioning: the frozen CLIP patch-token wrapper (on a tiny
random CLIP vision model written to a temporary folder) and the small trainable conv encoder."""
import json

import pytest
import torch
import torch.nn.functional as F

from ltx_train.models.image.encoder import (
    CLIP_MEAN,
    CLIP_STD,
    CLIPImageEncoder,
    ConvImageEncoder,
    ImageEncoderConfig,
    ImageEncoderError,
    build_image_encoder,
)

TINY_VISION = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                   image_size=32, patch_size=8)


@pytest.fixture(scope="module")
def clip_dir(tmp_path_factory):
    from transformers import CLIPVisionConfig, CLIPVisionModel

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny_clip_vision")
    CLIPVisionModel(CLIPVisionConfig(**TINY_VISION)).save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def encoder(clip_dir):
    return CLIPImageEncoder(str(clip_dir), layer=-2)


def images(b=2, h=48, w=40, seed=0):
    return torch.rand(b, 3, h, w, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def reference_pixels(x, size=32, mean=CLIP_MEAN, std=CLIP_STD):
    """The preprocessing written out independently of the encoder."""
    x = F.interpolate((x + 1) / 2, size=(size, size), mode="bicubic", antialias=True).clamp(0, 1)
    return (x - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]


def test_clip_returns_the_patch_tokens_of_the_chosen_hidden_state(clip_dir, encoder):
    from transformers import CLIPVisionModel

    x = images()
    tokens, grid = encoder(x)
    assert tokens.shape == (2, 16, 32) and tokens.dtype == torch.float32
    assert grid == (4, 4) and encoder.grid == (4, 4) and encoder.out_dim == 32

    raw = CLIPVisionModel.from_pretrained(str(clip_dir), local_files_only=True).eval()
    with torch.no_grad():
        out = raw(pixel_values=reference_pixels(x), output_hidden_states=True)
    torch.testing.assert_close(tokens, out.hidden_states[-2][:, 1:])
    assert not torch.allclose(tokens, out.hidden_states[-1][:, 1:])          # the layer is honoured
    # a spatial map, not the pooled vector: no token is the pooled output
    assert (tokens - out.pooler_output[:, None]).abs().amax(-1).min() > 1e-3


def test_clip_tokens_are_spatial_in_row_major_order(encoder):
    x = images(b=4, h=32, w=32)
    changed = x.clone()
    changed[..., :16] = -x[..., :16]                                        # the left half only
    before, _ = encoder(x)
    after, (gh, gw) = encoder(changed)
    per_column = (after - before).abs().mean(-1).view(4, gh, gw).mean(dim=(0, 1))   # (gw,)
    assert per_column[:2].min() > per_column[2:].max()


def test_clip_encoder_is_frozen_and_stays_in_eval_mode(encoder):
    encoder.train()
    assert not encoder.model.training
    assert not any(p.requires_grad for p in encoder.parameters())
    tokens, _ = encoder(images(b=1).requires_grad_(True))
    assert not tokens.requires_grad


def test_clip_reads_mean_and_std_from_the_preprocessor_config(clip_dir, tmp_path):
    from transformers import CLIPVisionModel

    CLIPVisionModel.from_pretrained(str(clip_dir), local_files_only=True).save_pretrained(tmp_path)
    mean, std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
    (tmp_path / "preprocessor_config.json").write_text(json.dumps({"image_mean": mean, "image_std": std}))
    enc = CLIPImageEncoder(str(tmp_path))
    x = images(b=1)
    torch.testing.assert_close(enc.preprocess(x), reference_pixels(x, mean=mean, std=std))


def test_clip_loads_the_vision_half_of_a_full_clip_folder(tmp_path):
    from transformers import CLIPConfig, CLIPModel

    torch.manual_seed(0)
    text = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2, vocab_size=64,
                bos_token_id=0, eos_token_id=1, pad_token_id=1)
    full = CLIPModel(CLIPConfig(vision_config=TINY_VISION, text_config=text, projection_dim=16)).eval()
    full.save_pretrained(tmp_path)
    enc = CLIPImageEncoder(str(tmp_path), layer=-1)
    x = images(b=1)
    with torch.no_grad():
        ref = full.vision_model(pixel_values=reference_pixels(x), output_hidden_states=True).hidden_states[-1]
    torch.testing.assert_close(enc(x)[0], ref[:, 1:])


def test_clip_errors_name_the_problem(clip_dir, tmp_path):
    from transformers import BertConfig, BertModel

    bert = tmp_path / "bert"
    BertModel(BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                         vocab_size=64)).save_pretrained(bert)
    with pytest.raises(ImageEncoderError, match=r"model_type 'bert'.*clip"):
        CLIPImageEncoder(str(bert))
    with pytest.raises(ImageEncoderError, match="no such folder"):
        CLIPImageEncoder(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImageEncoderError, match="no config.json"):
        CLIPImageEncoder(str(tmp_path / "empty"))
    with pytest.raises(ImageEncoderError, match="3 hidden states"):
        CLIPImageEncoder(str(clip_dir), layer=-10)
    with pytest.raises(ImageEncoderError, match="needs clip_path"):
        build_image_encoder(ImageEncoderConfig(kind="clip"))
    with pytest.raises(ValueError, match="conv"):
        ImageEncoderConfig(kind="vit")


def test_clip_checkpoint_without_vision_weights_is_refused(clip_dir, tmp_path):
    from safetensors.torch import load_file, save_file

    (tmp_path / "config.json").write_text((clip_dir / "config.json").read_text())
    weights = load_file(clip_dir / "model.safetensors")
    save_file({k: v for k, v in weights.items() if "layers.1." not in k}, tmp_path / "model.safetensors",
              metadata={"format": "pt"})
    with pytest.raises(ImageEncoderError, match="lacks vision weights"):
        CLIPImageEncoder(str(tmp_path))


def test_build_image_encoder_picks_the_kind(clip_dir):
    clip = build_image_encoder(ImageEncoderConfig(kind="clip", clip_path=str(clip_dir), layer=-1))
    assert isinstance(clip, CLIPImageEncoder) and clip.out_dim == 32 and clip.layer == -1
    conv = build_image_encoder(ImageEncoderConfig(width=64, channels=[16, 32], grid=[2, 3]))
    assert isinstance(conv, ConvImageEncoder) and conv.out_dim == 64
    assert conv.cfg.channels == (16, 32) and conv.cfg.grid == (2, 3)
    with pytest.raises(ImageEncoderError, match="after loading"):
        ImageEncoderConfig(kind="clip").out_dim


def test_conv_encoder_shapes():
    enc = ConvImageEncoder()
    assert enc.cfg.out_dim == enc.out_dim == 256
    assert 10_000 < enc.num_params() < 500_000
    tokens, grid = enc(images(b=2, h=64, w=64))
    assert tokens.shape == (2, 64, 256) and grid == (8, 8)
    tokens, grid = enc(images(b=1, h=64, w=48))
    assert tokens.shape == (1, 48, 256) and grid == (8, 6)
    tokens, grid = ConvImageEncoder(grid=(4, 4))(images(b=2, h=64, w=64))
    assert tokens.shape == (2, 16, 256) and grid == (4, 4)
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        enc(torch.zeros(1, 1, 64, 64))


def test_conv_encoder_tokens_are_row_major():
    enc = ConvImageEncoder(channels=(8,), width=4)
    x = torch.randn(1, 3, 4, 6)
    tokens, (gh, gw) = enc(x)
    fmap = enc.out(enc.stages(x))                                          # (1, 4, gh, gw)
    torch.testing.assert_close(tokens[0, 1 * gw + 2], fmap[0, :, 1, 2])


def test_conv_encoder_trains():
    enc = ConvImageEncoder(grid=(4, 4))
    tokens, _ = enc(images(b=2, h=64, w=64))
    tokens.square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in enc.parameters())


def test_conv_encoder_is_deterministic_under_a_seed():
    x = images(b=1, h=64, w=64)
    torch.manual_seed(3)
    a = ConvImageEncoder()
    torch.manual_seed(3)
    b = ConvImageEncoder()
    torch.testing.assert_close(a(x)[0], b(x)[0], rtol=0, atol=0)
