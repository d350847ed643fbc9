#!/usr/bin/env bash
# The GAN stages under DeepSpeed on one GPU (issue 13: DeepSpeed for every stage), in the background:
#   bash scripts/gpu_gan_modes.sh start      # returns at once
#   bash scripts/gpu_gan_modes.sh wait 540   # waits <= 540 s, prints progress, packs $OUT
# tests: the DeepSpeed GPU tests of the pixel stages (tests/test_gpu_strategies.py -k "vae_stage or
# simultaneous"): the video VAE with its GAN and the vocoder with gan_update=simultaneous under ZeRO-2 /
# ZeRO-3 against trainer=gpu, merge and resume. (The two modes' training curves: scripts/gpu_vocoder.sh.)
set -uo pipefail
W=${W:-/tmp/ltx_gan}
PY=${PY:-python3}
. "$(dirname "$0")/gpu_env.sh"   # stage(), bg_main
RUNS=""

run_all() {
  stage tests $PY -m pytest -q -m gpu tests/test_gpu_strategies.py -k "vae_stage or simultaneous" \
    -p no:cacheprovider --basetemp "$W/pt"
}

pack() {
  tail -n 30 "$W/logs/tests.log" >"$OUT/tests_tail.txt" 2>/dev/null
}
bg_main "$@"
