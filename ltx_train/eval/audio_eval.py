"""Vocoder vs Griffin-Lim (and optionally mel -> audio VAE -> vocoder) against the original audio.

``evaluate_audio`` walks batches of the data contract (``audio`` (B, S), ``mel`` (B, n_mels, F),
``audio_mask`` (B,)), scores every clip that has audio, writes a few wav triples to listen to and
``report.json``. Clips whose ``audio_mask`` is False are skipped: their zeros are not silence.
"""
from __future__ import annotations

import json
import wave
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from ltx_train.audio.mel import LogMel
from ltx_train.eval.audio_metrics import mel_l1, multi_resolution_stft_distance, si_sdr
from ltx_train.models.audio.griffin_lim import griffin_lim

METRICS = ("mel_l1", "mr_stft", "si_sdr")


def write_wav(path: str | Path, wav: torch.Tensor | np.ndarray, sample_rate: int) -> None:
    """Mono float waveform (S,) in [-1, 1] -> 16-bit PCM wav."""
    pcm = (np.clip(np.asarray(wav, dtype=np.float32), -1.0, 1.0) * 32767.0).round().astype("<i2")
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(sample_rate)
        f.writeframes(pcm.tobytes())


def _scores(wav: torch.Tensor, ref: torch.Tensor, ref_mel: torch.Tensor, mel: LogMel) -> dict[str, torch.Tensor]:
    return {"mel_l1": mel_l1(mel(wav), ref_mel), "mr_stft": multi_resolution_stft_distance(wav, ref),
            "si_sdr": si_sdr(wav, ref)}


@torch.no_grad()
def evaluate_audio(vocoder: nn.Module, batches: Iterable[dict], mel: LogMel, out_dir: str | Path,
                   max_wavs: int = 4, griffin_lim_iters: int = 32, audio_vae: nn.Module | None = None,
                   max_batches: int | None = None, seed: int = 0) -> dict:
    """Score ``vocoder`` (log-mel (B, n_mels, F) -> wave (B, F*hop)) and Griffin-Lim on ``batches``.

    Returns (and writes to ``out_dir/report.json``) ``{"num_clips", "rows": {name: {metric: mean}}, "wavs"}``
    with rows ``vocoder``, ``griffin_lim`` and, given ``audio_vae``, ``vae_vocoder`` (mel -> VAE posterior
    mode -> decode -> vocoder). Means are over clips with ``audio_mask`` True. mel L1 compares the
    log-mel of the output with the batch's log-mel; MR-STFT (lower is better) and SI-SDR (dB, higher
    is better) compare waveforms with the original cut to F*hop samples.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    modules = [m for m in (vocoder, audio_vae) if m is not None]
    was_training = [m.training for m in modules]
    for m in modules:
        m.eval()
    device = next(vocoder.parameters()).device
    mel = mel.to(device)
    gen = torch.Generator(device=device).manual_seed(seed)
    sr, hop = mel.cfg.sample_rate, mel.cfg.hop_length
    sums: dict[str, dict[str, float]] = {}
    num_clips, wavs = 0, []
    try:
        for i, batch in enumerate(batches):
            if max_batches is not None and i >= max_batches:
                break
            mask = batch["audio_mask"].bool()
            if not mask.any():
                continue
            audio = batch["audio"][mask].float().to(device)
            log_mel = batch["mel"][mask].float().to(device) if "mel" in batch else mel(audio)
            ref = audio[:, : log_mel.shape[-1] * hop]
            outputs = {"vocoder": vocoder(log_mel),
                       "griffin_lim": griffin_lim(log_mel, mel, n_iter=griffin_lim_iters, generator=gen)}
            if audio_vae is not None:
                outputs["vae_vocoder"] = vocoder(audio_vae.decode(audio_vae.encode(log_mel).mode()))
            for name, wav in outputs.items():
                row = sums.setdefault(name, dict.fromkeys(METRICS, 0.0))
                for k, v in _scores(wav, ref, log_mel, mel).items():
                    row[k] += float(v.sum())
            keys = [k for k, m in zip(batch.get("key", [None] * len(mask)), mask.tolist()) if m]
            for j in range(min(ref.shape[0], max_wavs - len(wavs))):
                stem = f"clip{len(wavs):02d}"
                files = {"original": ref, **outputs}
                names = {}
                for name, wav in files.items():
                    write_wav(out / f"{stem}_{name}.wav", wav[j].cpu().numpy(), sr)
                    names[name] = f"{stem}_{name}.wav"
                wavs.append({"key": keys[j] if j < len(keys) else None, **names})
            num_clips += ref.shape[0]
    finally:
        for m, t in zip(modules, was_training):
            m.train(t)
    rows = {name: {k: v / max(num_clips, 1) for k, v in row.items()} for name, row in sums.items()}
    report = {"num_clips": num_clips, "griffin_lim_iters": griffin_lim_iters, "sample_rate": sr,
              "rows": rows, "wavs": wavs}
    (out / "report.json").write_text(json.dumps(report, indent=2))
    return report
