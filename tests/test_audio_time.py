"""Time alignment of the audio path: an impact at t seconds shows up in mel frame floor(t*sr/hop)
(after the STFT-lookahead delay the causal encoder applies) and first changes audio latent
``timing.audio_latent_index(t)``, never an earlier one."""
from __future__ import annotations

import math

import pytest
import torch

from ltx_train.audio.mel import LogMel, MelConfig, lookahead_frames
from ltx_train.models.audio.audio_vae import AudioVAE
from ltx_train.models.audio.presets import audio_vae_config
from ltx_train.timing import audio_latent_index, audio_latent_times, mel_frames_per_video_frame

SR, HOP, TC = 24000, 250, 4
NUM_SAMPLES = 24000  # 1 s: 96 mel frames, 24 audio latents


def impact(onset: int, num_samples: int = NUM_SAMPLES, amp: float = 0.5) -> torch.Tensor:
    """A damped 700 Hz mode plus a click, starting at sample ``onset`` (zeros before it)."""
    n = torch.arange(num_samples - onset, dtype=torch.float64)
    snd = amp * torch.exp(-n / (0.03 * SR)) * (torch.sin(2 * math.pi * 700 * n / SR) + (n == 0).double())
    out = torch.zeros(num_samples, dtype=torch.float64)
    out[onset:] = snd
    return out.float()


def room_noise(seed: int = 0) -> torch.Tensor:
    return 3e-3 * torch.randn(NUM_SAMPLES, generator=torch.Generator().manual_seed(seed))


# sample offsets inside a hop / a latent span, including the edges that break a naive alignment
ONSETS = [4000, 4001, 4124, 4249, 4250 + 125, 4500 + 200, 4750 + 249, 12345]


def test_one_audio_latent_per_video_frame():
    assert mel_frames_per_video_frame(SR, HOP, 24.0) == TC == audio_vae_config("tiny").time_compression
    assert audio_latent_times(3, SR, HOP, TC).tolist() == pytest.approx([0.0, 1 / 24, 2 / 24])


def test_lookahead_of_the_centred_stft_is_one_frame():
    # frame m is centred on sample m*hop and reaches win/2 = 500 samples ahead: 1 hop past its own
    cfg = MelConfig()
    assert lookahead_frames(cfg) == 1 == audio_vae_config("tiny").lookahead_frames
    assert lookahead_frames(MelConfig(win_length=500)) == 0


@pytest.mark.parametrize("onset", ONSETS)
def test_impact_energy_starts_in_mel_frame_floor_t_sr_over_hop(onset):
    """Linear mel energy (no log floor to hide small changes) of an impact in silence is exactly
    zero in every frame before it; with the one-frame lookahead delay the first frame with energy is
    floor(t * sr / hop), exactly, wherever the onset falls inside the hop."""
    mel = LogMel(MelConfig(log_floor=1e-30))
    energy = mel(impact(onset)).exp().sum(0)  # (F,)
    first_raw = int(torch.nonzero(energy > 1e-20)[0])
    d = lookahead_frames(mel.cfg)
    expected = math.floor((onset / SR) * SR / HOP)
    assert first_raw == expected - d  # the centred window already sees it one frame early
    delayed = torch.cat([torch.zeros(d), energy])[: energy.shape[0]]
    assert int(torch.nonzero(delayed > 1e-20)[0]) == expected


@pytest.mark.parametrize("onset", ONSETS)
def test_causal_encoder_first_changes_latent_at_audio_latent_index(onset):
    torch.manual_seed(0)
    vae = AudioVAE(audio_vae_config("tiny")).eval()
    mel = LogMel()
    background = room_noise()
    with torch.no_grad():
        z0 = vae.encode(mel(background)[None]).mode()[0]  # (C_a, L)
        z1 = vae.encode(mel(background + impact(onset))[None]).mode()[0]
    changed = (z1 - z0).abs().amax(0)  # (L,)
    k = audio_latent_index(onset / SR, SR, HOP, TC)
    assert torch.all(changed[:k] == 0), f"latents before {k} changed: {changed[:k + 1]}"
    assert int(torch.nonzero(changed)[0]) == k
    # an onset in the last samples of a span reaches latent k only through the Hann window's tail;
    # one at least a hop before the span's end moves it clearly
    if onset < (k + 1) * TC * HOP - HOP:
        assert changed[k] > 1e-3
