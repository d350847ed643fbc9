"""How far an adapter moves generations, as a function of its weight (``ltx-eval task=lora``).

For each weight w, the same prompts and seed are generated with the adapter set to w (w = 0 is the
base), and each clip is measured from its frames alone (``ltx_train.eval.look``): ``palette_score``
toward a palette (0 = the default look, 1 = that palette), ``camera_pan_score`` (the wall's shift,
px/frame; positive = the scene moves right = the camera pans left) and ``room_edge_pan_score`` (the same
read from the room's edge entering the frame; null where unreadable, left out of the mean and counted).
The report has the per-weight means and the per-clip values; ``strip.png`` shows frame 0, middle and
last of every clip, one row per weight; the clips are written as mp4s.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ltx_train.eval.look import camera_pan_score, palette_score, room_edge_pan_score
from ltx_train.eval.video_io import write_png


def default_prompts(n: int, height: int = 64, width: int = 64, drop_caption: tuple[str, ...] = ()) -> list[str]:
    """Captions of held-out clips of the default synthetic world (val seeds), which ask for no look;
    ``drop_caption``: layers whose sentence is left out (``ltx_train.data.captions.CAPTION_LAYERS``)."""
    from ltx_train.data.synth import VAL_SEED_OFFSET, SynthConfig, render_clip
    cfg = SynthConfig(height=height, width=width, drop_caption=tuple(drop_caption))
    return [render_clip(VAL_SEED_OFFSET + i, cfg).caption for i in range(n)]


def readable(value: float) -> float | None:
    """A statistic as the JSON report holds it: None where it could not be read (NaN)."""
    return None if np.isnan(value) else float(value)


def means(scores: list[dict]) -> dict:
    """``mean_<key>`` over the clips of each score; unreadable values (None or NaN) are left out and counted."""
    out = {}
    for k in scores[0]:
        values = [s[k] for s in scores]
        ok = [v for v in values if v is not None and not np.isnan(v)]
        out[f"mean_{k}"] = float(np.mean(ok)) if ok else None
        if len(ok) < len(values):
            out[f"unreadable_{k}"] = len(values) - len(ok)
    return out


def weight_sweep(pipe, adapters: list[tuple[str, str]], weights: list[float], prompts: list[str], out: Path,
                 palette: str | None = None, **gen) -> dict:
    """``adapters``: (name, path) pairs loaded once; at weight w every one of them is set to w."""
    from ltx_train.pipeline import LTXVideoPipeline

    out.mkdir(parents=True, exist_ok=True)
    names = [pipe.load_lora_weights(path, adapter_name=name, activate=False) for name, path in adapters]
    rows, report = [], {"adapters": dict(adapters), "prompts": prompts, "weights": {}}
    for w in weights:
        pipe.set_adapters(names, weights=[float(w)] * len(names))
        clips = pipe(prompts, **gen)
        scores = []
        for i, clip in enumerate(clips):
            LTXVideoPipeline.save(clip, out / f"w{w:g}_{i:02d}.mp4")
            s = {"pan_px_per_frame": camera_pan_score(clip.frames),
                 "edge_pan_px_per_frame": readable(room_edge_pan_score(clip.frames))}
            if palette:
                s["palette"] = palette_score(clip.frames, palette)
            scores.append(s)
        t = clips[0].frames.shape[0]
        rows.append(np.concatenate([c.frames[j] for c in clips for j in (0, t // 2, t - 1)], axis=1))
        report["weights"][f"{w:g}"] = {"clips": scores, **means(scores)}
    pipe.unload_lora_weights()
    write_png(out / "strip.png", np.concatenate(rows, axis=0))
    (out / "report.json").write_text(json.dumps(report, indent=2))
    return report
