"""The README's main job on CPU: every trainable part briefly from scratch, then the shipped base with a LoRA.

    python scripts/demo.py            # (what `make demo` runs)
    python scripts/demo.py --scale 3  # every stage 3x longer

1. synthetic physics-world shards, and a 32-clip "sepia" look for the LoRA (skipped when present)
2. the tiny video VAE, then its reconstruction PSNR / SSIM
3. the tiny audio VAE and vocoder, then vocoder vs Griffin-Lim
4. the tiny connector + joint DiT (+ physics heads) on the frozen VAEs
5. that run exported as a pretrained directory (outputs/demo/pretrained), clips generated from it, and
   their physics / audio-video sync scored against real clips
6. a style LoRA trained on the shipped reference base (assets/pretrained/ltx-mini-synth), then the same
   prompts at adapter weights 0, 0.5 and 1: strip.png, the mp4s, and how far the look moved
Stage budgets are steps, not seconds, so the figures do not depend on how busy the machine is. Each
stage is the console command a researcher would type; the figures are printed at the end and written
to outputs/demo/summary.json.
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
STYLE = ROOT / "data" / "shards" / "style_sepia"
BASE = ROOT / "assets" / "pretrained" / "ltx-mini-synth"
# training steps per stage at --scale 1 (about 6 minutes of training on 2 cores in all)
STEPS = {"vae": 100, "audio_vae": 80, "vocoder": 120, "dit": 60, "lora": 150}


def run(stage: str, args: list[str], times: dict, done: list[str], total: int) -> None:
    exe = BIN / args[0]
    cmd = [str(exe) if exe.exists() else args[0], *args[1:]]
    done.append(stage)
    print(f"\n=== [{len(done)}/{total}] {stage}: {' '.join(args)}", flush=True)
    t0 = time.time()
    subprocess.run(cmd, cwd=ROOT, check=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    times[stage] = round(time.time() - t0, 1)
    print(f"=== {stage}: {times[stage]:.0f} s", flush=True)


def load_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.is_file() else {}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="outputs/demo")
    p.add_argument("--scale", type=float, default=1.0, help="multiplies every stage's step budget")
    a = p.parse_args()
    out = ROOT / a.out
    if out.exists():
        shutil.rmtree(out)
    steps = {k: max(2, int(v * a.scale)) for k, v in STEPS.items()}
    times: dict[str, float] = {}
    done: list[str] = []
    total = 11 + (not (SHARDS / "manifest.json").is_file()) + (not (STYLE / "manifest.json").is_file())
    go = lambda stage, args: run(stage, args, times, done, total)  # noqa: E731

    if not (SHARDS / "manifest.json").is_file():
        go("shards", ["ltx-shards", "synth", "--out", str(SHARDS), "--train", "256", "--val", "32", "--workers", "2"])
    if not (STYLE / "manifest.json").is_file():  # the same world in one look: what the style LoRA learns
        go("style shards", ["ltx-shards", "synth", "--out", str(STYLE), "--palette", "sepia", "--train", "32",
                            "--val", "4", "--seed", "5000", "--workers", "2", "--shard-size", "16"])
    quiet = ["logger=csv", "trainer.enable_progress_bar=false", "callbacks.progress_lines.every_n_steps=25",
             "trainer.limit_val_batches=2"]

    def budget(stage: str) -> list[str]:  # validate + checkpoint once, at the end
        return [f"trainer.max_steps={steps[stage]}", f"trainer.val_check_interval={steps[stage]}"]

    go("video VAE", ["ltx-train", "experiment=vae_tiny", *budget("vae"), "model.warmup_steps=20",
                     f"hydra.run.dir={out}/vae", *quiet])
    go("video VAE eval", ["ltx-eval", "task=vae", f"checkpoint={out}/vae/checkpoints/last.ckpt", "limit=16",
                          f"hydra.run.dir={out}/vae_eval"])
    go("audio VAE", ["ltx-train", "experiment=audio_vae_tiny", *budget("audio_vae"),
                     f"hydra.run.dir={out}/audio_vae", *quiet])
    # Lightning counts both optimisers' steps: 120 steps = 60 batches, the GAN on for the last quarter
    go("vocoder", ["ltx-train", "experiment=vocoder_tiny", *budget("vocoder"),
                   f"model.disc_start_step={steps['vocoder'] * 3 // 8}", f"hydra.run.dir={out}/vocoder", *quiet])
    go("audio eval", ["ltx-eval", "task=audio", f"checkpoint={out}/vocoder/checkpoints/last.ckpt",
                      f"audio_vae_checkpoint={out}/audio_vae/checkpoints/last.ckpt", "limit=16",
                      f"hydra.run.dir={out}/audio_eval"])
    go("connector + DiT", ["ltx-train", "experiment=dit_tiny", *budget("dit"), "model.warmup_steps=20",
                           "callbacks=default", f"model.vae_checkpoint={out}/vae/checkpoints/last.ckpt",
                           f"model.audio_vae_checkpoint={out}/audio_vae/checkpoints/last.ckpt",
                           f"hydra.run.dir={out}/dit", *quiet])
    go("export", ["ltx-export", f"checkpoint={out}/dit/checkpoints/last.ckpt",
                  f"vocoder_checkpoint={out}/vocoder/checkpoints/last.ckpt", f"out={out}/pretrained",
                  f"hydra.run.dir={out}/export"])
    # prompts: captions of held-out synthetic clips, so the physics they state is known exactly
    from ltx_train.eval.lora_effect import default_prompts
    prompts = default_prompts(4)
    go("generate", ["ltx-generate", f"pretrained={out}/pretrained", f"prompts={json.dumps(prompts)}", "steps=20",
                    f"hydra.run.dir={out}/generate"])
    go("physics eval", ["ltx-eval", "task=physics", f"generated={out}/generate", f"shards={SHARDS}/val-*.tar",
                        "limit=16", f"hydra.run.dir={out}/physics_eval"])
    go("style LoRA on the reference base", [
        "ltx-train", "experiment=lora_style", f"base={BASE}", f"data.train_shards={STYLE}/train-*.tar",
        f"data.val_shards={STYLE}/val-*.tar", *budget("lora"), "model.lr=5e-4", "model.warmup_steps=20",
        "callbacks=default", f"hydra.run.dir={out}/lora", *quiet])
    go("LoRA weights 0 / 0.5 / 1", ["ltx-eval", "task=lora", f"pretrained={BASE}", f"lora=[{out}/lora/adapter]",
                                    "weights=[0,0.5,1]", "palette=sepia", "limit=4", "steps=20",
                                    f"hydra.run.dir={out}/lora_eval"])

    lora = load_json(out / "lora_eval" / "report.json").get("weights", {})
    summary = {
        "video_vae": {k: v for k, v in load_json(out / "vae_eval" / "report.json").items()
                      if k in ("psnr", "ssim", "num_clips")},
        "audio": load_json(out / "audio_eval" / "report.json").get("rows"),
        "dit_final_metrics": {k: v for k, v in load_json(out / "dit" / "metrics.json").items() if k.startswith("val/")},
        "physics": {k: v.get("summary") for k, v in load_json(out / "physics_eval" / "report.json").items()},
        "lora_style_score_by_weight": {w: round(r["mean_palette"], 3) for w, r in lora.items()},
        "steps": steps,
        "seconds": times,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print("\n=== summary (also in", out / "summary.json", ")")
    print(json.dumps(summary, indent=2))
    print(f"\nOutputs in {out}:\n  pretrained/      this run's model (LTXVideoPipeline.from_pretrained)"
          f"\n  generate/*.mp4   clips with sound from it\n  lora/adapter/    the style adapter (peft format)"
          f"\n  lora_eval/strip.png  the reference base at adapter weights 0 / 0.5 / 1 (rows), frames 0, mid, last"
          f"\n  lora_eval/*.mp4  those clips; sepia score by weight: {summary['lora_style_score_by_weight']}")


if __name__ == "__main__":
    main()
