"""Fault injection on real ``ltx-train`` subprocesses (tiny runs, 8 steps): SIGKILL and SIGTERM of the VAE
at a random step, then a resume that must reproduce the uninterrupted run value for value; the DiT
SIGKILLed, resumed, stopped by SIGTERM, resumed again, to the same end; NaN batches that must be skipped
and then stop the run; a planted pickle that ``ltx-eval`` must refuse.

The random steps are printed (``-s`` shows them); set FAULT_STEP=<n> (FAULT_STEP2 for the DiT's
second fault) to replay one.
"""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from test_resume import frozen_vaes, losses  # noqa: F401 - a fixture: the DiT's VAEs

pytestmark = pytest.mark.faults
REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'tests'}", "OMP_NUM_THREADS": "1",
       "HYDRA_FULL_ERROR": "1"}
STEPS = 8


VAE = ["experiment=vae_tiny", "~callbacks.reconstruction_videos"]
DIT = ["experiment=dit_tiny", "~callbacks.sample_videos"]  # + the VAE checkpoints (frozen_vaes)


def ltx_train(out: Path, shards: Path, *overrides: str, stage: list[str] = VAE) -> list[str]:
    return [sys.executable, "-m", "ltx_train.train", *stage,
            f"data.train_shards={shards}/train-*.tar", f"data.val_shards={shards}/val-*.tar",
            "data.height=32", "data.width=32", "data.num_frames=9", "data.batch_size=2", "data.shuffle_buffer=4",
            f"trainer.max_steps={STEPS}", "trainer.val_check_interval=2", "trainer.limit_val_batches=1",
            "trainer.log_every_n_steps=1", "trainer.enable_progress_bar=false",
            "callbacks.model_checkpoint.keep_last=10", "+callbacks.steps._target_=fault_hooks.StepPrinter",
            f"hydra.run.dir={out}", f"paths.output_dir={out}", *overrides]


def run_until(cmd: list[str], step: int, signals: list[signal.Signals]) -> tuple[int, str]:
    """Start ``cmd``; once it prints ``STEP <step>``, send the first of ``signals`` (by pid), and each
    further one once the run has reported the previous (signals sent at once would arrive as one)."""
    proc = subprocess.Popen(cmd, cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines, pending = [], list(signals)
    for line in proc.stdout:
        lines.append(line)
        if line.strip() == f"STEP {step}" or (len(pending) < len(signals) and "saving a checkpoint" in line):
            proc.send_signal(pending.pop(0))
            if not pending:
                break
    lines.append(proc.stdout.read())
    return proc.wait(timeout=120), "".join(lines)


def fault_step(low: int = 3, high: int = STEPS - 2, var: str = "FAULT_STEP") -> int:
    step = int(os.environ.get(var) or random.randint(low, high))
    print(f"fault at step {step} (replay with {var}={step})")
    return step


def saved_after_kill(step: int) -> set[int]:
    """The step of last.ckpt after a SIGKILL at ``step`` (checkpoints every 2 steps): at an even step the
    kill may land before, during or after that step's save."""
    return {step - 1} if step % 2 else {step, step - 2}


def assert_same_run(reference: Path, resumed: Path) -> None:
    a, b = losses(reference), losses(resumed)
    assert sorted(b) == sorted(a) == list(range(STEPS))  # every step logged, none lost
    for step in a:
        assert b[step]["train/loss"] == a[step]["train/loss"], f"step {step}: {a[step]} vs {b[step]}"
    wa = torch.load(reference / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    wb = torch.load(resumed / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def uninterrupted(out: Path, shards: Path, stage: list[str]) -> Path:
    """A run that no fault interrupts, in this process (the same ``train()`` the CLI calls; a subprocess
    would only add its ~10 s of imports): the references, and the last resume after a fault. (The DiT's
    SIGTERM run is a resume through the CLI.)"""
    from hydra import compose, initialize_config_dir

    from ltx_train.hydra_utils import CONF_DIR
    from ltx_train.train import train
    overrides = [a for a in ltx_train(out, shards, stage=stage)[3:] if not a.startswith("hydra.")]
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        train(compose("train", overrides=[f"paths.root_dir={out}", *overrides]))
    return out


@pytest.fixture(scope="module")
def reference(synthetic_shards, tmp_path_factory) -> Path:
    return uninterrupted(tmp_path_factory.mktemp("reference"), synthetic_shards, VAE)


def test_sigkill_at_a_random_step_then_resume_reproduces_the_run(reference, synthetic_shards, tmp_path):
    step = fault_step()
    status, out = run_until(ltx_train(tmp_path, synthetic_shards), step, [signal.SIGKILL])
    assert status == -signal.SIGKILL, out[-2000:]
    last = tmp_path / "checkpoints" / "last.ckpt"
    saved = torch.load(last, weights_only=True)["global_step"]  # loadable, whatever the kill interrupted
    assert saved in saved_after_kill(step)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        uninterrupted(tmp_path / "new", synthetic_shards, [*VAE, f"ckpt_path={last}"])  # resumes in tmp_path
    assert_same_run(reference, tmp_path)
    assert (tmp_path / "checkpoints" / f"step{STEPS:06d}.ckpt").is_file()
    # the run's own checkpoints in its directory are what a resume in place expects: no warning about them
    assert not [w for w in caught if "exists and is not empty" in str(w.message)]


def test_sigterm_twice_saves_once_exits_143_and_resumes_exactly(reference, synthetic_shards, tmp_path):
    step = fault_step()
    status, out = run_until(ltx_train(tmp_path, synthetic_shards), step, [signal.SIGTERM, signal.SIGTERM])
    assert status == 128 + signal.SIGTERM, out[-2000:]
    assert "ignored: already stopping" in out
    saved = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert saved["global_step"] in (step, step + 1)  # the step the signal arrived in, or the one after
    assert (tmp_path / "checkpoints" / f"step{saved['global_step']:06d}.ckpt").is_file()
    uninterrupted(tmp_path / "new", synthetic_shards, [*VAE, f"ckpt_path={tmp_path}/checkpoints/last.ckpt"])
    assert_same_run(reference, tmp_path)


@pytest.fixture(scope="module")
def dit_stage(frozen_vaes) -> list[str]:  # noqa: F811
    return [*DIT, *frozen_vaes]


def test_dit_sigkill_then_sigterm_then_resume_reproduces_the_run_with_its_ema(dit_stage, synthetic_shards,
                                                                              tmp_path_factory):
    """SIGKILL at a random step; resumed, SIGTERM at a later random step: exit 143 and a checkpoint; resumed
    again (in this process) to the end: the losses of all 8 steps and the final weights, EMA included,
    are those of the uninterrupted run. It draws caption dropout (python), noise, timesteps and image
    conditioning (torch)."""
    reference = uninterrupted(tmp_path_factory.mktemp("dit_reference"), synthetic_shards, dit_stage)
    run = tmp_path_factory.mktemp("dit_faults")
    last = run / "checkpoints" / "last.ckpt"
    kill = fault_step(3, STEPS - 3)
    status, out = run_until(ltx_train(run, synthetic_shards, stage=dit_stage), kill, [signal.SIGKILL])
    assert status == -signal.SIGKILL, out[-2000:]
    saved = torch.load(last, weights_only=True)["global_step"]
    assert saved in saved_after_kill(kill)
    term = fault_step(saved + 1, STEPS - 2, "FAULT_STEP2")  # the save it makes leaves a step to resume
    status, out = run_until(ltx_train(run / "new", synthetic_shards, f"ckpt_path={last}", stage=dit_stage),
                            term, [signal.SIGTERM])
    assert status == 128 + signal.SIGTERM, out[-2000:]
    assert torch.load(last, weights_only=True)["global_step"] in (term, term + 1)
    uninterrupted(run / "new", synthetic_shards, [*dit_stage, f"ckpt_path={last}"])  # resumes in `run`
    assert_same_run(reference, run)
    assert int(torch.load(last, weights_only=True)["state_dict"]["ema.num_updates"]) == STEPS  # none lost


def test_nan_batches_are_skipped_then_stop_the_run_keeping_the_last_finite_checkpoint(synthetic_shards, tmp_path):
    cmd = ltx_train(tmp_path, synthetic_shards, "+callbacks.poison._target_=fault_hooks.PoisonBatches",
                    "+callbacks.poison.start=3", "callbacks.nonfinite.max_consecutive=3")
    done = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True)
    assert done.returncode != 0
    assert "NonFiniteError: 3 training batches in a row" in done.stderr
    assert "global step 6, batch keys: synth-" in done.stderr
    ckpts = tmp_path / "checkpoints"
    # step 4's checkpoint (one skipped step: the weights of step 3) is written; step 6's never is
    assert sorted(p.name for p in ckpts.iterdir()) == ["last.ckpt", "step000002.ckpt", "step000004.ckpt"]
    last = torch.load(ckpts / "last.ckpt", weights_only=True)
    assert last["global_step"] == 4 and last["callbacks"]["NonFiniteGuard"]["skipped"] == 1
    assert all(torch.isfinite(v).all() for v in last["state_dict"].values() if v.is_floating_point())


class Evil:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_ltx_eval_refuses_a_planted_pickle(synthetic_shards, tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"state_dict": {}, "hyper_parameters": {"vae": Evil(marker)}, "pytorch-lightning_version": "2.6"},
               tmp_path / "evil.ckpt")
    done = subprocess.run([sys.executable, "-m", "ltx_train.evaluate", "task=vae", f"checkpoint={tmp_path}/evil.ckpt",
                           f"shards={synthetic_shards}", f"out_dir={tmp_path}/eval", f"hydra.run.dir={tmp_path}/h"],
                          cwd=REPO, env=ENV, capture_output=True, text=True)
    assert done.returncode != 0
    assert "evil.ckpt: refusing to load this video VAE checkpoint" in done.stderr
    assert not marker.exists()
