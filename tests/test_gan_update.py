"""``gan_update=simultaneous`` (modules/gan.py): one optimiser and one backward for a GAN stage.

The one backward gives each network exactly the gradient of its own loss (the generator's through the
frozen discriminator, the discriminator's on the detached fake), as the two backwards of the
alternating mode do at the same weights; the discriminator stays put before its start step; each
network keeps its own learning rate and schedule; the stage trains in Lightning's automatic loop with
one optimiser step per batch, and a bad combination of settings fails before training."""
from __future__ import annotations

import logging

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader

from ltx_train.config import ConfigError
from ltx_train.modules.vae_module import VAEModule
from ltx_train.modules.vocoder_module import VocoderModule, random_segments
from test_vae import moving_ball_clip
from test_vocoder import batch_of, impact_clip

logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
# training_step called by hand, without a trainer: its self.log calls are no-ops
pytestmark = pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")
QUIET = dict(accelerator="cpu", logger=False, enable_checkpointing=False, enable_progress_bar=False,
             enable_model_summary=False, num_sanity_val_steps=0)


def grads(module: torch.nn.Module) -> list[torch.Tensor]:
    return [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in module.parameters()]


def close(a: list[torch.Tensor], b: list[torch.Tensor]) -> None:
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("gan_on", [True, False])
def test_the_vocoders_one_backward_gives_each_network_the_gradient_of_its_own_loss(gan_on):
    torch.manual_seed(0)
    module = VocoderModule(preset="tiny", segment_frames=8, gan_update="simultaneous",
                           disc_start_step=0 if gan_on else 5).eval()   # eval: spectral norm's u stays put
    batch = batch_of(torch.stack([impact_clip(4000, (0.1,), seed=s) for s in range(2)]), [True, False])
    module.training_step(batch, 0).backward()
    got_g, got_d = grads(module.generator), grads(module.discriminators)
    module.zero_grad(set_to_none=True)

    module.gen_steps -= 1   # the step's windows again
    mel, real = random_segments(batch["mel"], batch["audio"], 8, module.mel.cfg.hop_length, module.window_generator())
    fake = module.generator(mel)
    g_loss = module.generator_step_losses(real, fake, batch["audio_mask"], use_gan=gan_on)["loss"]
    want_g = torch.autograd.grad(g_loss, list(module.generator.parameters()), retain_graph=True)
    close(got_g, list(want_g))
    if gan_on:
        d_loss = module.discriminator_step_loss(real, fake, batch["audio_mask"])
        close(got_d, list(torch.autograd.grad(d_loss, list(module.discriminators.parameters()))))
    else:   # before the start step: a zero gradient (so every parameter has one), and a zero learning rate
        assert all(float(g.abs().max()) == 0 for g in got_d)


def test_an_idle_discriminator_gets_zero_gradients_and_keeps_its_spectral_norm_state(monkeypatch):
    """Under a strategy with reducers the discriminators run before disc_start_step at loss weight 0: in
    eval mode, so the spectral-norm power iteration does not advance (a ZeRO run's weights then equal the
    one-device run's, where they do not run at all; tests/test_gpu_strategies.py)."""
    import ltx_train.modules.vocoder_module as vm
    monkeypatch.setattr(vm, "discriminator_runs_idle", lambda module: True)
    torch.manual_seed(0)
    module = VocoderModule(preset="tiny", segment_frames=8, gan_update="simultaneous", disc_start_step=5)
    batch = batch_of(torch.stack([impact_clip(4000, (0.1,), seed=s) for s in range(2)]))
    buffers = {k: v.clone() for k, v in module.discriminators.state_dict().items() if k.endswith(("_u", "_v"))}
    assert buffers   # the first scale discriminator is spectral-normed
    module.training_step(batch, 0).backward()
    assert module.discriminators.training
    assert all(torch.equal(v, module.discriminators.state_dict()[k]) for k, v in buffers.items())
    got = [p.grad for p in module.discriminators.parameters()]
    assert all(g is not None and float(g.abs().max()) == 0 for g in got)


def test_the_vae_gans_one_backward_gives_each_network_the_gradient_of_its_own_loss():
    from ltx_train.models.vae.discriminator import hinge_d_loss, hinge_g_loss
    torch.manual_seed(0)
    module = VAEModule("tiny", gan_weight=0.1, gan_start_step=0, disc_channels=8, disc_layers=2,
                       gan_update="simultaneous", sample_posterior=False)
    x = torch.stack([moving_ball_clip(5, 16, seed=s) for s in range(2)])
    module.training_step({"video": x}, 0).backward()
    got_g, got_d = grads(module.vae), grads(module.disc)
    module.zero_grad(set_to_none=True)

    recon, posterior = module.vae(x, sample=False)
    g_loss = module.reconstruction_losses(x, recon, posterior)["loss"] + 0.1 * hinge_g_loss(module.disc(recon))
    close(got_g, list(torch.autograd.grad(g_loss, list(module.vae.parameters()), retain_graph=True)))
    d_loss = hinge_d_loss(module.disc(x), module.disc(recon.detach()))
    close(got_d, list(torch.autograd.grad(d_loss, list(module.disc.parameters()))))


def test_one_optimiser_keeps_each_networks_learning_rate_and_schedule():
    module = VAEModule("tiny", lr=1e-3, disc_lr=4e-4, warmup_steps=2, total_steps=10, gan_weight=0.1,
                       gan_start_step=3, disc_channels=8, disc_layers=2, gan_update="simultaneous")
    conf = module.configure_optimizers()
    opt, sched = conf["optimizer"], conf["lr_scheduler"]["scheduler"]
    n_g = sum(p.numel() for p in module.vae.parameters())
    kinds = ["g" if sum(p.numel() for p in g["params"]) and g["params"][0] in set(module.vae.parameters()) else "d"
             for g in opt.param_groups]
    assert sum(p.numel() for g, k in zip(opt.param_groups, kinds) if k == "g" for p in g["params"]) == n_g
    lrs = []
    for _ in range(6):
        lrs.append({k: g["lr"] for g, k in zip(opt.param_groups, kinds)})
        opt.step()
        sched.step()
    assert [round(r["g"] / 1e-3, 6) for r in lrs[:3]] == [0.5, 1.0, 1.0]        # warm-up over 2 steps
    assert [r["d"] for r in lrs[:3]] == [0.0, 0.0, 0.0]                      # idle before gan_start_step
    assert [round(r["d"] / 4e-4, 6) for r in lrs[3:5]] == [0.5, 1.0]           # its own warm-up from there


def test_a_simultaneous_gan_stage_steps_once_per_batch_and_its_discriminator_waits_for_its_start(tmp_path):
    torch.manual_seed(0)
    batch = batch_of(torch.stack([impact_clip(4000, (0.1,), seed=s) for s in range(2)]))
    data = DataLoader([batch] * 4, batch_size=None)
    runs = {}
    for start in (2, 10):
        module = VocoderModule(preset="tiny", segment_frames=8, lr=1e-3, disc_start_step=start, grad_clip=1.0,
                               gan_update="simultaneous")
        d_before = [p.detach().clone() for p in module.discriminators.parameters()]
        trainer = L.Trainer(max_epochs=1, gradient_clip_val=None, default_root_dir=tmp_path, **QUIET)
        trainer.fit(module, train_dataloaders=data)
        assert trainer.global_step == int(module.gen_steps) == 4   # one optimiser step per batch
        runs[start] = all(torch.equal(a, b) for a, b in zip(d_before, module.discriminators.parameters()))
        if start == 2:
            assert {"train/d_loss", "train/fm", "train/g_adv", "train/mel_l1"} <= set(trainer.callback_metrics)
    assert runs == {2: False, 10: True}      # D trained from its start step on, and not before


def test_simultaneous_clipping_is_the_modules_per_network_clip_and_refuses_the_trainers():
    from ltx_train.train import _check_strategy
    module = VocoderModule(preset="tiny", gan_update="simultaneous", grad_clip=1.0)
    with pytest.raises(ConfigError, match="set trainer.gradient_clip_val=null"):
        _check_strategy(L.Trainer(gradient_clip_val=1.0, **QUIET), module)
    _check_strategy(L.Trainer(gradient_clip_val=None, **QUIET), module)
    # each network clipped to its own norm of 1.0
    for p in module.parameters():
        p.grad = torch.full_like(p, 3.0)
    module.configure_gradient_clipping(torch.optim.SGD(module.parameters(), lr=1.0))
    for net in (module.generator, module.discriminators):
        norm = torch.linalg.vector_norm(torch.cat([p.grad.flatten() for p in net.parameters()]))
        assert float(norm) == pytest.approx(1.0, rel=1e-4)
    with pytest.raises(ConfigError, match="model.gan_update must be one of"):
        VocoderModule(preset="tiny", gan_update="together")


def test_before_the_discriminators_start_both_modes_train_the_generator_identically():
    """The mel-only warm-up: alternating (manual, two optimisers) and simultaneous (one optimiser, D's loss
    at weight 0 and its learning rate 0) give the same generator and leave D as it was, step for step."""
    batches = [batch_of(torch.stack([impact_clip(4000, (0.1, 0.5), seed=s + 2 * k) for s in range(2)]))
               for k in range(3)]
    out = {}
    for mode in ("alternating", "simultaneous"):
        torch.manual_seed(0)
        module = VocoderModule(preset="tiny", segment_frames=8, lr=2e-3, warmup_steps=2, total_steps=10,
                               disc_start_step=100, gan_update=mode)
        d0 = [p.detach().clone() for p in module.discriminators.parameters()]
        torch.manual_seed(1)   # the same random windows
        L.Trainer(max_epochs=2, gradient_clip_val=None, **QUIET).fit(module, DataLoader(batches, batch_size=None))
        assert all(torch.equal(a, b) for a, b in zip(d0, module.discriminators.parameters()))
        out[mode] = [p.detach() for p in module.generator.parameters()]
    for a, b in zip(out["alternating"], out["simultaneous"], strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
