"""Fault injection on real ``ltx-train`` subprocesses (tiny VAE runs, 8 steps): SIGKILL and SIGTERM at a
random step, then a resume that must reproduce the uninterrupted run value for value; NaN batches that
must be skipped and then stop the run; a planted pickle that ``ltx-eval`` must refuse.

The random step is printed (``-s`` shows it); set FAULT_STEP=<n> to replay one.
"""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from test_resume import losses

pytestmark = pytest.mark.faults
REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'tests'}", "OMP_NUM_THREADS": "1",
       "HYDRA_FULL_ERROR": "1"}
STEPS = 8


def ltx_train(out: Path, shards: Path, *overrides: str) -> list[str]:
    return [sys.executable, "-m", "ltx_train.train", "experiment=vae_tiny",
            f"data.train_shards={shards}/train-*.tar", f"data.val_shards={shards}/val-*.tar",
            "data.height=32", "data.width=32", "data.num_frames=9", "data.batch_size=2", "data.shuffle_buffer=4",
            f"trainer.max_steps={STEPS}", "trainer.val_check_interval=2", "trainer.limit_val_batches=1",
            "trainer.log_every_n_steps=1", "trainer.enable_progress_bar=false", "~callbacks.reconstruction_videos",
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


def fault_step() -> int:
    step = int(os.environ.get("FAULT_STEP") or random.randint(3, STEPS - 2))
    print(f"fault at step {step} (replay with FAULT_STEP={step})")
    return step


def assert_same_run(reference: Path, resumed: Path) -> None:
    a, b = losses(reference), losses(resumed)
    assert sorted(b) == sorted(a) == list(range(STEPS))  # every step logged, none lost
    for step in a:
        assert b[step]["train/loss"] == a[step]["train/loss"], f"step {step}: {a[step]} vs {b[step]}"
    wa = torch.load(reference / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    wb = torch.load(resumed / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.fixture(scope="module")
def reference(synthetic_shards, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reference")
    subprocess.run(ltx_train(out, synthetic_shards), cwd=REPO, env=ENV, check=True, capture_output=True)
    return out


def test_sigkill_at_a_random_step_then_resume_reproduces_the_run(reference, synthetic_shards, tmp_path):
    step = fault_step()
    status, out = run_until(ltx_train(tmp_path, synthetic_shards), step, [signal.SIGKILL])
    assert status == -signal.SIGKILL, out[-2000:]
    last = tmp_path / "checkpoints" / "last.ckpt"
    saved = torch.load(last, weights_only=True)["global_step"]  # loadable, whatever the kill interrupted
    # every 2 steps; at an even step the kill may land before, during or after that step's save
    assert saved in ({step - 1} if step % 2 else {step, step - 2})
    done = subprocess.run(ltx_train(tmp_path / "new", synthetic_shards, f"ckpt_path={last}"), cwd=REPO, env=ENV,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert_same_run(reference, tmp_path)
    assert (tmp_path / "checkpoints" / f"step{STEPS:06d}.ckpt").is_file()


def test_sigterm_twice_saves_once_exits_143_and_resumes_exactly(reference, synthetic_shards, tmp_path):
    step = fault_step()
    status, out = run_until(ltx_train(tmp_path, synthetic_shards), step, [signal.SIGTERM, signal.SIGTERM])
    assert status == 128 + signal.SIGTERM, out[-2000:]
    assert "ignored: already stopping" in out
    saved = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert saved["global_step"] in (step, step + 1)  # the step the signal arrived in, or the one after
    assert (tmp_path / "checkpoints" / f"step{saved['global_step']:06d}.ckpt").is_file()
    done = subprocess.run(ltx_train(tmp_path / "new", synthetic_shards, f"ckpt_path={tmp_path}/checkpoints/last.ckpt"),
                          cwd=REPO, env=ENV, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert_same_run(reference, tmp_path)


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
