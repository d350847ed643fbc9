"""Specifications of the flow-matching math and the samplers."""
import math

import pytest
import torch

from ltx_train.diffusion.flow import (add_noise, flow_loss, get_sigmas, predict_x0, sample_timesteps, shift_mu,
                                      time_shift, velocity_target)
from ltx_train.diffusion.samplers import cfg_model_fn, guided_model_fn, sample_euler, sample_heun



def test_noising_interpolates_data_to_noise_and_velocity_is_its_time_derivative():
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(3, 4, 5, generator=g), torch.randn(3, 4, 5, generator=g)
    assert torch.equal(add_noise(x0, noise, torch.zeros(3)), x0)
    assert torch.equal(add_noise(x0, noise, torch.ones(3)), noise)
    t, h = torch.tensor([0.2, 0.5, 0.7]), 1e-3
    finite_diff = (add_noise(x0, noise, t + h) - add_noise(x0, noise, t)) / h
    torch.testing.assert_close(finite_diff, velocity_target(x0, noise), atol=1e-3, rtol=1e-3)
    xt = add_noise(x0, noise, t)
    torch.testing.assert_close(predict_x0(xt, velocity_target(x0, noise), t), x0, atol=1e-5, rtol=1e-5)


def test_flow_loss_is_a_per_sample_mean_and_respects_the_mask():
    pred, target = torch.zeros(2, 3, 4), torch.ones(2, 3, 4)
    target[1] = 2.0
    torch.testing.assert_close(flow_loss(pred, target), torch.tensor([1.0, 4.0]))
    mask = torch.zeros(2, 3, 1, dtype=torch.bool)
    mask[0, 0] = True
    target[0, 0] = 3.0
    torch.testing.assert_close(flow_loss(pred, target, mask), torch.tensor([9.0, 0.0]))


def test_time_shift_fixes_endpoints_and_grows_with_sequence_length():
    assert shift_mu(256) == pytest.approx(0.5) and shift_mu(4096) == pytest.approx(1.15)
    t = torch.linspace(0, 1, 11)
    prev = None
    for seq_len in (64, 256, 1024, 4096, 16384):
        s = time_shift(shift_mu(seq_len), 1.0, t)
        assert s[0] == 0 and s[-1] == 1
        assert torch.all(s[1:] > s[:-1])  # monotone in t
        if prev is not None:
            assert torch.all(s[1:-1] > prev[1:-1])  # longer sequence -> noisier times
        prev = s


def test_sample_timesteps_are_logit_normal_in_unit_interval_and_reproducible():
    t1 = sample_timesteps(4096, 256, torch.Generator().manual_seed(1), shift=False)
    t2 = sample_timesteps(4096, 256, torch.Generator().manual_seed(1), shift=False)
    assert torch.equal(t1, t2) and t1.shape == (4096,)
    assert 0 < t1.min() and t1.max() < 1
    logits = torch.logit(t1)
    assert abs(logits.mean().item()) < 0.1 and abs(logits.std().item() - 1) < 0.1
    short = sample_timesteps(4096, 256, torch.Generator().manual_seed(1)).mean()
    long = sample_timesteps(4096, 8192, torch.Generator().manual_seed(1)).mean()
    assert long > short


def test_sampling_schedule_runs_from_one_to_zero():
    for shift in (False, True):
        s = get_sigmas(10, 2048, shift=shift)
        assert s.shape == (11,) and s[0] == 1 and s[-1] == 0
        assert torch.all(s[1:] < s[:-1])


def gaussian_flow(m: float, s: float):
    """Exact rectified-flow velocity for data N(m, s^2) and noise N(0, 1), and its ODE solution.

    x_t = (1-t) m + sigma_t z with sigma_t = sqrt((1-t)^2 s^2 + t^2) maps noise z (t=1) to m + s z (t=0).
    """
    def v(x, t):
        sig = torch.sqrt((1 - t) ** 2 * s**2 + t**2)
        dsig = (t - (1 - t) * s**2) / sig
        return -m + dsig * (x - (1 - t) * m) / sig

    return v, (lambda z: m + s * z)


def test_samplers_integrate_a_joint_video_audio_state_and_heun_beats_euler():
    v_video, sol_video = gaussian_flow(m=2.0, s=0.5)
    v_audio, sol_audio = gaussian_flow(m=-1.0, s=0.2)

    def model_fn(x, sigma):
        t = sigma[:, None, None]
        return {"video": v_video(x["video"], t), "audio": v_audio(x["audio"], t[..., 0])}

    g = torch.Generator().manual_seed(0)
    z = {"video": torch.randn(4, 3, 5, generator=g, dtype=torch.float64),
         "audio": torch.randn(4, 7, generator=g, dtype=torch.float64)}
    exact = {"video": sol_video(z["video"]), "audio": sol_audio(z["audio"])}

    def error(sampler, steps):
        out = sampler(model_fn, z, get_sigmas(steps, 256, shift=False).double())
        return max((out[k] - exact[k]).abs().max().item() for k in exact)

    e_euler = [error(sample_euler, n) for n in (10, 40)]
    e_heun = [error(sample_heun, n) for n in (10, 40)]
    assert e_heun[0] < e_euler[0] / 3 and e_heun[1] < e_euler[1] / 3
    # 4x the steps: first order -> ~4x smaller error, second order -> ~16x
    assert 3 < e_euler[0] / e_euler[1] < 5
    assert e_heun[0] / e_heun[1] > 12


def test_samplers_accept_tuples_and_report_progress():
    v, sol = gaussian_flow(m=1.0, s=1.0)
    seen = []
    x = (torch.randn(2, 3, dtype=torch.float64),)
    out = sample_euler(lambda x, s: (v(x[0], s[:, None]),), x, get_sigmas(32, 256, shift=False).double(),
                       callback=lambda info: seen.append(info["i"]))
    assert isinstance(out, tuple) and seen == list(range(32))
    torch.testing.assert_close(out[0], sol(x[0]), atol=0.1, rtol=0)


def test_cfg_combines_conditional_and_unconditional_velocities():
    def model(x, sigma, text):
        return {"video": x["video"] * 0 + text}

    x = {"video": torch.zeros(2, 3)}
    fn = cfg_model_fn(model, {"text": 2.0}, {"text": 1.0}, scale=3.0)
    assert torch.allclose(fn(x, torch.ones(2))["video"], torch.full((2, 3), 1.0 + 3.0 * (2.0 - 1.0)))
    fn1 = cfg_model_fn(model, {"text": 2.0}, {"text": 1.0}, scale=1.0)
    assert torch.allclose(fn1(x, torch.ones(2))["video"], torch.full((2, 3), 2.0))
    assert math.isclose(float(get_sigmas(1, 256)[0]), 1.0)


def test_guidance_on_two_conditions_adds_one_term_per_dropped_condition():
    calls = []

    def model(x, sigma, text, image):
        calls.append((text, image))
        return {"video": x["video"] * 0 + (10.0 * text + image)}

    x = {"video": torch.zeros(1, 2)}
    cond = {"text": 1.0, "image": 1.0}
    fn = guided_model_fn(model, cond, [({"text": 0.0, "image": 1.0}, 3.0), ({"text": 1.0, "image": 0.0}, 2.0)])
    v = fn(x, torch.ones(1))["video"]
    # v_c + (3 - 1)(v_c - v_notext) + (2 - 1)(v_c - v_noimage) = 11 + 2 * 10 + 1 * 1
    assert torch.allclose(v, torch.full((1, 2), 32.0)) and len(calls) == 3
    calls.clear()
    fn = guided_model_fn(model, cond, [({"text": 0.0, "image": 1.0}, 3.0), ({"text": 1.0, "image": 0.0}, 1.0)])
    fn(x, torch.ones(1))
    assert len(calls) == 2, "a term of scale 1 costs no model call"
