"""Video VAE: causality, the 1 + tc*k layout, preset shapes, tiling, timestep conditioning, recon eval."""
from __future__ import annotations

import json
import math
import struct
import zlib
from pathlib import Path

import pytest
import torch

from ltx_train.eval.recon import evaluate_reconstruction
from ltx_train.eval.video_io import to_uint8_frames, write_png
from ltx_train.models.vae import (PRESETS, TileConfig, VideoVAE, VideoVAEConfig, crop_to_valid, preset,
                                  valid_num_frames)
from ltx_train.models.vae.discriminator import PatchDiscriminator3d, hinge_d_loss, hinge_g_loss
from ltx_train.modules.optim import build_optimizer, warmup_cosine, warmup_cosine_factor


def micro(**kw) -> VideoVAEConfig:
    """A few-thousand-parameter VAE with the real layout, for tests of layout and bookkeeping."""
    base = dict(latent_channels=4, spatial_compression=4, temporal_compression=4, base_channels=8,
                channel_mults=(1, 2, 2), blocks_per_level=1)
    return VideoVAEConfig(**{**base, **kw})


def moving_ball_clip(frames: int = 9, size: int = 32, seed: int = 0) -> torch.Tensor:
    """(3, T, H, W) in [-1, 1]: a shaded ball sliding over a colour gradient — smooth, structured."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(0, 1, size), torch.linspace(0, 1, size), indexing="ij")
    colour = torch.rand(3, generator=g) * 1.6 - 0.8
    out = []
    for t in range(frames):
        cx, cy = 0.2 + 0.6 * t / max(frames - 1, 1), 0.3 + 0.3 * math.sin(t / 3)
        d2 = (xx - cx) ** 2 + (yy - cy) ** 2
        ball = torch.exp(-d2 / 0.01)
        bg = torch.stack([xx - 0.5, yy - 0.5, 0.3 * (xx + yy) - 0.3])
        out.append(bg * (1 - ball) + colour[:, None, None] * ball)
    return torch.stack(out, 1).clamp(-1, 1)


@pytest.mark.parametrize("tc,norm", [(1, "group"), (2, "group"), (4, "group"), (8, "group"), (8, "pixel")])
def test_causal_encoder_latents_of_frames_up_to_t_ignore_later_frames(norm, tc):
    torch.manual_seed(0)
    vae = VideoVAE(micro(temporal_compression=tc, norm=norm, channel_mults=(1, 2, 2, 2))).eval()
    k = 3
    x = torch.randn(1, 3, 1 + tc * k, 8, 8)
    with torch.no_grad():
        ref = vae.encode_params(x)
        for j in range(k):
            y = x.clone()
            y[:, :, 1 + tc * j:] = torch.randn_like(y[:, :, 1 + tc * j:])  # every frame after latent j
            out = vae.encode_params(y)
            assert torch.allclose(out[:, :, :j + 1], ref[:, :, :j + 1], atol=1e-6, rtol=0)
            assert not torch.allclose(out[:, :, j + 1], ref[:, :, j + 1], atol=1e-3)  # the future did change


def test_an_image_is_a_one_frame_video_one_latent_back_to_one_frame():
    torch.manual_seed(0)
    vae = VideoVAE(preset("tiny")).eval()
    clip = torch.randn(2, 3, 9, 32, 32)
    with torch.no_grad():
        post = vae.encode(clip[:, :, :1])
        assert post.mean.shape == (2, 16, 1, 4, 4)
        assert vae.decode(post.mode()).shape == (2, 3, 1, 32, 32)
        # the first latent of a clip is exactly the latent of its first frame alone
        assert torch.allclose(vae.encode(clip).mean[:, :, :1], post.mean, atol=1e-6)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_maps_1_plus_tc_k_frames_to_1_plus_k_latents_and_back(name):
    cfg = preset(name)
    sc, tc, c = cfg.spatial_compression, cfg.temporal_compression, cfg.latent_channels
    expected = {"tiny": (8, 4, 16), "small": (16, 8, 64), "mid": (16, 8, 64), "ltx": (32, 8, 128)}[name]
    assert (sc, tc, c) == expected
    size = 64
    x = torch.randn(1, 3, 1 + tc, size, size)
    if name in ("mid", "ltx"):  # hundreds of MB of weights: check the shape contract on the meta device
        with torch.device("meta"):
            vae = VideoVAE(cfg)
            z = vae.encode(x.to("meta")).sample()
            recon = vae.decode(z, timestep=0.05)
    else:
        torch.manual_seed(0)
        vae = VideoVAE(cfg).eval()
        with torch.no_grad():
            z = vae.encode(x).sample()
            recon = vae.decode(z)
        assert torch.isfinite(recon).all()
    assert z.shape == (1, c, 2, size // sc, size // sc)
    assert recon.shape == x.shape


def test_ltx_preset_runs_for_real_on_a_1_plus_8_frame_64px_clip():
    torch.manual_seed(0)
    vae = VideoVAE(preset("ltx")).eval()
    with torch.no_grad():
        z = vae.encode(torch.randn(1, 3, 9, 64, 64)).mode()
        recon = vae.decode(z, timestep=0.05)
    assert z.shape == (1, 128, 2, 2, 2) and recon.shape == (1, 3, 9, 64, 64)
    assert torch.isfinite(recon).all()


@pytest.mark.parametrize("tc", [1, 2, 4, 8])
def test_decoder_reconstructs_exactly_1_plus_tc_k_frames(tc):
    vae = VideoVAE(micro(temporal_compression=tc, channel_mults=(1, 2, 2, 2))).eval()
    with torch.no_grad():
        for k in (0, 1, 3):
            assert vae.decode(torch.randn(1, 4, 1 + k, 2, 2)).shape == (1, 3, 1 + tc * k, 8, 8)


@pytest.mark.parametrize("cin,cout,st,ss", [(64, 32, 2, 2), (32, 24, 2, 2), (16, 16, 1, 2), (48, 20, 1, 2)])
def test_upsample_is_conv_plus_shortcut_through_depth_to_space(cin, cout, st, ss):
    """The definition the fused forward must keep, to the bit: depth-to-space of the conv plus
    depth-to-space of the shortcut (each input channel repeated, or a 1x1 projection when the channels
    do not divide), without the st - 1 leading frames. Gradients flow to the input and to every weight."""
    from einops import rearrange

    from ltx_train.models.vae.blocks import Upsample
    torch.manual_seed(0)
    up = Upsample(cin, cout, st, ss)
    x = torch.randn(2, cin, 3, 4, 5, requires_grad=True)
    r = st * ss * ss
    d2s = lambda y: rearrange(y, "b (c pt ph pw) t h w -> b c (t pt) (h ph) (w pw)", pt=st, ph=ss, pw=ss)  # noqa: E731
    s = up.proj(x) if up.proj is not None else x.repeat_interleave(cout * r // cin, dim=1)
    assert (up.proj is None) == ((cout * r) % cin == 0)
    want = (d2s(up.conv(x)) + d2s(s))[:, :, st - 1:]
    got = up(x)
    assert torch.equal(got, want)
    got.square().sum().backward()
    assert x.grad is not None and all(p.grad is not None for p in up.parameters())


@pytest.mark.parametrize("kernel", [(1, 2, 2), (2, 4, 4), (4, 2, 8)])
def test_the_patch_shortcut_as_one_matmul_equals_the_strided_conv_and_its_transpose(kernel):
    """``block_linear``/``block_linear_transpose`` replace a Conv3d/ConvTranspose3d whose stride is its
    kernel; same weights, same result (fp32 rounding), and gradients reach input and weights."""
    from torch import nn

    from ltx_train.models.vae.blocks import block_linear, block_linear_transpose
    torch.manual_seed(0)
    kt, kh, kw = kernel
    enc, dec = nn.Conv3d(3, 16, kernel, stride=kernel), nn.ConvTranspose3d(16, 3, kernel, stride=kernel)
    x = torch.randn(2, 3, 2 * kt, 3 * kh, 2 * kw, requires_grad=True)
    y = block_linear(x, enc)
    torch.testing.assert_close(y, enc(x), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(block_linear_transpose(y, dec), dec(y), atol=1e-5, rtol=1e-5)
    block_linear_transpose(y, dec).square().sum().backward()
    assert x.grad is not None and enc.weight.grad is not None and dec.weight.grad is not None


@pytest.mark.parametrize("norm", ["pixel", "group"])
def test_norm_with_folded_modulation_equals_norm_then_scale_and_shift(norm):
    """The adaLN modulation folded into the norm's gain is ``norm(x) * (1 + scale) + shift``."""
    from ltx_train.models.vae.blocks import make_norm
    torch.manual_seed(0)
    n = make_norm(norm, 32)
    with torch.no_grad():
        n.weight.uniform_(0.5, 1.5)
    x, shift, scale = torch.randn(2, 32, 3, 4, 5), torch.randn(2, 32), torch.randn(2, 32)
    want = n(x) * (1 + scale[:, :, None, None, None]) + shift[:, :, None, None, None]
    torch.testing.assert_close(n(x, shift, scale), want, atol=1e-5, rtol=1e-5)
    if norm == "pixel":   # the statistic itself: RMS over channels
        ref = x * torch.rsqrt(x.pow(2).mean(1, keepdim=True) + n.eps) * n.weight.view(1, -1, 1, 1, 1)
        torch.testing.assert_close(n(x), ref, atol=1e-5, rtol=1e-5)


def test_invalid_inputs_and_configs_are_refused_with_a_reason():
    vae = VideoVAE(micro())
    with pytest.raises(ValueError, match="1 \\+ 4\\*k"):
        vae.encode(torch.randn(1, 3, 6, 16, 16))
    with pytest.raises(ValueError, match="power of 2"):
        VideoVAEConfig(spatial_compression=12)
    with pytest.raises(ValueError, match="stages"):
        VideoVAEConfig(temporal_compression=8, channel_mults=(1, 2))


def test_crop_keeps_the_first_1_plus_tc_k_frames_and_centres_space():
    x = torch.arange(26.0)[None, None, :, None, None].expand(1, 3, 26, 70, 66)
    y = crop_to_valid(x, 8, 4)
    assert y.shape == (1, 3, 25, 64, 64) and y[0, 0, :, 0, 0].tolist() == list(range(25))
    assert valid_num_frames(24, 8) == 17 and valid_num_frames(1, 8) == 1


def _rf_limited_vae() -> VideoVAE:
    """Pixel norm (local) and no residual blocks: receptive field ~2 latents in space, ~4 in the past."""
    torch.manual_seed(0)
    return VideoVAE(micro(temporal_compression=2, channel_mults=(1, 2), blocks_per_level=0, norm="pixel")).eval()


def test_tiled_decode_equals_untiled_when_the_receptive_field_fits_the_overlap_margin():
    # Tolerance 1e-5: each output is then a convex blend of tiles that all computed it from their
    # full receptive field, so tiled and untiled differ only by float rounding (~1e-7 seen).
    vae = _rf_limited_vae()
    with torch.no_grad():
        z = torch.randn(1, 4, 2, 32, 32)  # 128 px in three 96 px tiles
        assert torch.allclose(vae.decode(z, tile=TileConfig(spatial=96, spatial_overlap=48, frames=None)),
                              vae.decode(z), atol=1e-5)
        z = torch.randn(1, 4, 33, 2, 2)  # 65 frames in two causal tiles of 49 frames
        assert torch.allclose(vae.decode(z, tile=TileConfig(spatial=None, frames=49, frames_overlap=24)),
                              vae.decode(z), atol=1e-5)


def test_tiled_encode_equals_untiled_when_the_receptive_field_fits_the_overlap_margin():
    vae = _rf_limited_vae()
    with torch.no_grad():
        x = torch.randn(1, 3, 3, 128, 128)  # three 64 px tiles
        assert torch.allclose(vae.encode(x, tile=TileConfig(spatial=64, spatial_overlap=32, frames=None)).mean,
                              vae.encode(x).mean, atol=1e-5)
        x = torch.randn(1, 3, 81, 4, 4)  # two causal tiles of 65 frames
        tiled = vae.encode(x, tile=TileConfig(spatial=None, frames=65, frames_overlap=32))
        assert torch.allclose(tiled.mean, vae.encode(x).mean, atol=1e-5)
        assert torch.allclose(tiled.logvar, vae.encode(x).logvar, atol=1e-5)


def test_tiled_decode_of_the_tiny_preset_stays_close_to_untiled():
    # An untrained network uses its whole receptive field (~6 latents here) and GroupNorm statistics
    # differ per tile, so a 48 px overlap cannot be exact; measured mean |diff| ~8% of the output
    # std. Bound: 15% mean, and the worst pixel within the output's own range.
    torch.manual_seed(0)
    vae = VideoVAE(preset("tiny")).eval()
    z = torch.randn(1, 16, 2, 16, 16)
    with torch.no_grad():
        full = vae.decode(z)
        tiled = vae.decode(z, tile=TileConfig(spatial=96, spatial_overlap=48, frames=None))
    diff = (tiled - full).abs()
    assert tiled.shape == full.shape == (1, 3, 5, 128, 128)
    assert diff.mean() < 0.15 * full.std() and diff.max() < full.abs().max()


def test_timestep_conditioning_starts_as_a_no_op_and_training_noises_the_latent():
    torch.manual_seed(0)
    vae = VideoVAE(micro(timestep_conditioning=True, decoder_noise_max=0.5))
    z = torch.randn(2, 4, 2, 4, 4)
    with torch.no_grad():
        assert torch.equal(vae.decode(z, timestep=0.0), vae.decode(z, timestep=0.7))  # zero-init modulation
        for p in vae.decoder.temb.parameters():
            p.normal_()
        vae.decoder.out_mod.weight.normal_()
        assert not torch.allclose(vae.decode(z, timestep=0.0), vae.decode(z, timestep=0.7))
        x = torch.randn(2, 3, 5, 16, 16)
        vae.eval()
        assert torch.equal(vae(x, sample=False)[0], vae(x, sample=False)[0])  # eval: no latent noise
        vae.train()
        assert not torch.equal(vae(x, sample=False)[0], vae(x, sample=False)[0])


def test_patch_discriminator_scores_patches_and_hinge_losses_have_their_minima():
    disc = PatchDiscriminator3d()
    logits = disc(torch.randn(2, 3, 9, 32, 32))
    assert logits.shape[:2] == (2, 1) and logits.shape[-2:] == (4, 4)
    assert hinge_d_loss(torch.full((4,), 2.0), torch.full((4,), -2.0)) == 0
    assert hinge_g_loss(torch.full((4,), 3.0)) == -3


def test_warmup_cosine_ramps_up_then_decays_to_the_floor():
    f = [warmup_cosine_factor(s, 10, 110, 0.1) for s in range(130)]
    assert f[0] == pytest.approx(0.1) and f[9] == pytest.approx(1.0) and f[10] == pytest.approx(1.0)
    assert f[60] == pytest.approx(0.55) and f[110] == pytest.approx(0.1) and f[129] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(f[10:], f[11:]))
    vae = VideoVAE(micro())
    opt = build_optimizer(vae, lr=1e-3, weight_decay=0.1)
    assert [g["weight_decay"] for g in opt.param_groups] == [0.1, 0.0]
    assert all(p.ndim < 2 for p in opt.param_groups[1]["params"])
    sched = warmup_cosine(opt, 10, 110, 0.1)
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-4)
    for _ in range(10):
        opt.step()
        sched.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-3)


def test_video_io_maps_minus_one_one_to_bytes_and_writes_a_readable_png(tmp_path):
    frames = to_uint8_frames(torch.tensor([-1.0, 0.0, 1.0, 2.0]).view(1, 1, 1, 4).expand(3, 1, 1, 4))
    assert frames.shape == (1, 1, 4, 3) and frames[0, 0, :, 0].tolist() == [0, 128, 255, 255]
    image = (torch.arange(2 * 3 * 3) * 10).to(torch.uint8).view(2, 3, 3).numpy()
    write_png(tmp_path / "a.png", image)
    data = (tmp_path / "a.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", data[16:24]) == (3, 2)
    raw = zlib.decompress(data[41:-12])  # IDAT payload: one filter byte + RGB bytes per row
    assert raw == b"".join(b"\x00" + row.tobytes() for row in image)


def test_evaluate_reconstruction_writes_report_videos_and_grids(tmp_path):
    torch.manual_seed(0)
    vae = VideoVAE(micro())
    clips = torch.stack([moving_ball_clip(10, 32, seed=s) for s in range(3)])  # 10 frames -> cropped to 9
    batches = [{"video": clips[:2], "key": ["a", "b"], "fps": torch.tensor([24.0, 24.0])}, {"video": clips[2:]}]
    report = evaluate_reconstruction(vae, batches, tmp_path, max_videos_to_save=2)
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["num_clips"] == report["num_clips"] == 3 and saved["clip_shape"] == [3, 9, 32, 32]
    assert [c["key"] for c in saved["clips"]] == ["a", "b", "2"]
    assert 0 < saved["psnr"] < 60 and -1 <= saved["ssim"] <= 1
    assert sorted(p.name for p in (tmp_path / "videos").iterdir()) == ["clip_000.mp4", "clip_001.mp4"]
    assert (tmp_path / "grids" / "clip_000.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import av
    with av.open(str(tmp_path / "videos" / "clip_000.mp4")) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 9 and frames[0].shape == (32, 64, 3)  # original | reconstruction
    # a perfect model scores near the PSNR ceiling of the identity: check the numbers are sane
    identity = evaluate_reconstruction(_Identity(), [clips], tmp_path / "id", max_videos_to_save=0)
    assert identity["ssim"] == pytest.approx(1.0, abs=1e-4) and identity["psnr"] > 60


class _Identity(VideoVAE):
    """decode(encode(x)) == x: the latent is the video itself (tests the metric plumbing)."""

    def __init__(self):
        super().__init__(micro(temporal_compression=1, spatial_compression=1, channel_mults=(1,),
                               latent_channels=3, patch_size=1))

    def encode_params(self, x):
        return torch.cat([x, torch.full_like(x, -30.0)], 1)

    def decode(self, z, timestep=None, tile=None):
        return z


def test_real_footage_clips_pack_then_score_equals_ltx_eval_on_the_shards(tmp_path, synthetic_shards):
    """scripts/real_footage_clips.py: clips packed as uint8 and scored where no codec is installed give
    the scores of evaluate_reconstruction over the datamodule's own validation decode."""
    import importlib.util
    import shutil
    from ltx_train.data.datamodule import VideoDataModule
    from ltx_train.pretrained import save_component
    spec = importlib.util.spec_from_file_location("rfc", Path(__file__).parents[1] / "scripts/real_footage_clips.py")
    rfc = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(rfc)
    src = tmp_path / "rf" / "shards" / "synth"
    src.mkdir(parents=True)
    for f in synthetic_shards.glob("val-*.tar"):
        shutil.copy(f, src / f.name)
    rfc.pack(tmp_path / "rf", tmp_path / "clips.pt", size=32, frames=9, fps=24.0)
    torch.manual_seed(0)
    vae = VideoVAE(micro())
    save_component(vae, tmp_path / "pre" / "vae")
    rfc.score(tmp_path / "clips.pt", tmp_path / "pre", tmp_path / "scores", "cpu")
    got = json.loads((tmp_path / "scores" / "summary.json").read_text())["sources"]["synth"]
    dm = VideoDataModule(val_shards=str(src), num_frames=9, fps=24.0, height=32, width=32)
    dm.setup("validate")
    want = evaluate_reconstruction(vae, dm.val_dataloader(), tmp_path / "direct", max_videos_to_save=0)
    assert got["clips"] == want["num_clips"] == 4 and got["clip_shape"] == want["clip_shape"]
    assert got["psnr"] == pytest.approx(want["psnr"], abs=0.05)  # uint8 storage: within half a grey level
    assert got["ssim"] == pytest.approx(want["ssim"], abs=2e-3)
    assert (tmp_path / "scores" / "synth" / "clip_000.png").read_bytes()[:4] == b"\x89PNG"


def test_compiled_encoder_and_decoder_match_eager_and_keep_state_dict_keys():
    """``parallelize.compile_vae`` (``model.compile=true`` of the VAE stage) with dynamo's eager backend and
    fullgraph=True: encoder and decoder trace without a graph break, and give the eager model's
    reconstruction and gradients; the state-dict keys (and so the checkpoints) do not change."""
    from ltx_train.parallelize import compile_vae
    x = torch.rand(2, 3, 9, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    runs = []
    for compiled in (False, True):
        torch.manual_seed(0)
        vae = VideoVAE(micro(timestep_conditioning=True))
        keys = list(vae.state_dict())
        if compiled:
            torch._dynamo.reset()
            compile_vae(vae, backend="eager", fullgraph=True)
        recon = vae.decode(vae.encode(x).mode(), timestep=0.05)
        (recon - x).abs().mean().backward()
        runs.append((keys, list(vae.state_dict()), recon.detach(),
                     torch.cat([p.grad.flatten() for p in vae.parameters() if p.grad is not None])))
    (k0, _, r0, g0), (k1, k1_after, r1, g1) = runs
    assert k0 == k1 == k1_after
    torch.testing.assert_close(r1, r0, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(g1, g0, rtol=1e-4, atol=1e-6)
