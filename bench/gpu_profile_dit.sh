#!/usr/bin/env bash
# Where a `small` DiT training step's time goes on one GPU (device machine; see experiments/gpu_dit_throughput.md):
#   1. the DiT alone (bench_dit.py at the training shapes): modulation by runs vs the old index gather, eager vs compiled;
#   2. the whole Lightning loop (data workers, frozen encoders, DiT, physics heads, EMA) for DIT_STEPS steps under
#      Lightning's simple profiler, with `nvidia-smi dmon` sampling GPU utilisation every second.
#      TORCH_PROFILE=1: torch.profiler over 5 steps after TORCH_PROFILE_WAIT steps instead (CPU and CUDA time per
#      module and op, table in $OUT/fit-prof.txt); NO_BENCH=1 skips (1); DIT_ARGS adds overrides.
# Frozen VAEs for (2) are trained for 200 steps only: the profile needs their shapes, not their quality.
set -uo pipefail
W=${W:-/tmp/ltx_prof}; PY=${PY:-python3}; OUT=${OUT:-$W/out}
rm -rf "$W"; mkdir -p "$W" "$OUT"
. scripts/gpu_env.sh; gpu_env_setup "$W/text_encoder" >"$W/setup.log" 2>&1 || { cat "$W/setup.log"; exit 1; }
if [ -n "${TORCH_PROFILE:-}" ]; then
  PROFILER="+trainer.profiler={_target_: lightning.pytorch.profilers.PyTorchProfiler, dirpath: $OUT, filename: prof,"
  PROFILER+=" export_to_chrome: false, sort_by_key: cpu_time_total, row_limit: 60,"
  PROFILER+=" schedule: {_target_: torch.profiler.schedule, wait: ${TORCH_PROFILE_WAIT:-60}, warmup: 2, active: 5}}"
fi
B="$PY bench/bench_dit.py --preset small --batch 32 --latent 7 8 8 --text-tokens 160 --no-diffusers --steps 20"
if [ -z "${NO_BENCH:-}" ]; then
  $B --cond-frame; $B --cond-frame --index-gather; [ -n "${NO_COMPILE:-}" ] || $B --cond-frame --compile
fi
$PY -m ltx_train.data.cli synth --out "$W/s64" --train 4096 --val 64 --size 64 --frames 25 --workers 14 --shard-size 256 >/dev/null || exit 1
Q="~callbacks.progress trainer.enable_progress_bar=false trainer.log_every_n_steps=25 trainer=gpu
   data.train_shards=$W/s64/train-*.tar data.val_shards=$W/s64/val-*.tar data.num_workers=6"
for e in vae_tiny audio_vae_tiny; do
  $PY -m ltx_train.train experiment=$e $Q trainer.max_steps=200 trainer.val_check_interval=100 \
    trainer.limit_val_batches=1 hydra.run.dir="$W/$e" >"$W/$e.log" 2>&1 &
done
wait
nvidia-smi dmon -s u -d 1 >"$OUT/dmon.txt" 2>&1 &
dmon=$!
t0=$(date +%s)
$PY -m ltx_train.train experiment=dit_small_gpu dit=small $Q data.height=64 data.width=64 data.batch_size=32 \
  data.num_workers=10 trainer.max_steps=${DIT_STEPS:-400} trainer.max_time=00:00:04:00 trainer.val_check_interval=100000 \
  "${PROFILER:-+trainer.profiler=simple}" model.vae_checkpoint="$W/vae_tiny/checkpoints/last.ckpt" \
  model.audio_vae_checkpoint="$W/audio_vae_tiny/checkpoints/last.ckpt" model.text_encoder.path="$W/text_encoder" \
  hydra.run.dir="$W/dit" ${DIT_ARGS:-} >"$OUT/dit.log" 2>&1
echo "DiT fit: $(( $(date +%s) - t0 )) s wall (incl. start-up), last CSV step: $(tail -n 1 "$W/dit/csv/version_0/metrics.csv" | cut -d, -f5)"
kill $dmon
grep -E "Action|run_training_batch|dataloader_next|training_step|backward|optimizer_step|on_train_batch_end|batch_to_device|Total" "$OUT/dit.log" | tr -s " \t" " " | cut -c1-200 | head -40
awk 'NR>2 {print $3}' "$OUT/dmon.txt" | sort -n | uniq -c | sort -k2 -n | tr '\n' ' '; echo " (GPU util %: count of 1-s samples)"
sed -n 1,75p "$OUT"/fit-prof.txt 2>/dev/null | cut -c1-60,100-260
