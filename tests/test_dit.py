"""Specifications of the joint audio-video DiT (tiny configs, CPU)."""
import pytest
import torch

from ltx_train.diffusion.flow import add_noise, flow_loss, velocity_target
from ltx_train.models.dit.dit import VIDEO, JointDiT
from ltx_train.models.dit.layers import expand_runs
from ltx_train.models.dit.presets import preset
from ltx_train.parallelize import compile_blocks
from ltx_train.models.dit.rope import rope_angles
from ltx_train.timing import audio_latent_times, video_latent_times

B, TV, HV, WV, TA, L = 2, 3, 4, 4, 12, 6



def tiny(**overrides) -> JointDiT:
    torch.manual_seed(0)
    return JointDiT(preset("tiny", **overrides))


def randomize_zero_init(model: JointDiT) -> JointDiT:
    """Open the adaLN-Zero gates and heads, as after some training, so every path carries signal."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            if torch.count_nonzero(p) == 0:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
    return model


def inputs(cfg, seed=0):
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(B, L, dtype=torch.bool)
    mask[0, 4:] = False
    return dict(video=torch.randn(B, cfg.video_channels, TV, HV, WV, generator=g),
                audio=torch.randn(B, cfg.audio_channels, TA, generator=g),
                timestep=torch.tensor([0.3, 0.8]),
                text=torch.randn(B, L, cfg.text_dim, generator=g), text_mask=mask)


@pytest.mark.parametrize("modulation", ["single", "block"])
def test_adaln_zero_init_gives_zero_output_and_identity_blocks(modulation):
    model = tiny(modulation=modulation, depth=3)
    x = inputs(model.cfg)
    out = model(**x, return_hidden_at=0)
    assert out["video"].shape == x["video"].shape and out["audio"].shape == x["audio"].shape
    assert torch.count_nonzero(out["video"]) == 0 and torch.count_nonzero(out["audio"]) == 0
    last = model(**x, return_hidden_at=-1)["hidden"]
    embedded = model.video_in(x["video"].permute(0, 2, 3, 4, 1)).flatten(1, 3) + model.modality[VIDEO]
    torch.testing.assert_close(out["hidden"]["video"].flatten(1, 2), embedded)
    torch.testing.assert_close(last["video"], out["hidden"]["video"])
    assert out["hidden"]["video"].shape == (B, TV, HV * WV, model.cfg.width)
    assert out["hidden"]["audio"].shape == (B, TA, model.cfg.width)


def test_joint_attention_spans_video_and_audio():
    model = randomize_zero_init(tiny())
    x = inputs(model.cfg)
    ref = model(**x)
    bumped = dict(x, audio=x["audio"].clone())
    bumped["audio"][:, :, 3] += 1.0
    assert not torch.allclose(model(**bumped)["video"], ref["video"])   # audio -> video
    bumped = dict(x, video=x["video"].clone())
    bumped["video"][:, :, 1, 2, 2] += 1.0
    assert not torch.allclose(model(**bumped)["audio"], ref["audio"])   # video -> audio


def test_masked_text_tokens_change_nothing_and_real_ones_do():
    model = randomize_zero_init(tiny())
    x = inputs(model.cfg)
    ref = model(**x)
    padded = dict(x, text=x["text"].clone())
    padded["text"][0, 4:] = 100.0 * torch.randn(2, model.cfg.text_dim)
    out = model(**padded)
    torch.testing.assert_close(out["video"], ref["video"], atol=1e-6, rtol=0)
    torch.testing.assert_close(out["audio"], ref["audio"], atol=1e-6, rtol=0)
    real = dict(x, text=x["text"].clone())
    real["text"][0, 1] += 1.0
    assert not torch.allclose(model(**real)["video"][0], ref["video"][0])


def test_video_and_audio_tokens_at_the_same_instant_share_the_temporal_rotation():
    # tiny VAE: 4x temporal; 24 fps; audio 24 kHz, hop 125, 4x -> 48 latents/s:
    # video latent j >= 1 is centred at ((j-1)*4 + 2.5) / 24 s = ((j-1)*8 + 5) / 48 s = audio latent (j-1)*8 + 5
    model = tiny(audio_hop_length=125, audio_compression=4)
    cfg = model.cfg
    num_text, grid, ta = 3, (TV, HV, WV), 24
    pos = model.positions(num_text, grid, ta, fps=24.0, batch=1)
    assert pos.shape == (1, num_text + TV * HV * WV + ta, 3)
    video = pos[0, num_text:num_text + TV * HV * WV].view(TV, HV, WV, 3)
    audio = pos[0, num_text + TV * HV * WV:]
    ang = rope_angles(pos, model.axes_dim, cfg.rope_theta)[0]
    n_t = model.axes_dim[0] // 2
    v_ang = ang[num_text:num_text + TV * HV * WV].view(TV, HV, WV, -1)
    a_ang = ang[num_text + TV * HV * WV:]
    v_sec = video_latent_times(TV, 24.0, 4)
    a_sec = audio_latent_times(ta, 24000, 125, 4)
    for j, k in [(0, 0), (1, 5), (2, 13)]:
        assert v_sec[j].item() == pytest.approx(a_sec[k].item())
        assert video[j, 1, 3, 0] == audio[k, 0]
        torch.testing.assert_close(v_ang[j, 1, 3, :n_t], a_ang[k, :n_t], rtol=0, atol=0)
    assert not torch.allclose(v_ang[1, 0, 0, :n_t], a_ang[6, :n_t])
    # text carries no rotation at all; audio no spatial rotation
    assert torch.count_nonzero(ang[:num_text]) == 0 and torch.count_nonzero(a_ang[:, n_t:]) == 0
    # per-clip fps moves video times but not audio times
    pos2 = model.positions(num_text, grid, ta, fps=torch.tensor([24.0, 12.0]), batch=2)
    assert pos2[1, num_text + HV * WV, 0] == pytest.approx(2 * pos2[0, num_text + HV * WV, 0].item())
    torch.testing.assert_close(pos2[0, -ta:], pos2[1, -ta:])


def test_per_frame_timesteps_and_clean_condition_frames():
    model = randomize_zero_init(tiny())
    x = inputs(model.cfg)
    t = x["timestep"]
    base = model(**x)
    # per-frame timesteps equal to the sample timestep reproduce the shared-timestep path
    same = model(**x, video_timestep=t[:, None].expand(B, TV).clone())
    torch.testing.assert_close(same["video"], base["video"], atol=1e-5, rtol=1e-5)
    # cond_mask on frame 0 == explicit timestep 0 for frame 0
    cond = torch.zeros(B, TV, dtype=torch.bool)
    cond[:, 0] = True
    out_mask = model(**x, cond_mask=cond)
    vt = t[:, None].repeat(1, TV)
    vt[:, 0] = 0
    torch.testing.assert_close(model(**x, video_timestep=vt)["video"], out_mask["video"])
    assert not torch.allclose(out_mask["video"], base["video"])
    # conditioning one sample leaves the other untouched
    cond_one = torch.zeros(B, TV, dtype=torch.bool)
    cond_one[1, 0] = True
    one = model(**x, cond_mask=cond_one)
    torch.testing.assert_close(one["video"][0], base["video"][0], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(one["video"][1], base["video"][1])
    # audio may run on its own clock
    assert not torch.allclose(model(**x, audio_timestep=torch.zeros(B))["audio"], base["audio"])


def test_expand_runs_matches_index_gather_in_values_and_gradients():
    # the per-group modulation broadcast that replaced ``rows[:, index]`` (slow backward on CUDA)
    runs = ((0, 3), (2, 4), (3, 4), (1, 2))
    index = torch.tensor([g for g, n in runs for _ in range(n)])
    rows = torch.randn(2, 4, 5, requires_grad=True)
    upstream = torch.randn(2, int(index.numel()), 5)
    ours = expand_runs(rows, runs)
    (grad_ours,) = torch.autograd.grad(ours, rows, upstream)
    ref = rows[:, index]
    (grad_ref,) = torch.autograd.grad(ref, rows, upstream)
    torch.testing.assert_close(ours, ref)
    torch.testing.assert_close(grad_ours, grad_ref)


def test_activation_checkpointing_matches_plain_backward_and_keeps_keys():
    """``parallelize.checkpoint_blocks``, applied from outside the model: same gradients, same state-dict keys."""
    from ltx_train.parallelize import checkpoint_blocks
    grads, keys = [], []
    for ckpt in (False, True):
        torch.manual_seed(0)
        model = randomize_zero_init(tiny()).train()
        if ckpt:
            checkpoint_blocks(model)
        keys.append(list(model.state_dict()))
        out = model(**inputs(model.cfg))
        (out["video"].square().mean() + out["audio"].square().mean()).backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
    torch.testing.assert_close(grads[0], grads[1])
    assert keys[0] == keys[1]


def test_compiled_blocks_match_eager_and_keep_state_dict_keys():
    """``parallelize.compile_blocks`` with dynamo's eager backend: the graphs are captured (a graph break or a
    failed trace raises with fullgraph=True) and give the eager outputs and gradients; inductor's code
    generation is checked on the GPU (tests/test_gpu.py)."""
    torch._dynamo.reset()
    results = []
    for compiled in (False, True):
        model = randomize_zero_init(tiny()).train()
        if compiled:
            compile_blocks(model, backend="eager", fullgraph=True)
        cfg = model.cfg
        cond = torch.zeros(B, TV, dtype=torch.bool)
        cond[:, 0] = True                                  # the training path: per-token-frame modulation
        out = model(**inputs(cfg), cond_mask=cond)
        (out["video"].square().mean() + out["audio"].square().mean()).backward()
        results.append((out["video"], torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]),
                        list(model.state_dict())))
    torch.testing.assert_close(results[0][0], results[1][0])
    torch.testing.assert_close(results[0][1], results[1][1])
    assert results[0][2] == results[1][2]


def test_patches_separate_audio_text_and_fps_per_clip():
    model = randomize_zero_init(tiny(patch_size=[2, 2, 2], separate_audio_text=True))
    x = inputs(model.cfg)
    x["video"] = torch.randn(B, 16, 4, 4, 4)
    x["audio_text"] = torch.randn(B, 5, model.cfg.text_dim)
    out = model(**x, fps=torch.tensor([24.0, 12.0]), cond_mask=torch.tensor([[1, 0, 0, 0], [0] * 4]).bool(),
                return_hidden_at=1)
    assert out["video"].shape == x["video"].shape and out["hidden"]["video"].shape == (B, 2, 4, 128)
    with pytest.raises(ValueError):
        model(**dict(x, audio_text=None))


def test_presets_have_the_advertised_sizes():
    sizes = {}
    for name in ("tiny", "small", "1b", "ltx2b", "4b"):
        with torch.device("meta"):
            sizes[name] = JointDiT(preset(name)).num_params()
    assert sizes["tiny"] < 2e6
    assert 100e6 <= sizes["small"] <= 300e6
    assert 0.9e9 <= sizes["1b"] <= 1.2e9
    assert preset("ltx2b").depth == 28 and preset("ltx2b").width == 2048 and 1.3e9 < sizes["ltx2b"] < 2e9
    assert 4.5e9 < sizes["4b"] < 4.8e9


def test_flow_loss_falls_when_overfitting_one_clip():
    torch.manual_seed(0)
    model = JointDiT(preset("tiny"))
    g = torch.Generator().manual_seed(0)
    x0v, x0a = torch.randn(1, 16, 2, 4, 4, generator=g), torch.randn(1, 8, 8, generator=g)
    n = 8   # one clip at fixed noise levels and noises: a deterministic objective
    t = torch.linspace(0.05, 0.95, n)
    nv, na = torch.randn(n, 16, 2, 4, 4, generator=g), torch.randn(n, 8, 8, generator=g)
    xv, xa = add_noise(x0v.expand(n, -1, -1, -1, -1), nv, t), add_noise(x0a.expand(n, -1, -1), na, t)
    text = torch.randn(1, 4, model.cfg.text_dim, generator=g).expand(n, -1, -1)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        out = model(xv, xa, t, text)
        loss = (flow_loss(out["video"], velocity_target(x0v, nv))
                + flow_loss(out["audio"], velocity_target(x0a, na))).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0], losses
