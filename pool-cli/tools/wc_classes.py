# Probes the system `wc` (GNU coreutils, LC_ALL=C.UTF-8) over a range of code points and prints
# runs of character classes: P printable, S word separator, N not printable.
# Usage: python3 wc_classes.py 0 110000 > table.txt  (hex bounds; about 30 s)
import subprocess, sys
def cps(lo, hi):
    return [c for c in range(lo, hi) if not (0xD800 <= c <= 0xDFFF)]
def wcw(data):
    r = subprocess.run(["wc", "-w"], input=data, capture_output=True, env={"LC_ALL": "C.UTF-8"})
    return int(r.stdout.split()[0])
def counts(lo, hi):
    cs = cps(lo, hi)
    if not cs: return (0, 0, 0)
    p = wcw(b"".join((" %s " % chr(c)).encode() for c in cs))      # printable non-separators
    s = wcw(b"".join(("a%sb\n" % chr(c)).encode() for c in cs)) - len(cs)  # separators
    return (len(cs), p, s)
runs = []  # (lo, hi, cls) cls: P printable, S separator, N nonprint
def classify(lo, hi):
    n, p, s = counts(lo, hi)
    if n == 0: return
    if p == n: runs.append((lo, hi, 'P')); return
    if s == n: runs.append((lo, hi, 'S')); return
    if p == 0 and s == 0: runs.append((lo, hi, 'N')); return
    if hi - lo == 1:
        runs.append((lo, hi, '?%d%d' % (p, s))); return
    mid = (lo + hi) // 2
    classify(lo, mid); classify(mid, hi)
classify(int(sys.argv[1], 16), int(sys.argv[2], 16))
# merge
merged = []
for lo, hi, c in runs:
    if merged and merged[-1][2] == c and merged[-1][1] == lo:
        merged[-1] = (merged[-1][0], hi, c)
    else:
        merged.append((lo, hi, c))
for lo, hi, c in merged:
    print("%x %x %s" % (lo, hi, c))
