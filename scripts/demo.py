"""The README's main job: every trainable part of the model, end to end, on the synthetic world, on CPU.

    python scripts/demo.py            # (what `make demo` runs)

1. synthetic physics-world shards (skipped when data/shards/synthetic/manifest.json exists)
2. train the tiny video VAE, then evaluate reconstruction (PSNR / SSIM)
3. train the tiny audio VAE and the tiny vocoder, then evaluate vocoder vs Griffin-Lim
4. train the tiny connector + joint DiT (+ physics heads) on the frozen VAEs
5. generate clips with sound from synthetic-world prompts and measure their physics and A/V sync
Each stage is the same console command a researcher would type; the figures are printed at the end
and written to outputs/demo/summary.json.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SHARDS = ROOT / "data" / "shards" / "synthetic"


def run(stage: str, args: list[str]) -> float:
    exe = BIN / args[0]
    cmd = [str(exe) if exe.exists() else args[0], *args[1:]]
    print(f"\n=== {stage}: {' '.join(args)}", flush=True)
    t0 = time.time()
    subprocess.run(cmd, cwd=ROOT, check=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    return time.time() - t0


def load_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="outputs/demo")
    p.add_argument("--minutes", type=float, default=1.0, help="scales every training stage's time budget")
    a = p.parse_args()
    out = ROOT / a.out
    if out.exists():
        shutil.rmtree(out)
    budget = lambda s: f"00:00:{int(s * a.minutes) // 60:02d}:{int(s * a.minutes) % 60:02d}"  # noqa: E731
    times = {}

    if not (SHARDS / "manifest.json").is_file():
        times["shards"] = run("shards", ["ltx-shards", "synth", "--out", str(SHARDS), "--train", "256",
                                         "--val", "32", "--workers", "2"])
    common = ["logger=csv", "~callbacks.progress", "trainer.enable_progress_bar=false"]
    times["vae"] = run("video VAE", ["ltx-train", "experiment=vae_tiny", f"trainer.max_time={budget(330)}",
                                     f"hydra.run.dir={out}/vae", *common])
    times["vae_eval"] = run("video VAE eval", ["ltx-eval", "task=vae", f"checkpoint={out}/vae/checkpoints/last.ckpt",
                                               f"hydra.run.dir={out}/vae_eval"])
    times["audio_vae"] = run("audio VAE", ["ltx-train", "experiment=audio_vae_tiny",
                                           f"trainer.max_time={budget(150)}", f"hydra.run.dir={out}/audio_vae", *common])
    times["vocoder"] = run("vocoder", ["ltx-train", "experiment=vocoder_tiny", f"trainer.max_time={budget(180)}",
                                       f"hydra.run.dir={out}/vocoder", *common])
    times["audio_eval"] = run("audio eval", ["ltx-eval", "task=audio",
                                             f"checkpoint={out}/vocoder/checkpoints/last.ckpt",
                                             f"audio_vae_checkpoint={out}/audio_vae/checkpoints/last.ckpt",
                                             f"hydra.run.dir={out}/audio_eval"])
    times["dit"] = run("connector + DiT", ["ltx-train", "experiment=dit_tiny", f"trainer.max_time={budget(330)}",
                                           f"model.vae_checkpoint={out}/vae/checkpoints/last.ckpt",
                                           f"model.audio_vae_checkpoint={out}/audio_vae/checkpoints/last.ckpt",
                                           f"hydra.run.dir={out}/dit", *common])
    # prompts: captions of held-out synthetic clips, so the physics they state is known exactly
    from ltx_train.data.synth import render_clip
    prompts = [render_clip(1_000_000_000 + i).caption for i in range(4)]
    times["generate"] = run("generate", ["ltx-generate", f"checkpoint={out}/dit/checkpoints/last.ckpt",
                                         f"vocoder_checkpoint={out}/vocoder/checkpoints/last.ckpt",
                                         f"prompts={json.dumps(prompts)}", "steps=20",
                                         f"hydra.run.dir={out}/generate"])
    times["physics_eval"] = run("physics eval", ["ltx-eval", "task=physics", f"generated={out}/generate",
                                                 f"shards={SHARDS}/val-*.tar", "limit=16",
                                                 f"hydra.run.dir={out}/physics_eval"])

    summary = {
        "video_vae": {k: v for k, v in load_json(out / "vae_eval" / "report.json").items()
                      if k in ("psnr", "ssim", "num_clips")},
        "audio": load_json(out / "audio_eval" / "report.json").get("rows"),
        "dit_final_metrics": {k: v for k, v in load_json(out / "dit" / "metrics.json").items() if k.startswith("val/")},
        "physics": {k: v.get("summary") for k, v in load_json(out / "physics_eval" / "report.json").items()},
        "seconds": {k: round(v, 1) for k, v in times.items()},
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print("\n=== summary (also in", out / "summary.json", ")")
    print(json.dumps(summary, indent=2))
    print(f"\nOutputs: {out}  (generated clips with sound: {out}/generate/*.mp4)")


if __name__ == "__main__":
    main()
