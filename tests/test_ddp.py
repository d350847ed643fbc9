"""Data parallel on CPU: `ltx-train ... trainer.devices=2 trainer.strategy=ddp` starts two processes
(gloo), as a user's command on one machine would. The tiny DiT trains a few steps from a latent cache,
and the test checks what data parallel promises: the ranks read disjoint samples, hold identical
weights afterwards, their loss matches one process at twice the batch, and a killed two-process run
resumes at the right step."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1",   # (and what PYTHONPATH held: the device's wheels)
       "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests"), *filter(None, [os.environ.get("PYTHONPATH")])])}


def ltx_train(run: Path, cache: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "ltx_train.train", "experiment=dit_tiny", "data=latents", f"data.path={cache}",
            "callbacks=default", "+callbacks.ranks._target_=fault_hooks.RecordRanks",
            "trainer.enable_progress_bar=false", "trainer.log_every_n_steps=1", "trainer.limit_val_batches=0",
            "trainer.val_check_interval=2", "model.warmup_steps=1", "model.total_steps=8", "model.ema_decay=0.9", f"hydra.run.dir={run}",
            "logger=csv", *extra]


def run_ok(cmd: list[str]) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def logged(run: Path, key: str) -> list[float]:
    """``key`` from a run's CSV logs, by step, over every version (a resumed run writes the next one)."""
    from ltx_train.plot import read_metrics
    by_step: dict[int, float] = {}
    for f in sorted(run.glob("csv/version_*/metrics.csv")):
        by_step.update(read_metrics(f).get(key, {}))
    return [by_step[s] for s in sorted(by_step)]


def ranks(run: Path, world: int) -> list[dict]:
    return [json.loads((run / f"rank{r}.json").read_text()) for r in range(world)]


def test_two_ranks_read_disjoint_samples_and_end_with_the_same_weights(latent_cache, tmp_path):
    run = tmp_path / "ddp"
    run_ok(ltx_train(run, latent_cache, "trainer=ddp_cpu", "data.batch_size=2",
                     "trainer.max_steps=4"))
    r0, r1 = ranks(run, 2)
    assert r0["world"] == r1["world"] == 2
    assert [b["step"] for b in r0["batches"]] == [b["step"] for b in r1["batches"]] == [1, 2, 3, 4]
    for epoch in (0, 1):  # 8 clips, 2 ranks x 2 steps x batch 2 per epoch: each clip once per epoch
        k0 = [k for b in r0["batches"] if b["epoch"] == epoch for k in b["keys"]]
        k1 = [k for b in r1["batches"] if b["epoch"] == epoch for k in b["keys"]]
        assert not set(k0) & set(k1), f"epoch {epoch}: both ranks read {set(k0) & set(k1)}"
        assert len(set(k0) | set(k1)) == 8
    assert r0["weights"] == r1["weights"], "the ranks' weights differ after the steps"
    # each rank draws its own noise and timesteps (seed_everything alone would give both the same)
    assert all(a["rng"] != b["rng"] for a, b in zip(r0["batches"], r1["batches"]))

    one = tmp_path / "one"
    run_ok(ltx_train(one, latent_cache, "trainer=cpu", "data.batch_size=4", "trainer.max_steps=4"))
    (single,) = ranks(one, 1)
    # same clips per step? not the same order (one rank permutes all 8; two ranks slice it), so compare
    # the loss level over the steps, which the noise and timesteps of a tiny run scatter
    ddp_loss = sum(r0["losses"] + r1["losses"]) / 8
    one_loss = sum(single["losses"]) / 4
    assert abs(ddp_loss - one_loss) < 0.25 * one_loss, (ddp_loss, one_loss)


def test_a_killed_two_process_run_resumes_at_its_step(latent_cache, tmp_path):
    run = tmp_path / "ddp"
    base = ["trainer=ddp_cpu", "data.batch_size=2", "callbacks.model_checkpoint.keep_last=10"]
    proc = subprocess.Popen(ltx_train(run, latent_cache, *base, "trainer.max_steps=50",
                                      "+callbacks.steps._target_=fault_hooks.StepPrinter"),
                            cwd=REPO, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    try:
        for line in proc.stdout:   # both ranks print; a checkpoint is written every 2 steps
            if line.startswith("STEP 3"):
                os.killpg(proc.pid, signal.SIGKILL)   # both processes, mid-run, no chance to save
                break
    finally:
        proc.wait(timeout=120)
    assert proc.returncode == -signal.SIGKILL
    ckpt = run / "checkpoints" / "last.ckpt"
    saved = torch.load(ckpt, weights_only=True)
    assert saved["global_step"] == 2 and len(saved["rng_states_per_rank"]) == 2
    run_ok(ltx_train(run, latent_cache, *base, "trainer.max_steps=4", f"ckpt_path={ckpt}"))
    r0, r1 = ranks(run, 2)
    assert [b["step"] for b in r0["batches"]] == [3, 4] == [b["step"] for b in r1["batches"]]
    assert r0["weights"] == r1["weights"]
    # exactly the uninterrupted run: the same clips, RNG streams and losses on each rank, the same weights
    whole = tmp_path / "whole"
    run_ok(ltx_train(whole, latent_cache, *base, "trainer.max_steps=4"))
    for resumed, straight in zip((r0, r1), ranks(whole, 2)):
        assert resumed["batches"] == straight["batches"][2:]
        assert resumed["losses"] == straight["losses"][2:]
        assert resumed["weights"] == straight["weights"]
    # steps 3-4 are epoch 1 (two steps an epoch), which the two ranks still split
    assert {b["epoch"] for b in r0["batches"] + r1["batches"]} == {1}
    k0 = {k for b in r0["batches"] for k in b["keys"]}
    k1 = {k for b in r1["batches"] for k in b["keys"]}
    assert not k0 & k1 and len(k0 | k1) == 8


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def two_nodes(run: Path, cache: Path, *extra: str) -> None:
    """The same training as two single-process "nodes" (node ranks 0 and 1, gloo over localhost), each
    launched by hand as a cluster's launcher would: MASTER_ADDR / MASTER_PORT / NODE_RANK."""
    port = free_port()
    procs = [subprocess.Popen(ltx_train(run, cache, "trainer=ddp_cpu", "trainer.devices=1", "trainer.num_nodes=2",
                                        "data.batch_size=2", *extra),
                              cwd=REPO, env={**ENV, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
                                             "NODE_RANK": str(node)},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for node in (0, 1)]
    outs = [p.communicate(timeout=600)[0] for p in procs]
    for node, (p, out) in enumerate(zip(procs, outs)):
        assert p.returncode == 0, f"node {node}:\n{out[-3000:]}"


def test_two_single_process_nodes_keep_the_same_promises(latent_cache, tmp_path):
    whole = tmp_path / "whole"
    two_nodes(whole, latent_cache, "trainer.max_steps=4")
    r0, r1 = ranks(whole, 2)
    assert r0["world"] == r1["world"] == 2
    for epoch in (0, 1):
        k0 = [k for b in r0["batches"] if b["epoch"] == epoch for k in b["keys"]]
        k1 = [k for b in r1["batches"] if b["epoch"] == epoch for k in b["keys"]]
        assert not set(k0) & set(k1) and len(set(k0) | set(k1)) == 8
    assert r0["weights"] == r1["weights"]
    assert all(a["rng"] != b["rng"] for a, b in zip(r0["batches"], r1["batches"]))

    run = tmp_path / "resumed"
    two_nodes(run, latent_cache, "trainer.max_steps=2")
    two_nodes(run, latent_cache, "trainer.max_steps=4", f"ckpt_path={run}/checkpoints/last.ckpt")
    for resumed, straight in zip(ranks(run, 2), (r0, r1)):
        assert resumed["batches"] == straight["batches"][2:]
        assert resumed["losses"] == straight["losses"][2:]
        assert resumed["weights"] == straight["weights"]


def test_a_lora_trains_under_ddp_with_one_adapter_for_both_ranks(latent_cache, tiny_base_dir, tmp_path):
    run = tmp_path / "lora"
    cmd = ltx_train(run, latent_cache, "trainer=ddp_cpu", "data.batch_size=2", "trainer.max_steps=2",
                    "model.lora.rank=4")
    cmd[cmd.index("experiment=dit_tiny")] = "experiment=lora_style"
    cmd.insert(4, f"base={tiny_base_dir}")
    run_ok([c for c in cmd if not c.startswith("model.ema_decay")])
    r0, r1 = ranks(run, 2)
    assert r0["weights"] == r1["weights"]
    assert not {k for b in r0["batches"] for k in b["keys"]} & {k for b in r1["batches"] for k in b["keys"]}
    assert (run / "adapter" / "adapter_model.safetensors").is_file()
    ckpt = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert ckpt["state_dict"] and all("lora_" in k or k == "stats_ready" for k in ckpt["state_dict"])
