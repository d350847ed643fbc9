"""SM utilisation of a training run from `nvidia-smi dmon -s u -o T` samples: the mean over the longest
stretch of samples above 30% (gaps of <= 2 samples allowed), i.e. the steady state without start-up,
compilation and shutdown.   python scripts/sm_window.py logs/*_sm.txt"""
import sys, statistics as st
def parse(path):
    out = []
    for line in open(path):
        p = line.split()
        if len(p) > 2 and p[0][0].isdigit() and ":" in p[0]:
            try: out.append((p[0], int(p[2])))
            except ValueError: pass
    return out
def window(vals, thr=30, gap=2):
    best, cur, start, lastgood = (0, 0), None, None, None
    segs = []
    i = 0
    s = None; miss = 0
    for i, v in enumerate(vals):
        if v > thr:
            if s is None: s = i
            e = i; miss = 0
        elif s is not None:
            miss += 1
            if miss > gap:
                segs.append((s, e)); s = None; miss = 0
    if s is not None: segs.append((s, e))
    return max(segs, key=lambda x: x[1] - x[0]) if segs else None
for f in sys.argv[1:]:
    d = parse(f); vals = [v for _, v in d]
    w = window(vals)
    if w:
        seg = vals[w[0]:w[1]+1]
        print(f"{f.split('/')[-1]:28s} {d[w[0]][0]}-{d[w[1]][0]} {len(seg)} s  SM mean {st.mean(seg):.1f} median {st.median(seg):.0f}")
