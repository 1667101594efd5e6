# Converts a safetensors file into a detectron2-style PyTorch checkpoint, {"model": OrderedDict, "iteration": N},
# written by torch.save itself (Debian's python3-torch). Tests use it to check the real .pth loading path.
#   /usr/bin/python3 scripts/safetensors-to-pth.py in.safetensors out.pth
import collections
import json
import struct
import sys

import numpy as np
import torch

DTYPES = {"F32": np.float32, "F64": np.float64, "I64": np.int64, "I32": np.int32, "U8": np.uint8, "F16": np.float16}

src, dst = sys.argv[1], sys.argv[2]
raw = open(src, "rb").read()
(n,) = struct.unpack("<Q", raw[:8])
header = json.loads(raw[8 : 8 + n])
data = raw[8 + n :]
state = collections.OrderedDict()
for name, e in header.items():
    if name == "__metadata__":
        continue
    begin, end = e["data_offsets"]
    arr = np.frombuffer(data[begin:end], dtype=DTYPES[e["dtype"]]).reshape(e["shape"])
    state[name] = torch.from_numpy(arr.copy())
torch.save({"model": state, "iteration": 7}, dst)
