"""Training-step throughput and MFU of the joint DiT on one GPU (bf16 autocast, optional torch.compile).

    python bench/bench_dit.py --preset 1b --compile
    python bench/bench_dit.py --preset ltx2b --latent 13 24 32 --no-diffusers

Counts model FLOPs per training step as 3 x forward, forward = 2 x (each per-token weight x the
tokens it multiplies) + attention (QK^T and AV: 4 x B x N^2 x D per block). Per-token weights are
the trunk's qkv/proj/MLP and the in/out projections: adaLN and timestep MLPs run once per timestep
group, not per token, so counting them (the naive 6 x params x tokens, also printed) would inflate
MFU. When ``diffusers`` is importable, its ``LTXVideoTransformer3DModel`` with the same width,
depth and heads is timed in the same run on the same video tokens (it has cross-attention to the
text instead of joint attention, and no audio), and its FLOPs are counted the same way.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ltx_train.models.dit.dit import JointDiT  # noqa: E402
from ltx_train.models.dit.presets import preset  # noqa: E402

PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}   # dense bf16


def joint_dit_flops(model: JointDiT, b: int, nt: int, nv: int, na: int) -> tuple[float, float]:
    """(model FLOPs per training step, naive 6 * all params * tokens)."""
    cfg = model.cfg
    n = nt + nv + na
    trunk = sum(m.weight.numel() for blk in model.blocks
                for m in (blk.attn.qkv, blk.attn.proj, blk.mlp.fc1, blk.mlp.fc2))
    per_token = (trunk * n + model.text_in.weight.numel() * nt
                 + (model.video_in.weight.numel() + model.video_out.linear.weight.numel()) * nv
                 + (model.audio_in.weight.numel() + model.audio_out.linear.weight.numel()) * na)
    if model.audio_text_in is not None:
        per_token += model.audio_text_in.weight.numel() * nt
    fwd = 2 * b * per_token + 4 * b * n * n * cfg.width * cfg.depth
    return 3.0 * fwd, 6.0 * model.num_params() * b * n


def ltx_video_flops(model: nn.Module, b: int, nv: int, lt: int, width: int, depth: int) -> float:
    fwd = 0
    for name, m in model.named_modules():
        if not isinstance(m, nn.Linear) or "time_embed" in name or "norm_out" in name:
            continue
        text_side = "caption_projection" in name or "attn2.to_k" in name or "attn2.to_v" in name
        fwd += 2 * b * m.weight.numel() * (lt if text_side else nv)
    fwd += depth * 4 * b * width * (nv * nv + nv * lt)
    return 3.0 * fwd


def time_steps(step, warmup: int, steps: int) -> float:
    """Mean seconds per step after ``warmup`` steps (CUDA events)."""
    for _ in range(warmup):
        step()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for _ in range(steps):
        step()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / 1000.0 / steps


def profile_step(step, rows: int) -> None:
    """Print the ``rows`` CUDA kernels that take the most time in one step."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        step()
        torch.cuda.synchronize()
    print(prof.key_averages().table(sort_by="cuda_time_total", row_limit=rows, max_name_column_width=70))


def make_step(model: nn.Module, forward, lr: float = 1e-4):
    opt = torch.optim.AdamW(model.parameters(), lr=lr, fused=True)

    def step():
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = forward(model)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    return step


def bench_cfg(args, **overrides):
    """The preset, with ``--heads`` (same width, so head_dim = width / heads) applied to every model timed."""
    if args.heads:
        overrides["heads"] = args.heads
    return preset(args.preset, **overrides)


def compile_diffusers(model: nn.Module, args) -> nn.Module:
    """The module to call: eager, the whole model compiled, or its repeated blocks compiled in place
    (diffusers' own ``compile_repeated_blocks``, "regional compilation": the way it recommends, and the
    way ours is compiled in training, ``model.compile=true``)."""
    if not args.compile or args.diffusers_eager:
        return model
    if args.diffusers_compile == "regional":
        model.compile_repeated_blocks()
        return model
    return torch.compile(model)


def bench_joint(args, device) -> dict:
    cfg = bench_cfg(args, modulation=args.modulation)
    model = JointDiT(cfg).to(device)
    if args.grad_ckpt:
        from ltx_train.parallelize import checkpoint_blocks
        checkpoint_blocks(model)
    b, (tv, hv, wv) = args.batch, args.latent
    seconds = ((tv - 1) * cfg.temporal_compression + 1) / cfg.fps
    ta = round(seconds * cfg.audio_sample_rate / (cfg.audio_hop_length * cfg.audio_compression))
    pt, ph, pw = cfg.patch_size
    nv, nt = (tv // pt) * (hv // ph) * (wv // pw), args.text_tokens
    g = torch.Generator(device).manual_seed(0)
    video = torch.randn(b, cfg.video_channels, tv, hv, wv, device=device, generator=g)
    audio = torch.randn(b, cfg.audio_channels, ta, device=device, generator=g)
    text = torch.randn(b, nt, cfg.text_dim, device=device, generator=g)
    mask = torch.ones(b, nt, dtype=torch.bool, device=device)
    mask[:, nt - nt // 4:] = False          # a quarter of the text is padding
    t = torch.rand(b, device=device, generator=g)
    tv_target, ta_target = torch.randn_like(video), torch.randn_like(audio)
    fwd_model = torch.compile(model) if args.compile else model

    cond = None
    if args.cond_frame:   # as in DiTModule training: latent frame 0 kept clean -> per-token-frame timesteps
        cond = torch.zeros(b, tv, dtype=torch.bool, device=device)
        cond[:, 0] = True

    def forward(m):
        out = fwd_model(video, audio, t, text, None if args.no_text_mask else mask, cond_mask=cond)
        return F.mse_loss(out["video"].float(), tv_target) + F.mse_loss(out["audio"].float(), ta_target)

    torch.cuda.reset_peak_memory_stats()
    step = make_step(model, forward)
    sec = time_steps(step, args.warmup, args.steps)
    if args.profile:
        profile_step(step, args.profile)
    flops, naive = joint_dit_flops(model, b, nt, nv, ta)
    return {"model": f"JointDiT[{args.preset}" + (f", {args.heads} heads]" if args.heads else "]"), "params": model.num_params(), "tokens": b * (nt + nv + ta),
            "video_tokens": b * nv, "step_s": sec, "flops": flops, "naive_flops": naive,
            "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30}


def compiled_tag(args) -> str:
    if not args.compile or args.diffusers_eager:
        return " (eager)"
    return f" ({args.diffusers_compile} compile)"


def bench_diffusers(args, device) -> dict | None:
    try:
        from diffusers import LTXVideoTransformer3DModel
    except ImportError:
        print("diffusers not importable: skipping the LTXVideoTransformer3DModel comparison")
        return None
    cfg = bench_cfg(args)
    model = LTXVideoTransformer3DModel(
        in_channels=cfg.video_channels, out_channels=cfg.video_channels, patch_size=1, patch_size_t=1,
        num_attention_heads=cfg.heads, attention_head_dim=cfg.head_dim, cross_attention_dim=cfg.width,
        num_layers=cfg.depth, caption_channels=cfg.text_dim).to(device)
    if args.grad_ckpt:
        model.enable_gradient_checkpointing()
    b, (tv, hv, wv), lt = args.batch, args.latent, args.text_tokens
    nv = tv * hv * wv
    g = torch.Generator(device).manual_seed(0)
    x = torch.randn(b, nv, cfg.video_channels, device=device, generator=g)
    text = torch.randn(b, lt, cfg.text_dim, device=device, generator=g)
    mask = torch.ones(b, lt, device=device)
    mask[:, lt - lt // 4:] = 0
    t = torch.rand(b, device=device, generator=g) * 1000
    target = torch.randn_like(x)
    fwd_model = compile_diffusers(model, args)

    def forward(m):
        out = fwd_model(x, text, t, mask, num_frames=tv, height=hv, width=wv,
                        rope_interpolation_scale=(cfg.temporal_compression / cfg.fps, 32, 32), return_dict=False)[0]
        return F.mse_loss(out.float(), target)

    torch.cuda.reset_peak_memory_stats()
    sec = time_steps(make_step(model, forward), args.warmup, args.steps)
    params = sum(p.numel() for p in model.parameters())
    return {"model": "diffusers.LTXVideoTransformer3DModel" + compiled_tag(args), "params": params, "tokens": b * nv, "video_tokens": b * nv,
            "step_s": sec, "flops": ltx_video_flops(model, b, nv, lt, cfg.width, cfg.depth),
            "naive_flops": 6.0 * params * b * nv, "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30}


def bench_diffusers_ltx2(args, device) -> dict | None:
    """diffusers' audio-video ``LTX2VideoTransformer3DModel`` at our preset's depth and video width (its
    audio stream at half the width, as LTX-2), on the same video, audio and text token counts. Timed for
    tokens/s and peak memory; its FLOPs are not counted (two streams with cross-modal attention)."""
    try:
        from diffusers import LTX2VideoTransformer3DModel
    except ImportError:
        print("diffusers (>= 0.42) not importable: skipping the LTX2VideoTransformer3DModel comparison")
        return None
    cfg = bench_cfg(args)
    model = LTX2VideoTransformer3DModel(
        in_channels=cfg.video_channels, out_channels=cfg.video_channels, num_attention_heads=cfg.heads,
        attention_head_dim=cfg.head_dim, cross_attention_dim=cfg.width, audio_in_channels=cfg.audio_channels,
        audio_out_channels=cfg.audio_channels, audio_num_attention_heads=cfg.heads // 2,
        audio_attention_head_dim=cfg.head_dim, audio_cross_attention_dim=cfg.width // 2, num_layers=cfg.depth,
        caption_channels=cfg.text_dim).to(device)
    if args.grad_ckpt:
        model.enable_gradient_checkpointing()
    b, (tv, hv, wv), lt = args.batch, args.latent, args.text_tokens
    seconds = ((tv - 1) * cfg.temporal_compression + 1) / cfg.fps
    ta = round(seconds * cfg.audio_sample_rate / (cfg.audio_hop_length * cfg.audio_compression))
    nv = tv * hv * wv
    g = torch.Generator(device).manual_seed(0)
    x = torch.randn(b, nv, cfg.video_channels, device=device, generator=g)
    a = torch.randn(b, ta, cfg.audio_channels, device=device, generator=g)
    text = torch.randn(b, lt, cfg.text_dim, device=device, generator=g)
    mask = torch.ones(b, lt, device=device)
    mask[:, lt - lt // 4:] = 0
    t = torch.rand(b, device=device, generator=g)
    tx, ta_target = torch.randn_like(x), torch.randn_like(a)
    fwd_model = compile_diffusers(model, args)

    def forward(m):
        v_out, a_out = fwd_model(
            hidden_states=x, audio_hidden_states=a, encoder_hidden_states=text, audio_encoder_hidden_states=text,
            timestep=(t * 1000)[:, None].expand(b, nv), audio_timestep=t * 1000, sigma=t,
            encoder_attention_mask=mask, audio_encoder_attention_mask=mask, num_frames=tv, height=hv, width=wv,
            fps=cfg.fps, audio_num_frames=ta, return_dict=False)
        return F.mse_loss(v_out.float(), tx) + F.mse_loss(a_out.float(), ta_target)

    torch.cuda.reset_peak_memory_stats()
    sec = time_steps(make_step(model, forward), args.warmup, args.steps)
    params = sum(p.numel() for p in model.parameters())
    return {"model": "diffusers.LTX2VideoTransformer3DModel" + compiled_tag(args),
            "params": params, "tokens": b * (nv + ta + lt), "video_tokens": b * nv, "step_s": sec, "flops": None,
            "naive_flops": 6.0 * params * b * (nv + ta), "peak_mem_gib": torch.cuda.max_memory_allocated() / 2**30}


def report(r: dict, peak_tflops: float) -> None:
    if r["flops"] is None:   # not counted: tokens/s and memory only
        r.update(tokens_per_s=r["tokens"] / r["step_s"], video_tokens_per_s=r["video_tokens"] / r["step_s"],
                 naive_mfu=r["naive_flops"] / r["step_s"] / 1e12 / peak_tflops)
        print(f"{r['model']}: {r['params'] / 1e6:.0f} M params, {r['tokens']} tokens/step | step {r['step_s'] * 1e3:.1f} ms"
              f" | {r['tokens_per_s']:.0f} tokens/s ({r['video_tokens_per_s']:.0f} video tokens/s)"
              f" | naive 6*params*tokens MFU {100 * r['naive_mfu']:.1f}% | peak mem {r['peak_mem_gib']:.1f} GiB")
        return
    tflops = r["flops"] / r["step_s"] / 1e12
    r.update(tflops=tflops, mfu=tflops / peak_tflops, naive_mfu=r["naive_flops"] / r["step_s"] / 1e12 / peak_tflops,
             tokens_per_s=r["tokens"] / r["step_s"], video_tokens_per_s=r["video_tokens"] / r["step_s"])
    print(f"{r['model']}: {r['params'] / 1e6:.0f} M params, {r['tokens']} tokens/step | step {r['step_s'] * 1e3:.1f} ms"
          f" | {r['tokens_per_s']:.0f} tokens/s ({r['video_tokens_per_s']:.0f} video tokens/s) | {tflops:.0f} TFLOP/s"
          f" | MFU {100 * r['mfu']:.1f}% (naive 6*params*tokens: {100 * r['naive_mfu']:.1f}%)"
          f" | peak mem {r['peak_mem_gib']:.1f} GiB")


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--preset", default="1b")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--latent", type=int, nargs=3, default=[13, 24, 32], metavar=("T", "H", "W"),
                   help="video latent grid (default: 97 frames at 768x1024 with an 8x32x32 VAE -> 9984 tokens)")
    p.add_argument("--text-tokens", type=int, default=192, help="connector tokens (128 registers + 64 text)")
    p.add_argument("--modulation", default="single", choices=["single", "block"])
    p.add_argument("--compile", action="store_true")
    p.add_argument("--grad-ckpt", action="store_true")
    p.add_argument("--no-text-mask", action="store_true",
                   help="no key padding mask, as with the connector's register_mode='replace' (unmasked kernels)")
    p.add_argument("--cond-frame", action="store_true",
                   help="condition on a clean first latent frame, as training does (per-token-frame modulation)")
    p.add_argument("--index-gather", action="store_true",
                   help="with --cond-frame: broadcast the modulation by advanced indexing (the old path) for an A/B")
    p.add_argument("--no-diffusers", action="store_true")
    p.add_argument("--no-ours", action="store_true", help="time only diffusers' models (ours measured in another call)")
    p.add_argument("--ltx2", action="store_true",
                   help="also time diffusers' audio-video LTX2VideoTransformer3DModel at the matched size")
    p.add_argument("--diffusers-eager", action="store_true", help="with --compile: run diffusers' models eager")
    p.add_argument("--diffusers-compile", default="regional", choices=["regional", "full"],
                   help="with --compile: diffusers' compile_repeated_blocks (its recommended way) or torch.compile(model)")
    p.add_argument("--heads", type=int, default=None,
                   help="override the preset's head count at the same width (e.g. ltx2b --heads 16: head dim 128)")
    p.add_argument("--qkv-contiguous", action="store_true",
                   help="copy q, k, v to contiguous (B, H, N, D) before SDPA (an A/B of the kernel's input layout)")
    p.add_argument("--sdpa", default="auto", choices=["auto", "cudnn", "flash", "efficient"],
                   help="force one SDPA backend for our model (default: cuDNN, flash, efficient, math in turn)")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--peak-tflops", type=float, default=None, help="dense bf16 peak (default from the GPU name)")
    p.add_argument("--profile", type=int, default=0, metavar="ROWS", help="print the top CUDA kernels of one step")
    p.add_argument("--json", default=None, help="also write the results here")
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        print("bench_dit needs a CUDA GPU; nothing to measure on CPU")
        return 0
    device = torch.device("cuda")
    torch.backends.cuda.matmul.allow_tf32 = True
    if args.index_gather:
        from ltx_train.models.dit import layers
        index = {}   # built once per layout, as the old path built its group index once per forward

        def gather(rows, runs):
            if runs not in index:
                index[runs] = torch.tensor([g for g, n in runs for _ in range(n)], device=rows.device)
            return rows[:, index[runs]]
        layers.expand_runs = gather
    if args.qkv_contiguous:   # A/B: q, k, v copied to contiguous (B, H, N, D) before SDPA (bench_attention.py)
        from ltx_train.models.dit import layers
        strided = layers.attention
        layers.attention = lambda q, k, v, mask=None: strided(q.contiguous(), k.contiguous(), v.contiguous(), mask)
    if args.sdpa != "auto":
        from torch.nn.attention import SDPBackend

        from ltx_train.models.dit import layers
        layers.SDPA_PRIORITY = [{"cudnn": SDPBackend.CUDNN_ATTENTION, "flash": SDPBackend.FLASH_ATTENTION,
                                 "efficient": SDPBackend.EFFICIENT_ATTENTION}[args.sdpa]]
    name = torch.cuda.get_device_name()
    peak = args.peak_tflops or next((v for k, v in PEAK_TFLOPS.items() if k in name), 989.0)
    print(f"{name}, torch {torch.__version__}, peak {peak:.0f} TFLOP/s bf16, compile={args.compile}, sdpa={args.sdpa}, "
          f"grad_ckpt={args.grad_ckpt}, text_mask={not args.no_text_mask}, cond_frame={args.cond_frame}, "
          f"index_gather={args.index_gather}, qkv_contiguous={args.qkv_contiguous}, heads={bench_cfg(args).heads} x {bench_cfg(args).head_dim}")
    results = []
    fns = (None if args.no_ours else bench_joint, None if args.no_diffusers else bench_diffusers,
           bench_diffusers_ltx2 if args.ltx2 and not args.no_diffusers else None)
    for fn in fns:
        if fn is None:
            continue
        t0 = time.time()
        r = fn(args, device)
        if r is not None:
            report(r, peak)
            r["wall_s"] = time.time() - t0
            results.append(r)
        torch.cuda.empty_cache()
    ours = None if args.no_ours or not results else results[0]
    for theirs in results[1:] if ours else []:
        print(f"video tokens/s ours / {theirs['model']}: {ours['video_tokens_per_s'] / theirs['video_tokens_per_s']:.2f}x"
              f"; peak memory ours / theirs: {ours['peak_mem_gib'] / theirs['peak_mem_gib']:.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"device": name, "args": vars(args), "results": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
