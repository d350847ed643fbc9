"""Real-footage clips as tensors, for scoring a video VAE where no video codec is installed (the GPU machine
has neither PyAV nor decord). Run here after `scripts/real_footage.sh` has cut its shards:

    SIZE=128 SYNTH_VAL=0 bash scripts/real_footage.sh assets/pretrained/ltx-mini-synth outputs/real_footage/s128
    .venv/bin/python scripts/real_footage_clips.py pack outputs/real_footage/s128 .gpu_assets/real128.pt --size 128
    # on the device, after training:
    python scripts/real_footage_clips.py score .gpu_assets/real128.pt <last.ckpt | pretrained dir> <out dir>

`pack` stores every val clip of each source exactly as the datamodule's validation decode gives it
(short side resized to SIZE, centre crop, FRAMES at FPS), as uint8; `score` runs the same
`evaluate_reconstruction` as `ltx-eval task=vae` (posterior mode, untiled) on them and writes
OUT/<source>/report.json, OUT/summary.json and a frame grid PNG of the first clip of each source.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch


def pack(root: Path, out: Path, size: int, frames: int, fps: float) -> None:
    from ltx_train.data.datamodule import VideoDataModule
    clips = {}
    for shards in sorted((root / "shards").iterdir()):
        dm = VideoDataModule(val_shards=str(shards), num_frames=frames, fps=fps, height=size, width=size)
        dm.setup("validate")
        vids, keys = [], []
        for b in dm.val_dataloader():
            vids.append(((b["video"].float() + 1) * 127.5).round().clamp(0, 255).to(torch.uint8))
            keys += list(b["key"])
        clips[shards.name] = {"video": torch.cat(vids), "keys": keys}
        print(f"{shards.name}: {len(keys)} clips {tuple(clips[shards.name]['video'].shape[1:])}")
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"size": size, "frames": frames, "fps": fps, "clips": clips}, out)
    print(f"wrote {out} ({out.stat().st_size / 2**20:.1f} MiB)")


def score(pt: Path, model: Path, out: Path, device: str) -> None:
    from ltx_train.eval.recon import evaluate_reconstruction
    from ltx_train.eval.video_io import frame_grid, to_uint8_frames, write_png
    from ltx_train.pretrained import component_from_checkpoint, load_component
    data = torch.load(pt, weights_only=True)
    vae = (component_from_checkpoint(model, "vae") if model.is_file() else load_component(model / "vae")).to(device)
    rows = {}
    for name, c in data["clips"].items():
        video = c["video"].float() / 127.5 - 1
        batches = [{"video": video[i:i + 4], "key": c["keys"][i:i + 4]} for i in range(0, len(video), 4)]
        r = evaluate_reconstruction(vae, batches, out / name, max_videos_to_save=0, fps=data["fps"])
        with torch.no_grad():
            x = video[:1].to(device)
            rec = vae.decode(vae.encode(x).mode()).float().clamp(-1, 1)
        write_png(out / name / "clip_000.png", frame_grid([to_uint8_frames(x[0]), to_uint8_frames(rec[0])]))
        rows[name] = {"clips": r["num_clips"], "psnr": r["psnr"], "ssim": r["ssim"], "clip_shape": r["clip_shape"]}
        print(f"{name}: {r['num_clips']} clips, PSNR {r['psnr']:.2f} dB, SSIM {r['ssim']:.3f}")
    (out / "summary.json").write_text(json.dumps({"model": str(model), "sources": rows}, indent=2))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("pack"); p.add_argument("root", type=Path); p.add_argument("out", type=Path)
    p.add_argument("--size", type=int, default=128); p.add_argument("--frames", type=int, default=25)
    p.add_argument("--fps", type=float, default=24.0)
    s = sub.add_parser("score"); s.add_argument("pt", type=Path); s.add_argument("model", type=Path)
    s.add_argument("out", type=Path); s.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = ap.parse_args()
    if a.cmd == "pack":
        pack(a.root, a.out, a.size, a.frames, a.fps)
    else:
        score(a.pt, a.model, a.out, a.device)


if __name__ == "__main__":
    main()
