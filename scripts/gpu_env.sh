# Sourced by scripts/gpu_run.sh, gpu_study.sh, pretrain_reference.sh and gpu_latents.sh: the device set-up.
#   stage NAME CMD...   runs CMD with its log in $W/logs, leaves $W/status/NAME.ok or .fail
#   bg_main "$@"        the start | run | wait driver of a background GPU script (see below)
#   gpu_env_setup DIR   exports the environment, installs carried wheels (.wheels/) when hydra & co.
#                       are missing, and writes a stand-in text encoder to DIR.
gpu_env_setup() {
  export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1 HF_HUB_OFFLINE=1
  export PYTHONPATH=$PWD PYTHONUNBUFFERED=1
  if [ -d .wheels ] && ! $PY -c "import hydra, webdataset, decord, av" 2>/dev/null; then
    $PY -m pip install -q --no-deps .wheels/*.whl || return 1
  fi
  # The real MiniLM as carried fp16 safetensors (scripts/prepare_gpu_carry.sh) when it is there
  if [ -d .gpu_assets/minilm_fp16 ]; then rm -rf "$1"; cp -r .gpu_assets/minilm_fp16 "$1"; return 0; fi
  # else a randomly initialised 2-layer BERT with MiniLM's tokenizer (.gpu_assets/tokenizer) stands in:
  # fine to check the scripts, never for figures that are reported
  $PY - "$1" <<'PYEOF'
import sys, transformers
from transformers import BertConfig, BertModel
tok = transformers.AutoTokenizer.from_pretrained(".gpu_assets/tokenizer")
cfg = BertConfig(vocab_size=tok.vocab_size, hidden_size=128, num_hidden_layers=2, num_attention_heads=2, intermediate_size=256)
BertModel(cfg).save_pretrained(sys.argv[1]); tok.save_pretrained(sys.argv[1])
PYEOF
}

# site_install WHEEL...: carried wheels into /tmp/site, for a device Python that lacks hydra & co. (put
# /tmp/site on PYTHONPATH); offline, no deps, no bytecode
site_install() { $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site "$@"; }

# dmon_start FILE / dmon_stop: nvidia-smi dmon (SM utilisation, time-stamped, every second) in the background.
# It kills the dmon process itself: `( nvidia-smi dmon ... ) & kill $!` killed only the subshell, and the
# orphaned dmon went on writing into FILE through the later stages (sessions 5 and 6 until this fix).
dmon_start() { DMON=; command -v nvidia-smi >/dev/null || return 0; nvidia-smi dmon -s u -d "${2:-1}" -o T >"$1" 2>&1 & DMON=$!; }
dmon_stop() { [ -n "${DMON:-}" ] && kill "$DMON" 2>/dev/null; DMON=; }

stage() {   # stage NAME CMD... : runs CMD with its log, leaves NAME.ok or NAME.fail
  local name=$1; shift
  echo "[$(date +%T)] $name: start" >>"$W/timeline.txt"
  if "$@" >"$W/logs/$name.log" 2>&1; then touch "$W/status/$name.ok"; else touch "$W/status/$name.fail"; fi
  echo "[$(date +%T)] $name: $(ls "$W/status" | grep "^$name\." | cut -d. -f2)" >>"$W/timeline.txt"
  [ -e "$W/status/$name.ok" ]
}

# The driver of a background GPU script that defines run_all, pack and RUNS (its run folders under $W):
#   SCRIPT start       fresh $W, carried wheels (.wheels) when hydra is missing, `SCRIPT run` under setsid
#   SCRIPT run         run_all, then $W/status/all.done
#   SCRIPT wait [S]    waits <= S seconds (540) for all.done, packs into $OUT, prints the timeline, the
#                      last lines of every log and the last logged row of every run
bg_main() {
  case ${1:?start|wait} in
  start)
    rm -rf "$W"; mkdir -p "$W/logs" "$W/status"
    export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1 HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1
    if [ -d .wheels ] && ! $PY -c "import hydra, webdataset, deepspeed" 2>/dev/null; then   # the device lacks hydra & co.
      site_install $(ls .wheels/*.whl | grep -v torchao) || exit 1
    fi
    # torchao (quantize=int8) only where the device has none of its own
    if ls .wheels/torchao-*.whl >/dev/null 2>&1 && ! $PY -c "import torchao" 2>/dev/null; then
      site_install .wheels/torchao-*.whl || exit 1
    fi
    export PYTHONPATH=$PWD:/tmp/site
    W=$W setsid bash "$0" run </dev/null >"$W/logs/run.out" 2>&1 &
    echo "started: $W"
    ;;
  run) run_all; touch "$W/status/all.done" ;;
  wait)
    local deadline=$(( $(date +%s) + ${2:-540} ))
    while [ "$(date +%s)" -lt "$deadline" ]; do
      [ -e "$W/status/all.done" ] && { echo "all done"; break; }
      sleep 10
    done
    OUT=${OUT:-$W/out}; mkdir -p "$OUT"; pack
    cat "$W/timeline.txt"
    for f in "$W"/logs/*.log; do echo "== $f"; grep -v "^\s*$" "$f" | tail -3 | cut -c1-300; done
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader
    for run in $RUNS; do   # progress: last logged row
      [ -f "$W/$run/csv/version_0/metrics.csv" ] && echo "$run: $(wc -l <"$W/$run/csv/version_0/metrics.csv") rows; last: $(tail -n 1 "$W/$run/csv/version_0/metrics.csv" | cut -c1-200)"
    done
    ;;
  esac
}
