"""GPU-only checks (marked `gpu`, skipped without CUDA; `make test` deselects them). Run on a GPU machine:
    python -m pytest -q -m gpu
"""
from __future__ import annotations

import pytest
import torch

from ltx_train.diffusion.flow import add_noise, flow_loss, velocity_target
from ltx_train.models.dit.dit import JointDiT
from ltx_train.models.dit.presets import preset as dit_preset
from ltx_train.models.vae import VideoVAE, preset as vae_preset
from ltx_train.parallelize import compile_blocks

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


def test_dit_bf16_training_step_on_cuda_gives_finite_loss_and_grads():
    torch.manual_seed(0)
    dit = JointDiT(dit_preset("tiny", text_dim=64)).cuda()
    video, audio = torch.randn(2, 16, 3, 4, 4, device="cuda"), torch.randn(2, 8, 12, device="cuda")
    text, mask = torch.randn(2, 6, 64, device="cuda"), torch.ones(2, 6, dtype=torch.bool, device="cuda")
    t = torch.rand(2, device="cuda")
    n_v, n_a = torch.randn_like(video), torch.randn_like(audio)
    with torch.autocast("cuda", dtype=torch.bfloat16):
        out = dit(add_noise(video, n_v, t), add_noise(audio, n_a, t), t, text, mask)
        loss = (flow_loss(out["video"], velocity_target(video, n_v)) +
                flow_loss(out["audio"], velocity_target(audio, n_a))).mean()
    loss.backward()
    assert torch.isfinite(loss)
    assert all(torch.isfinite(p.grad).all() for p in dit.parameters() if p.grad is not None)


def test_video_vae_bf16_reconstruction_matches_fp32_on_cuda():
    torch.manual_seed(0)
    vae = VideoVAE(vae_preset("tiny")).cuda().eval()
    x = torch.rand(1, 3, 9, 64, 64, device="cuda") * 2 - 1
    with torch.no_grad():
        ref = vae.decode(vae.encode(x).mode())
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = vae.decode(vae.encode(x).mode()).float()
    assert (out - ref).norm() / ref.norm() < 3e-2


def test_compiled_dit_blocks_match_eager_under_bf16_on_cuda():
    """Inductor-compiled blocks (what ``model.compile=true`` trains with) against the eager model."""
    torch._dynamo.reset()
    outs = []
    for compiled in (False, True):
        torch.manual_seed(0)
        dit = JointDiT(dit_preset("tiny", text_dim=64)).cuda()
        for p in dit.parameters():      # open the adaLN-Zero gates so every path carries signal
            if torch.count_nonzero(p) == 0:
                torch.nn.init.normal_(p, std=0.1)
        if compiled:
            compile_blocks(dit)
        g = torch.Generator("cuda").manual_seed(1)
        video, audio = torch.randn(2, 16, 3, 4, 4, device="cuda", generator=g), torch.randn(2, 8, 12, device="cuda", generator=g)
        text, mask = torch.randn(2, 6, 64, device="cuda", generator=g), torch.ones(2, 6, dtype=torch.bool, device="cuda")
        cond = torch.zeros(2, 3, dtype=torch.bool, device="cuda")
        cond[:, 0] = True
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = dit(video, audio, torch.tensor([0.3, 0.8], device="cuda"), text, mask, cond_mask=cond)
        outs.append(out["video"].float())
    torch.testing.assert_close(outs[0], outs[1], atol=3e-2, rtol=3e-2)
