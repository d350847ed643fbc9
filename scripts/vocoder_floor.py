"""What limits a vocoder's mel L1 on the synthetic world (experiments/vocoder_floor.md, issue 15).

The synthetic clips are impacts over -45 dBFS room noise. A vocoder that synthesises noise with the
right spectrum but other samples scores, on the noise frames, what a second realisation of the same
noise scores against the first: this script measures that floor by re-rendering each val clip with
``render_clip(seed, noise_seed=1)`` (the same impacts, another noise realisation), and scores the
vocoders given and 32-iteration Griffin-Lim against the original, on all frames, on the noise frames
and on the event frames (log-mel energy > the clip's median frame + 1 nat):

    python scripts/vocoder_floor.py --clips 32 [--vocoder NAME=PATH ...] [--wavs DIR]

PATH: a pretrained directory (its ``vocoder`` component) or a vocoder training checkpoint. Prints a
markdown table and writes ``--out`` (json). CPU, about a minute for 32 clips.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from ltx_train.audio.mel import LogMel
from ltx_train.data.synth import VAL_SEED_OFFSET, SynthConfig, render_clip
from ltx_train.models.audio.griffin_lim import griffin_lim


def load_vocoder(path: str) -> torch.nn.Module:
    from ltx_train.pretrained import component_from_checkpoint, load_component
    p = Path(path)
    module = load_component(p, "vocoder") if p.is_dir() else component_from_checkpoint(p, "vocoder")
    return module.eval()


def split_l1(pred: torch.Tensor, target: torch.Tensor, events: torch.Tensor) -> dict[str, float]:
    """mel L1 (n_mels, F) over all frames, the noise frames and the event frames."""
    per_frame = (pred - target).abs().mean(0)
    return {"all": float(per_frame.mean()), "noise": float(per_frame[~events].mean()),
            "events": float(per_frame[events].mean()) if events.any() else float("nan")}


def write_wav(path: Path, wav: torch.Tensor, sample_rate: int) -> None:
    import wave
    path.parent.mkdir(parents=True, exist_ok=True)
    pcm = (wav.detach().float().clamp(-1, 1).numpy() * 32767).astype("<i2")
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(sample_rate)
        f.writeframes(pcm.tobytes())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clips", type=int, default=32)
    ap.add_argument("--vocoder", action="append", default=[], metavar="NAME=PATH")
    ap.add_argument("--gl-iters", type=int, default=32)
    ap.add_argument("--out", default="vocoder_floor.json")
    ap.add_argument("--wavs", default=None, help="write the first --max-wavs clips' outputs here (16-bit wav)")
    ap.add_argument("--max-wavs", type=int, default=2)
    a = ap.parse_args()
    torch.manual_seed(0)
    mel = LogMel()
    cfg = SynthConfig(width=64, height=64)
    vocoders = {name: load_vocoder(path) for name, path in (v.split("=", 1) for v in a.vocoder)}
    rows: dict[str, list[dict]] = {"noise_floor": [], "griffin_lim": [], **{n: [] for n in vocoders}}
    event_share = []
    gen = torch.Generator().manual_seed(0)
    for i in range(a.clips):
        seed = VAL_SEED_OFFSET + i
        x = torch.from_numpy(render_clip(seed, cfg).audio)[None]
        alt = torch.from_numpy(render_clip(seed, cfg, noise_seed=1).audio)[None]
        target = mel(x)[0]
        energy = target.mean(0)
        events = energy > energy.median() + 1.0
        event_share.append(float(events.float().mean()))
        rows["noise_floor"].append(split_l1(mel(alt)[0], target, events))
        with torch.no_grad():
            waves = {"original": x, "noise_floor": alt,
                     "griffin_lim": griffin_lim(target[None], mel, n_iter=a.gl_iters, generator=gen),
                     **{name: voc(target[None]) for name, voc in vocoders.items()}}
        for name, wav in waves.items():
            if name != "original":
                rows[name].append(split_l1(mel(wav)[0], target, events))
            if a.wavs and i < a.max_wavs:
                write_wav(Path(a.wavs) / f"clip{i}_{name}.wav", wav[0], mel.cfg.sample_rate)
        print(f"[vocoder_floor] clip {i + 1}/{a.clips}", flush=True)
    table = {name: {k: float(np.nanmean([r[k] for r in rs])) for k in ("all", "noise", "events")}
             for name, rs in rows.items()}
    report = {"clips": a.clips, "event_frame_share": float(np.mean(event_share)), "mel_l1": table}
    Path(a.out).write_text(json.dumps(report, indent=2))
    print(f"\nevent frames: {100 * report['event_frame_share']:.1f}% of all frames ({a.clips} val clips)\n")
    print("| output vs original | mel L1, all frames | noise frames | event frames |\n|---|---|---|---|")
    for name, r in table.items():
        print(f"| {name} | {r['all']:.3f} | {r['noise']:.3f} | {r['events']:.3f} |")


if __name__ == "__main__":
    main()
