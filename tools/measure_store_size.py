"""Rewrite a label store through the current PreferenceStore and compare sizes (lossless check included).

    python tools/measure_store_size.py OLD.sqlite NEW.sqlite
"""
import os
import sys
import time

import torch

from prefrl.segments import Segments
from prefrl.store import PreferenceStore

src, dst = sys.argv[1], sys.argv[2]
if os.path.exists(dst):
    raise SystemExit(f"{dst} exists; give a new path")
old = PreferenceStore(src, capacity=600)
d, n = old.tensors(), len(old)
new = PreferenceStore(dst, capacity=16)
t = time.time()
for i in range(0, n, 16):
    sl = slice(i, min(n, i + 16))
    new.add(*(Segments(d["obs"][sl, k], d["act"][sl, k], d["true_reward"][sl, k]) for k in (0, 1)), d["mu"][sl])
new.close()
again = PreferenceStore(dst, capacity=600).tensors()
assert torch.equal(again["obs"], d["obs"]) and torch.equal(again["mu"], d["mu"]), "not identical"
print(f"{n} labels, obs {tuple(d['obs'].shape[1:])} {d['obs'].dtype}: {os.path.getsize(src) / 1e6:.1f} MB -> "
      f"{os.path.getsize(dst) / 1e6:.1f} MB, written in {time.time() - t:.1f} s, identical after reload")
