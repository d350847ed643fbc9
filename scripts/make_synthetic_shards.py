"""Render the synthetic physics-world dataset into shards; same flags as ``ltx-shards synth``.

    python scripts/make_synthetic_shards.py --out data/shards/synthetic --train 256 --val 32 --workers 2
"""
import sys

from ltx_train.data.cli import main

if __name__ == "__main__":
    raise SystemExit(main(["synth", *sys.argv[1:]]))
