"""Audio VAE: shapes of every preset, causal decoding, masking of clips without audio, the module's wiring."""
from __future__ import annotations

import lightning as L
import numpy as np
import pytest
import torch
from hydra.utils import instantiate
from torch.utils.data import DataLoader

from ltx_train.audio.mel import LogMel
from ltx_train.data.synth_audio import ambience, impact_sound
from ltx_train.models.audio.audio_vae import AudioVAE
from ltx_train.models.audio.presets import AUDIO_VAE_PRESETS, audio_vae_config
from ltx_train.models.distributions import DiagonalGaussian
from ltx_train.modules.audio_vae_module import AudioVAEModule

SR = 24000


def impact_batch(batch: int = 3, num_samples: int = 12000, seed: int = 0) -> dict:
    """Clips of room noise with one impact each, in the batch contract (audio, mel, audio_mask)."""
    rng = np.random.default_rng(seed)
    clips = []
    for i in range(batch):
        x = ambience(num_samples, SR, -45.0, rng)
        snd = impact_sound(["rubber", "metal", "glass", "clay"][i % 4], 0.08, 1.5, SR, rng)
        n0 = int(rng.integers(0, num_samples // 2))
        n = min(len(snd), num_samples - n0)
        x[n0:n0 + n] += snd[:n]
        clips.append(x)
    audio = torch.tensor(np.stack(clips))
    return {"audio": audio, "mel": LogMel()(audio), "audio_mask": torch.ones(batch, dtype=torch.bool)}



@pytest.mark.parametrize("preset", sorted(AUDIO_VAE_PRESETS))
def test_every_preset_maps_log_mel_to_one_latent_per_four_frames_and_back(preset):
    torch.manual_seed(0)
    vae = AudioVAE(audio_vae_config(preset))
    mel = torch.randn(2, 64, 16) - 5.0
    posterior = vae.encode(mel)
    assert isinstance(posterior, DiagonalGaussian)
    assert posterior.mean.shape == (2, 8, 4)
    recon, post = vae(mel)
    assert recon.shape == mel.shape
    assert torch.isfinite(recon).all() and post.kl().shape == (2,)


def test_latent_channels_are_configurable_and_mel_length_is_checked():
    vae = AudioVAE(audio_vae_config("tiny", latent_channels=16))
    assert vae.encode(torch.zeros(1, 64, 8)).mean.shape == (1, 16, 2)
    with pytest.raises(ValueError, match="divisible"):
        vae.encode(torch.zeros(1, 64, 10))
    with pytest.raises(ValueError, match="stages"):
        audio_vae_config("tiny", time_compression=8)


def test_decoder_is_causal_in_time():
    """Changing latent k leaves every mel frame before k * time_compression untouched."""
    torch.manual_seed(0)
    vae = AudioVAE(audio_vae_config("tiny")).eval()
    z = torch.randn(1, 8, 6)
    z2 = z.clone()
    z2[..., 3] += 1.0
    with torch.no_grad():
        diff = (vae.decode(z) - vae.decode(z2)).abs().amax(1)[0]  # (F,)
    assert torch.all(diff[:12] == 0) and diff[12] > 0


def test_normalisation_constants_roughly_whiten_synthetic_log_mels():
    cfg = audio_vae_config("tiny")
    x = (impact_batch(4)["mel"] - cfg.mel_mean) / cfg.mel_std
    assert abs(float(x.mean())) < 0.5 and 0.5 < float(x.std()) < 2.0


def test_clips_without_audio_contribute_nothing_to_the_loss():
    torch.manual_seed(0)
    module = AudioVAEModule(preset="tiny", sc_weight=0.1)
    batch = impact_batch(3)
    batch["audio_mask"] = torch.tensor([True, False, True])
    g = torch.Generator().manual_seed(1)
    loss = module.losses(batch, sample_posterior=False)["loss"]
    other = dict(batch, mel=batch["mel"].clone())
    other["mel"][1] = torch.randn(64, 48, generator=g) * 3  # a different masked clip
    assert torch.equal(module.losses(other, sample_posterior=False)["loss"], loss)

    none = dict(batch, audio_mask=torch.zeros(3, dtype=torch.bool))
    out = module.losses(none)
    assert out["loss"].item() == 0.0 and out["loss"].requires_grad
    out["loss"].backward()
    assert all(p.grad is None or torch.all(p.grad == 0) for p in module.parameters())
    assert module.training_step(none, 0) is None  # on one device the step is skipped


def test_module_builds_from_hydra_kwargs_trains_and_reports_val_metrics(tmp_path):
    module = instantiate({"_target_": "ltx_train.modules.audio_vae_module.AudioVAEModule", "preset": "tiny",
                          "vae": {"channels": [8, 16, 16]}, "lr": 1e-3, "warmup_steps": 2, "total_steps": 20})
    assert module.hparams.vae == {"channels": [8, 16, 16]} and module.vae.cfg.channels == (8, 16, 16)
    batch = impact_batch(2, num_samples=6000)
    loader = DataLoader([batch] * 4, batch_size=None)  # already-collated batches
    before = [p.detach().clone() for p in module.parameters()]
    trainer = L.Trainer(max_steps=4, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
                        limit_val_batches=1, num_sanity_val_steps=0)
    trainer.fit(module, train_dataloaders=loader, val_dataloaders=DataLoader([batch], batch_size=None))
    assert any(not torch.equal(a, b) for a, b in zip(before, module.parameters()))
    metrics = trainer.callback_metrics
    assert {"val/mel_l1", "val/lsd", "train/loss"} <= set(metrics)
    assert float(metrics["val/lsd"]) > 0
