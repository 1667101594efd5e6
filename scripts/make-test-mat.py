# Writes small MAT-files with SciPy (Debian python3-scipy) for test/data/matlab.test.ts:
#   /usr/bin/python3 scripts/make-test-mat.py
import json

import numpy as np
import scipy.io

rng = np.random.default_rng(0)
label = rng.integers(1, 460, size=(5, 7)).astype(np.uint16)  # a PASCAL-Context-459-style LabelMap
extra = np.arange(6, dtype=np.float64).reshape(2, 3) / 4
small = np.array([[1, 2], [3, 4]], dtype=np.uint8)
for name, compress in (("labelmap_compressed.mat", True), ("labelmap_plain.mat", False)):
    scipy.io.savemat(
        f"test/data/mat/{name}",
        {"LabelMap": label, "extra": extra, "small": small},
        do_compression=compress,
    )
json.dump(
    {"LabelMap": label.tolist(), "extra": extra.tolist(), "small": small.tolist()},
    open("test/data/mat/expected.json", "w"),
)
