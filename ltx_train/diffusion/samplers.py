"""Flow-matching ODE samplers (k-diffusion style: one pure function per sampler, same signature).

``model_fn(x, sigma, **extra_args) -> v`` predicts the velocity dx/dsigma (``noise - x0``, see
``flow.py``) with ``sigma (B,)``. ``x`` may be a tensor or a dict / tuple / list of tensors (e.g.
``{"video": (B, Cv, Tv, Hv, Wv), "audio": (B, Ca, Ta)}``) that are integrated jointly; ``v`` has the
same structure. ``sigmas`` is a decreasing schedule ending at 0 (``flow.get_sigmas``).
``callback({"x", "i", "sigma", "sigma_next", "denoised"})`` is called after every step.
"""
from __future__ import annotations

from typing import Any, Callable

import torch


def tree_map(fn: Callable, *trees: Any) -> Any:
    """Apply ``fn`` leaf-wise over tensors nested in dicts, tuples and lists of the same structure."""
    first = trees[0]
    if isinstance(first, dict):
        return {k: tree_map(fn, *(t[k] for t in trees)) for k in first}
    if isinstance(first, (tuple, list)):
        return type(first)(tree_map(fn, *parts) for parts in zip(*trees))
    return fn(*trees)


def _first_leaf(x: Any) -> torch.Tensor:
    while not torch.is_tensor(x):
        x = next(iter(x.values())) if isinstance(x, dict) else x[0]
    return x


def _sigma_batch(x: Any, sigma: torch.Tensor) -> torch.Tensor:
    leaf = _first_leaf(x)
    return sigma.to(leaf.device, torch.float32).expand(leaf.shape[0])


def _axpy(x: Any, a: torch.Tensor, v: Any) -> Any:
    """x + a * v leaf-wise (a a scalar tensor), in x's dtype: keep the state in float32 even when the
    model answers in bf16."""
    return tree_map(lambda xi, vi: xi + a.to(xi.dtype) * vi.to(xi.dtype), x, v)


@torch.no_grad()
def sample_euler(model_fn: Callable, x: Any, sigmas: torch.Tensor, extra_args: dict | None = None,
                 callback: Callable | None = None) -> Any:
    """First-order Euler: one model call per step."""
    extra_args = extra_args or {}
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        v = model_fn(x, _sigma_batch(x, sigma), **extra_args)
        if callback is not None:
            denoised = tree_map(lambda xi, vi: xi - sigma * vi, x, v)
            callback({"x": x, "i": i, "sigma": sigma, "sigma_next": sigma_next, "denoised": denoised})
        x = _axpy(x, sigma_next - sigma, v)
    return x


@torch.no_grad()
def sample_heun(model_fn: Callable, x: Any, sigmas: torch.Tensor, extra_args: dict | None = None,
                callback: Callable | None = None) -> Any:
    """Second-order Heun (trapezoid): two model calls per step, Euler on the last step to sigma = 0."""
    extra_args = extra_args or {}
    for i in range(len(sigmas) - 1):
        sigma, sigma_next = sigmas[i], sigmas[i + 1]
        dt = sigma_next - sigma
        v = model_fn(x, _sigma_batch(x, sigma), **extra_args)
        if callback is not None:
            denoised = tree_map(lambda xi, vi: xi - sigma * vi, x, v)
            callback({"x": x, "i": i, "sigma": sigma, "sigma_next": sigma_next, "denoised": denoised})
        x_euler = _axpy(x, dt, v)
        if float(sigma_next) == 0.0:
            x = x_euler
            continue
        v_next = model_fn(x_euler, _sigma_batch(x, sigma_next), **extra_args)
        x = _axpy(x, dt, tree_map(lambda a, b: (a + b.to(a.dtype)) / 2, v, v_next))
    return x


def cfg_model_fn(model: Callable, cond: dict, uncond: dict, scale: float) -> Callable:
    """Classifier-free guidance: ``v = v_uncond + scale * (v_cond - v_uncond)`` leaf-wise.

    ``model(x, sigma, **kwargs)`` is called with ``cond`` and ``uncond`` kwargs (e.g. text tokens of
    the caption and of the empty caption); ``scale == 1`` skips the unconditional call.
    Two calls rather than one doubled batch: cond and uncond text may differ in length.
    """
    return guided_model_fn(model, cond, [(uncond, scale)])


def guided_model_fn(model: Callable, cond: dict, uncond: list[tuple[dict, float]]) -> Callable:
    """Guidance on several conditions: ``v = v_cond + sum_k (scale_k - 1) (v_cond - v_k)``, where
    ``v_k`` drops one condition (``uncond[k] = (kwargs, scale_k)``). One term is classifier-free
    guidance (``cfg_model_fn``); image-to-video adds a second that drops the image (text kept).
    Terms of scale 1 cost no call."""
    terms = [(kw, float(s)) for kw, s in uncond if float(s) != 1.0]

    def fn(x, sigma, **extra):
        v_cond = model(x, sigma, **cond, **extra)
        v = v_cond
        for kw, s in terms:
            v_k = model(x, sigma, **kw, **extra)
            v = tree_map(lambda acc, c, u: acc + (s - 1) * (c - u), v, v_cond, v_k)
        return v

    return fn
