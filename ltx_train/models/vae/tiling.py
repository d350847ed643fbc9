"""Tiled encode / decode: overlapping space-time tiles blended linearly, so memory is bounded by
the tile size instead of the clip size.

Tiles are planned in latent units on every axis. Spatially a tile of ``spatial`` pixels is
``spatial / sc`` latents; neighbours overlap by ``spatial_overlap`` pixels. Across an overlap the
outer quarter on each side is taken from the tile that is *not* near its edge (a tile's outputs
next to its edge are the wrong ones: their receptive field was cut off) and the middle half is
cross-faded with complementary linear ramps (weights always sum to 1). So when the model's
receptive field reaches less than a quarter of the overlap, tiled == untiled up to rounding.

Temporally a tile covers latents ``a .. a + n`` = frames ``a*tc .. (a + n)*tc``, i.e. ``1 + tc*n``
frames, so every tile is itself a valid causal clip. Its first element (latent a / frame a*tc) is
what the causal model produces for "frame a*tc seen as a first frame" — a stand-in, not the real
latent of group a — so for a > 0 it gets weight 0 and the previous tile, which saw that group
properly, supplies it. Inside a tile the first groups see a truncated past (the tile start replicated
instead of the real earlier frames); the fade-in gives exactly those positions zero or low weight.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass
class TileConfig:
    spatial: int | None = 256        # tile edge in pixels, a multiple of sc; None: no spatial tiling
    spatial_overlap: int = 64        # pixels, multiple of sc, < spatial
    frames: int | None = 65          # tile length in frames, 1 + tc*n; None: no temporal tiling
    frames_overlap: int = 16         # frames, multiple of tc, < frames - 1


@dataclass
class _Span:
    """One tile along one axis: input slice, output slice, blend weights over the output slice."""
    in_start: int
    in_end: int
    out_start: int
    out_end: int
    weight: torch.Tensor


def _ramp_up(n: int) -> torch.Tensor:
    return torch.arange(1, n + 1, dtype=torch.float32) / (n + 1)


def _fade_in(w: torch.Tensor, ov: int) -> None:
    """Weights over the first ``ov`` entries: 0 for a quarter, a linear ramp, 1 for a quarter."""
    margin = ov // 4
    w[:margin] = 0.0
    w[margin:ov - margin] = _ramp_up(ov - 2 * margin)


def _fade_out(w: torch.Tensor, ov: int) -> None:
    """Mirror of ``_fade_in`` over the last ``ov`` entries (the two sum to 1 position by position)."""
    tail = torch.ones(ov)
    _fade_in(tail, ov)
    w[len(w) - ov:] *= 1.0 - tail


def _spatial_spans(size: int, tile: int | None, overlap: int, in_scale: int, out_scale: int) -> list[_Span]:
    """size, tile, overlap in latent units; in/out_scale: pixels per unit on each side."""
    if tile is None or tile >= size:
        return [_Span(0, size * in_scale, 0, size * out_scale, torch.ones(size * out_scale))]
    spans, start = [], 0
    while True:
        end = min(start + tile, size)
        w = torch.ones((end - start) * out_scale)
        ov = overlap * out_scale
        if start > 0 and ov:
            _fade_in(w, ov)
        if end < size and ov:
            _fade_out(w, ov)
        spans.append(_Span(start * in_scale, end * in_scale, start * out_scale, end * out_scale, w))
        if end >= size:
            return spans
        start += tile - overlap


def _temporal_spans(num_latents: int, n: int | None, overlap: int, in_tc: int, out_tc: int) -> list[_Span]:
    """Tiles of latents a..a+n (inclusive); a unit maps to ``in_tc`` / ``out_tc`` frames or latents."""
    last = num_latents - 1
    if n is None or n >= last:
        return [_Span(0, last * in_tc + 1, 0, last * out_tc + 1, torch.ones(last * out_tc + 1))]
    spans, a = [], 0
    while True:
        end = min(a + n, last)
        w = torch.ones((end - a) * out_tc + 1)
        ov = overlap * out_tc
        if a > 0:
            w[0] = 0.0  # stand-in for group a; the previous tile covers it with weight 1
            if ov:
                w1 = w[1:1 + ov]  # a view: fades in after the dropped stand-in
                _fade_in(w1, ov)
        if end < last and ov:
            _fade_out(w, ov)
        spans.append(_Span(a * in_tc, end * in_tc + 1, a * out_tc, end * out_tc + 1, w))
        if end >= last:
            return spans
        a += n - overlap


def _run_tiles(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
               ts: list[_Span], hs: list[_Span], ws: list[_Span]) -> torch.Tensor:
    out = None
    for t in ts:
        for h in hs:
            for w in ws:
                y = fn(x[:, :, t.in_start:t.in_end, h.in_start:h.in_end, w.in_start:w.in_end])
                if out is None:
                    shape = (y.shape[0], y.shape[1], ts[-1].out_end, hs[-1].out_end, ws[-1].out_end)
                    out = torch.zeros(shape, dtype=torch.float32, device=y.device)
                weight = (t.weight[:, None, None] * h.weight[None, :, None] * w.weight[None, None, :]).to(y.device)
                out[:, :, t.out_start:t.out_end, h.out_start:h.out_end, w.out_start:w.out_end] += y.float() * weight
    # the grid is a product of 1-D tilings, so the total weight factorises per axis
    total = [torch.zeros(spans[-1].out_end) for spans in (ts, hs, ws)]
    for tot, spans in zip(total, (ts, hs, ws)):
        for s in spans:
            tot[s.out_start:s.out_end] += s.weight
    norm = (total[0][:, None, None] * total[1][None, :, None] * total[2][None, None, :]).to(out.device)
    return (out / norm).to(y.dtype)


def _check(tile: TileConfig, sc: int, tc: int) -> tuple[int | None, int, int | None, int]:
    """-> (spatial tile, spatial overlap, temporal n, temporal overlap) in latent units."""
    s_tile = t_n = None
    s_ov = t_ov = 0
    if tile.spatial is not None:
        if tile.spatial % sc or tile.spatial_overlap % sc or not 0 <= tile.spatial_overlap < tile.spatial:
            raise ValueError(f"spatial tile {tile.spatial} / overlap {tile.spatial_overlap} must be multiples "
                             f"of {sc} with overlap < tile")
        s_tile, s_ov = tile.spatial // sc, tile.spatial_overlap // sc
    if tile.frames is not None:
        if (tile.frames - 1) % tc or tile.frames_overlap % tc or not 0 <= tile.frames_overlap < tile.frames - 1:
            raise ValueError(f"temporal tile {tile.frames} must be 1 + {tc}*n frames with an overlap that is a "
                             f"multiple of {tc} and < {tile.frames - 1}")
        t_n, t_ov = (tile.frames - 1) // tc, tile.frames_overlap // tc
    return s_tile, s_ov, t_n, t_ov


def tiled_encode(vae, x: torch.Tensor, tile: TileConfig) -> torch.Tensor:
    """x: (B, 3, 1 + tc*k, H, W) -> posterior params (B, 2*C_lat, 1 + k, H/sc, W/sc), tile by tile."""
    vae.check_input(x)
    sc, tc = vae.spatial_compression, vae.temporal_compression
    s_tile, s_ov, t_n, t_ov = _check(tile, sc, tc)
    lat_t, lat_h, lat_w = 1 + (x.shape[2] - 1) // tc, x.shape[3] // sc, x.shape[4] // sc
    return _run_tiles(vae.encode_params, x,
                      _temporal_spans(lat_t, t_n, t_ov, tc, 1),
                      _spatial_spans(lat_h, s_tile, s_ov, sc, 1),
                      _spatial_spans(lat_w, s_tile, s_ov, sc, 1))


def tiled_decode(vae, z: torch.Tensor, tile: TileConfig, timestep: torch.Tensor | None = None) -> torch.Tensor:
    """z: (B, C_lat, 1 + k, h, w) -> (B, 3, 1 + tc*k, h*sc, w*sc), tile by tile."""
    sc, tc = vae.spatial_compression, vae.temporal_compression
    s_tile, s_ov, t_n, t_ov = _check(tile, sc, tc)
    return _run_tiles(lambda zt: vae.decoder(zt, timestep), z,
                      _temporal_spans(z.shape[2], t_n, t_ov, 1, tc),
                      _spatial_spans(z.shape[3], s_tile, s_ov, 1, sc),
                      _spatial_spans(z.shape[4], s_tile, s_ov, 1, sc))
