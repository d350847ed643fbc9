"""Hydra multirun sweeps and tracking, run as a user runs them: `ltx-train -m ...` in a subprocess on
tiny shards. One W&B run per job (offline, read back with wandb's own reader), Optuna presets that
return the best value and survive a diverged trial, one CSV file per run across resumes, ltx-plot."""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from ltx_train.modules.run_state import git_info

REPO = Path(__file__).resolve().parents[1]
TINY = ["trainer.max_steps=2", "trainer.val_check_interval=2", "trainer.limit_val_batches=1",
        "trainer.enable_progress_bar=false", "trainer.log_every_n_steps=1", "data.batch_size=2", "data.height=32",
        "data.width=32", "data.num_frames=9", "data.shuffle_buffer=4"]


def ltx_train(tmp: Path, shards: Path, sweep_dir: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}  # no key: W&B offline
    env.update(PYTHONPATH=f"{REPO}{os.pathsep}{REPO / 'tests'}", OMP_NUM_THREADS="1", WANDB_SILENT="true",
               # wandb's settings, cache and artifact staging in the test's folder, not in $HOME
               WANDB_CONFIG_DIR=str(tmp / "wandb_config"), WANDB_CACHE_DIR=str(tmp / "wandb_cache"),
               WANDB_DATA_DIR=str(tmp / "wandb_data"))
    cmd = [sys.executable, "-m", "ltx_train.train", "-m", "experiment=vae_tiny", *TINY,
           f"data.train_shards={shards}/train-*.tar", f"data.val_shards={shards}/val-*.tar",
           f"paths.root_dir={tmp}", f"hydra.sweep.dir={sweep_dir}", *args]
    return subprocess.run(cmd, cwd=tmp, env=env, capture_output=True, text=True, timeout=600)


def wandb_records(job_dir: Path) -> dict:
    """The job's one offline W&B run, from its .wandb log via `wandb leet inspect --json`:
    {"dir", "run" (id, group, job type, name), "config" (merged updates), "history", "exit"}."""
    runs = list((job_dir / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, f"{job_dir}: expected one W&B run directory, found {runs}"
    out = subprocess.run([Path(sys.executable).with_name("wandb"), "leet", "inspect", "--json", str(runs[0])],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    recs = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    config: dict = {}
    for r in recs:
        if r["type"] in ("run", "config"):
            config.update(r[r["type"]].get("config", r[r["type"]]).get("update", {}))
    return {"dir": runs[0], "run": next(r["run"] for r in recs if r["type"] == "run"), "config": config,
            "history": [r["history"]["item"] for r in recs if r["type"] == "history"],
            "exit": next((r["exit"] for r in recs if r["type"] == "exit"), None),
            "summary": {k: v for r in recs if r["type"] == "summary" for k, v in r["summary"].get("update", {}).items()}}


@pytest.fixture(scope="module")
def lr_sweep(synthetic_shards, tmp_path_factory):
    """The issue's command: two jobs of a basic-sweeper multirun with W&B (and CSV) logging."""
    tmp = tmp_path_factory.mktemp("lr_sweep")
    sweep = tmp / "outputs" / "vae_tiny" / "multiruns" / "lr"
    proc = ltx_train(tmp, synthetic_shards, sweep, "model.lr=1e-3,2e-3", "logger=many")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return sweep


def test_two_job_multirun_gives_two_wandb_runs_in_one_group(lr_sweep, synthetic_shards):
    jobs = [wandb_records(lr_sweep / str(i)) for i in (0, 1)]
    ids = {j["run"]["run_id"] for j in jobs}
    assert len(ids) == 2, "each job must be its own W&B run"
    assert {j["run"]["run_group"] for j in jobs} == {"vae_tiny/multiruns/lr"}
    assert {j["run"]["job_type"] for j in jobs} == {"vae"}
    assert [j["run"]["display_name"] for j in jobs] == ["vae_tiny#0 model.lr=0.001", "vae_tiny#1 model.lr=0.002"]
    manifest = hashlib.sha256((synthetic_shards / "manifest.json").read_bytes()).hexdigest()[:16]
    for job, lr in zip(jobs, (1e-3, 2e-3)):
        cfg = job["config"]
        assert cfg["model"]["lr"] == lr and cfg["task_name"] == "vae_tiny"   # the resolved config
        prov = cfg["provenance"]
        assert prov["git"] == git_info() and prov["git"]["commit"]
        assert f"model.lr={lr}" in prov["overrides"] and "logger=many" in prov["overrides"]
        assert prov["data"]["train_shards"]["sha256"] == manifest
        assert {"torch", "lightning", "hydra-core", "wandb"} <= set(prov["versions"])
        assert job["exit"] is not None and job["exit"].get("exit_code", 0) == 0, "the run must be finished"
        steps = [h for h in job["history"] if "train/loss" in h]
        assert steps and all(h["perf/step_time_s"] > 0 and "perf/data_wait_s" in h and "train/grad_norm" in h
                             for h in steps)
        assert any(k.startswith("lr/") for h in job["history"] for k in h)
        media = job["dir"] / "files" / "media"
        assert list(media.rglob("reconstructions_*.mp4")) and list(media.rglob("recon_metrics_*.table.json"))


def test_ltx_plot_draws_the_sweep(lr_sweep):
    from ltx_train.plot import find_runs, labels, main
    runs = find_runs([lr_sweep])
    assert len(runs) == 2 and labels(runs) == ["model.lr=0.001", "model.lr=0.002"]
    png = main([str(lr_sweep), "--metrics", "train/loss", "val/psnr"])
    assert png == lr_sweep / "curves.png" and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(KeyError, match="val/nope"):
        main([str(lr_sweep), "--metrics", "val/nope"])


def test_optuna_sweep_returns_the_best_value_and_survives_a_diverged_trial(synthetic_shards, tmp_path):
    sweep = tmp_path / "optuna"
    # seed 0 draws poison.start 0, 1000, 1000: the first trial diverges (NaN batches, NonFiniteError)
    proc = ltx_train(tmp_path, synthetic_shards, sweep, "hparams_search=vae_optuna", "hydra.sweeper.n_trials=3",
                     "hydra.sweeper.sampler.seed=0", "+callbacks.poison._target_=fault_hooks.PoisonBatches",
                     "+callbacks.poison.start=choice(0,1000)", "callbacks.nonfinite.max_consecutive=1",
                     "logger=wandb")
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = sorted((p for p in sweep.iterdir() if p.is_dir()), key=lambda p: int(p.name))
    assert len(jobs) == 3
    poisoned = ["+callbacks.poison.start=0" in yaml.safe_load((j / ".hydra" / "overrides.yaml").read_text())
                for j in jobs]
    assert poisoned[0] and not all(poisoned), "the seed must give a diverged trial before a healthy one"
    values = {}
    for job, bad in zip(jobs, poisoned):
        run = wandb_records(job)
        if bad:
            assert not (job / "metrics.json").exists()
            assert "run failed: NonFiniteError" in (job / "train.log").read_text()
            assert run["exit"]["exit_code"] == 1 and run["summary"]["error"].startswith("NonFiniteError")
        else:
            values[job.name] = json.loads((job / "metrics.json").read_text())["val/psnr"]
            assert run["exit"].get("exit_code", 0) == 0
    result = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert result["best_value"] == pytest.approx(max(values.values()))   # maximize val/psnr
    assert "Failed experiment" in proc.stderr + proc.stdout


def test_csv_logger_keeps_one_metrics_file_across_resumes(synthetic_shards, tmp_path):
    from test_entrypoints import cfg_for

    from ltx_train.train import train
    run, args = tmp_path / "run", ["experiment=vae_tiny", *TINY[1:], "callbacks.model_checkpoint.keep_last=10"]
    train(cfg_for("train", run, synthetic_shards, *args, "trainer.max_steps=2"))
    for steps in (4, 6):  # two resumes of the same run, each from its newest checkpoint
        train(cfg_for("train", tmp_path / "elsewhere", synthetic_shards, *args, f"trainer.max_steps={steps}",
                      f"ckpt_path={run}/checkpoints/last.ckpt"))
    files = list(run.rglob("metrics.csv"))
    assert files == [run / "csv" / "version_0" / "metrics.csv"], files
    from ltx_train.plot import read_metrics
    assert sorted(read_metrics(files[0])["train/loss"]) == list(range(6))
    assert not (tmp_path / "elsewhere").exists()


def test_objective_names_a_metric_the_run_did_not_log():
    from omegaconf import OmegaConf

    from ltx_train.config import ConfigError
    from ltx_train.train import objective
    cfg = OmegaConf.create({"optimized_metric": "val/psnrr"})
    with pytest.raises(ConfigError, match=r"optimized_metric: 'val/psnrr'.*val/psnr"):
        objective(cfg, {"val/psnr": 20.0})
    assert objective(OmegaConf.create({"optimized_metric": "val/psnr"}), {"val/psnr": 20.0}) == 20.0
    assert objective(OmegaConf.create({"optimized_metric": None}), {"val/psnr": 20.0}) is None


def test_physics_rows_judge_a_clip_against_its_prompt():
    import numpy as np

    from ltx_train.data.synth import SynthConfig, render_clip
    from ltx_train.modules.callbacks import PHYSICS_COLUMNS, physics_rows
    from ltx_train.pipeline import GeneratedClip
    cfg = SynthConfig()
    c = render_clip(0, cfg)
    clip = GeneratedClip(c.caption, c.frames, c.audio, cfg.fps, cfg.sample_rate)
    # a LoRA sample: adapter | base side by side; only the adapter half is tracked
    pair = GeneratedClip(c.caption, np.concatenate([c.frames, np.zeros_like(c.frames)], axis=2), c.audio,
                         cfg.fps, cfg.sample_rate)
    rows = physics_rows(7, [clip, pair], cfg.width)
    assert len(rows[0]) == len(PHYSICS_COLUMNS) and rows[0][:2] == [7, 0]
    row = dict(zip(PHYSICS_COLUMNS, rows[0]))
    assert row["objects_tracked"] == row["objects"] >= 1
    assert row["gravity_angle_deg"] < 15.0, row     # a real render: near the tracker's ceiling
    assert rows[1][3:] == rows[0][3:]


def test_dit_run_logs_samples_with_their_audio_and_a_physics_table(synthetic_shards, tmp_path, monkeypatch):
    from test_entrypoints import cfg_for

    from ltx_train.train import train
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    for k, v in dict(WANDB_SILENT="true", WANDB_CONFIG_DIR=tmp_path / "wbc", WANDB_CACHE_DIR=tmp_path / "wbk",
                     WANDB_DATA_DIR=tmp_path / "wbd").items():
        monkeypatch.setenv(k, str(v))
    for name in ("vae_tiny", "audio_vae_tiny"):
        train(cfg_for("train", tmp_path / name, synthetic_shards, f"experiment={name}", *TINY))
    out = tmp_path / "dit"
    train(cfg_for("train", out, synthetic_shards, "experiment=dit_tiny", *TINY, "logger=wandb",
                  "callbacks.sample_videos.steps=2", f"model.vae_checkpoint={tmp_path}/vae_tiny/checkpoints/last.ckpt",
                  f"model.audio_vae_checkpoint={tmp_path}/audio_vae_tiny/checkpoints/last.ckpt"))
    run = wandb_records(out)
    media = run["dir"] / "files" / "media"
    assert list(media.rglob("samples_*.mp4")) and list(media.rglob("audio_*.wav"))
    table = json.loads(next(media.rglob("physics_*.table.json")).read_text())
    assert table["columns"][3] == "gravity_angle_deg" and len(table["data"]) == 1
    assert run["run"]["job_type"] == "dit" and run["exit"].get("exit_code", 0) == 0
