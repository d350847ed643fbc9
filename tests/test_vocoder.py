"""Vocoder path: generator/discriminator shapes, metrics, Griffin-Lim, masking, training wiring,
an overfit that beats Griffin-Lim, and the evaluation report."""
from __future__ import annotations

import json
import time
import wave

import lightning as L
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from ltx_train.audio.mel import LogMel
from ltx_train.data.synth_audio import ambience, impact_sound
from ltx_train.eval.audio_eval import evaluate_audio
from ltx_train.eval.audio_metrics import (log_spectral_distance, masked_mean, mel_l1, multi_resolution_stft_distance,
                                          si_sdr)
from ltx_train.models.audio.audio_vae import AudioVAE
from ltx_train.models.audio.discriminators import Discriminators
from ltx_train.models.audio.griffin_lim import griffin_lim
from ltx_train.models.audio.presets import VOCODER_PRESETS, audio_vae_config, discriminator_config, vocoder_config
from ltx_train.models.audio.vocoder import HiFiGAN, HiFiGANConfig
from ltx_train.modules.vocoder_module import VocoderModule, random_segments

SR, HOP = 24000, 250


def impact_clip(num_samples: int, onsets: tuple[float, ...], seed: int = 0) -> torch.Tensor:
    """Room noise at -45 dBFS with impacts (rubber, metal, ...) at the given fractions of the clip."""
    rng = np.random.default_rng(seed)
    x = ambience(num_samples, SR, -45.0, rng)
    for i, frac in enumerate(onsets):
        snd = impact_sound(["rubber", "metal", "glass", "clay"][i % 4], 0.08, 1.5, SR, rng)
        n0 = int(frac * num_samples)
        n = min(len(snd), num_samples - n0)
        x[n0:n0 + n] += snd[:n]
    return torch.tensor(x)


def batch_of(audio: torch.Tensor, mask: list[bool] | None = None) -> dict:
    mask = torch.tensor(mask if mask is not None else [True] * audio.shape[0])
    return {"key": [f"clip-{i}" for i in range(audio.shape[0])], "audio": audio, "mel": LogMel()(audio),
            "audio_mask": mask}



@pytest.mark.parametrize("preset", sorted(VOCODER_PRESETS))
def test_every_preset_turns_f_mel_frames_into_f_times_hop_samples(preset):
    torch.manual_seed(0)
    gen = HiFiGAN(vocoder_config(preset))
    assert gen.hop_length == HOP
    wav = gen(torch.randn(2, 64, 6) - 5)
    assert wav.shape == (2, 6 * HOP) and wav.abs().max() <= 1


def test_upsampling_kernels_that_break_exact_lengths_are_rejected():
    with pytest.raises(ValueError, match="even"):
        HiFiGANConfig(upsample_kernel_sizes=(10, 11, 11, 4))
    with pytest.raises(ValueError, match="hop"):
        VocoderModule(generator={"upsample_rates": [5, 5, 5, 4], "upsample_kernel_sizes": [11, 11, 11, 8]})


@pytest.mark.parametrize("preset", ["tiny", "base"])
def test_discriminators_are_five_periods_and_three_scales(preset):
    disc = Discriminators(discriminator_config(preset))
    logits, feats = disc(torch.randn(2, 2000) * 0.1)
    assert len(logits) == len(feats) == 8
    assert all(lg.shape[0] == 2 for lg in logits)
    assert [d.period for d in disc.mpd.discs] == [2, 3, 5, 7, 11]


def test_metrics_sanity():
    g = torch.Generator().manual_seed(0)
    x = impact_clip(12000, (0.2,))[None].repeat(2, 1)
    noise = 0.1 * torch.randn(x.shape, generator=g)
    assert torch.all(si_sdr(x, x) > 60) and torch.all(si_sdr(noise, x) < -10)
    assert torch.all(si_sdr(3 * x, x) > 60)  # scale-invariant
    assert torch.all(multi_resolution_stft_distance(x, x) == 0)
    assert torch.all(multi_resolution_stft_distance(x + noise, x) > 0.1)
    m = LogMel()(x)
    assert torch.all(mel_l1(m, m) == 0) and torch.all(log_spectral_distance(m, m) == 0)
    assert log_spectral_distance(m + 0.1, m)[0] == pytest.approx(20 / np.log(10) * 0.1, rel=1e-4)
    v = torch.tensor([1.0, 5.0, 3.0], requires_grad=True)
    assert masked_mean(v, torch.tensor([True, False, True])) == 2.0
    empty = masked_mean(v, torch.zeros(3, dtype=torch.bool))
    assert empty == 0 and empty.requires_grad


def test_griffin_lim_returns_f_times_hop_samples_with_a_close_mel():
    mel = LogMel()
    x = impact_clip(6000, (0.1,))[None]
    m = mel(x)
    wav = griffin_lim(m, mel, n_iter=16, generator=torch.Generator().manual_seed(0))
    assert wav.shape == (1, 6000)
    assert mel_l1(mel(wav), m).item() < 0.4
    assert mel_l1(mel(wav), m).item() < mel_l1(mel(0 * wav + 1e-3 * torch.randn(1, 6000)), m).item()


def test_clips_without_audio_change_neither_loss_nor_weights():
    torch.manual_seed(0)
    module = VocoderModule(preset="tiny").eval()  # eval: spectral norm's power iteration stays put
    audio = torch.stack([impact_clip(4000, (0.1,), seed=s) for s in range(3)])
    mask = torch.tensor([True, False, True])
    fake = module.generator(LogMel()(audio))
    other = audio.clone()
    other[1] = torch.randn(4000) * 0.3
    other_fake = fake.clone()
    other_fake[1] = torch.randn(4000) * 0.3
    g1 = module.generator_step_losses(audio, fake, mask, use_gan=True)
    g2 = module.generator_step_losses(other, other_fake, mask, use_gan=True)
    for k in ("mel_l1", "g_adv", "fm", "loss"):
        assert torch.allclose(g1[k], g2[k], rtol=1e-6, atol=1e-7), k
    assert torch.allclose(module.discriminator_step_loss(audio, fake, mask),
                          module.discriminator_step_loss(other, other_fake, mask), rtol=1e-6)
    # a batch with no audio at all: zero loss, and the step is skipped
    none = torch.zeros(3, dtype=torch.bool)
    assert module.generator_step_losses(audio, fake, none, use_gan=True)["loss"] == 0
    before = [p.detach().clone() for p in module.parameters()]
    module.train().training_step(batch_of(audio, [False] * 3), 0)
    assert all(torch.equal(a, b) for a, b in zip(before, module.parameters()))


def test_random_segments_keep_mel_and_samples_aligned():
    audio = torch.arange(2 * 20 * HOP, dtype=torch.float32).reshape(2, -1)
    mel = torch.arange(20, dtype=torch.float32).expand(2, 3, 20)
    m, a = random_segments(mel, audio, 5, HOP, torch.Generator().manual_seed(0))
    assert m.shape == (2, 3, 5) and a.shape == (2, 5 * HOP)
    for i in range(2):
        start = int(m[i, 0, 0])
        assert torch.equal(m[i, 0], torch.arange(start, start + 5, dtype=torch.float32))
        assert a[i, 0] == audio[i, start * HOP]


def test_a_steps_windows_depend_on_the_seed_step_and_rank_not_on_the_global_rng():
    """So that a resumed run, or the same run under DeepSpeed (whose set-up draws from the global RNG),
    cuts the same windows as the run it continues or is compared with."""
    module = VocoderModule(preset="tiny")
    mel, audio = torch.randn(4, 3, 40), torch.randn(4, 40 * HOP)

    def windows():
        return random_segments(mel, audio, 5, HOP, module.window_generator())[0]
    torch.manual_seed(3)
    first = windows()
    torch.rand(100)                       # something else draws from the global RNG
    assert torch.equal(windows(), first)
    module.gen_steps += 1
    assert not torch.equal(windows(), first)
    module.gen_steps -= 1
    torch.manual_seed(4)                  # another run seed: other windows
    assert not torch.equal(windows(), first)


def test_module_trains_generator_then_discriminators_and_reports_val_mel_l1(tmp_path):
    torch.manual_seed(0)
    module = VocoderModule(preset="tiny", segment_frames=8, lr=1e-3, disc_start_step=1, grad_clip=1.0)
    batch = batch_of(torch.stack([impact_clip(4000, (0.1,), seed=s) for s in range(2)]))
    d_before = [p.detach().clone() for p in module.discriminators.parameters()]
    trainer = L.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
                        num_sanity_val_steps=0)
    trainer.fit(module, train_dataloaders=DataLoader([batch] * 3, batch_size=None),
                val_dataloaders=DataLoader([batch], batch_size=None))
    assert int(module.gen_steps) == 3
    assert trainer.global_step == 1 + 2 * 2  # Lightning counts both optimisers' steps once the GAN starts
    assert any(not torch.equal(a, b) for a, b in zip(d_before, module.discriminators.parameters()))
    assert {"val/mel_l1", "train/mel_l1", "train/d_loss", "train/fm", "train/g_adv"} <= set(trainer.callback_metrics)


def test_tiny_vocoder_overfits_an_impact_clip_below_griffin_lim():
    """Mel L1 only (no GAN): within seconds on CPU the tiny generator matches one 0.25 s clip's mel
    better than 32 iterations of fast Griffin-Lim do."""
    torch.manual_seed(0)
    mel = LogMel()
    audio = impact_clip(6000, (0.25, 0.6))[None]
    target = mel(audio)
    gl = mel_l1(mel(griffin_lim(target, mel, n_iter=32, generator=torch.Generator().manual_seed(0))), target).item()
    gen = HiFiGAN(vocoder_config("tiny"))
    opt = torch.optim.AdamW(gen.parameters(), lr=1e-2, betas=(0.8, 0.99))
    start, losses = time.time(), []
    for _ in range(800):
        loss = mel_l1(mel(gen(target)), target).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
        if min(losses[-20:]) < 0.8 * gl:
            break
    with torch.no_grad():
        final = mel_l1(mel(gen(target)), target).item()
    assert final < gl, f"vocoder mel L1 {final:.3f} vs Griffin-Lim {gl:.3f} after {len(losses)} steps"
    assert time.time() - start < 120


def test_evaluate_audio_scores_clips_with_audio_and_writes_wavs_and_report(tmp_path):
    torch.manual_seed(0)
    vocoder = HiFiGAN(vocoder_config("tiny"))
    vae = AudioVAE(audio_vae_config("tiny"))
    clips = torch.stack([impact_clip(6000, (0.2,), seed=s) for s in range(3)])
    batches = [batch_of(clips[:2], [True, False]), batch_of(clips[2:], [True]), batch_of(clips[:1], [False])]
    report = evaluate_audio(vocoder, batches, LogMel(), tmp_path, max_wavs=2, griffin_lim_iters=4, audio_vae=vae)
    assert report["num_clips"] == 2
    assert set(report["rows"]) == {"vocoder", "griffin_lim", "vae_vocoder"}
    for row in report["rows"].values():
        assert set(row) == {"mel_l1", "mr_stft", "si_sdr"} and all(np.isfinite(list(row.values())))
    assert json.loads((tmp_path / "report.json").read_text()) == report
    assert [w["key"] for w in report["wavs"]] == ["clip-0", "clip-0"]
    with wave.open(str(tmp_path / report["wavs"][0]["original"])) as f:
        assert (f.getnchannels(), f.getsampwidth(), f.getframerate(), f.getnframes()) == (1, 2, SR, 6000)
        pcm = np.frombuffer(f.readframes(6000), "<i2") / 32767.0
    assert np.abs(pcm - clips[0].numpy()).max() < 1e-4
    assert vocoder.training  # modes restored
