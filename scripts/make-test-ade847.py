# Reference outputs for test/data/prepare-ade847.test.ts, computed with the libraries CAT-Seg's
# datasets/prepare_ade20k_full.py uses: OpenCV (Debian python3-opencv 4.6), Pillow (python3-pil, libjpeg-turbo)
# and NumPy. Writes test/data/ade847/{expected.json, ADE_val_00000100.jpg, ADE_val_00000100_seg.png,
# ADE_val_00000200.jpg, ADE_val_00000200_seg.png}.
#   /usr/bin/python3 scripts/make-test-ade847.py
# The procedure below restates that script's steps (decode, resize rule, cv2 resizes, id→trainId, PIL
# saves) in this project's own words; the test runs the TypeScript port on the same inputs.
import hashlib
import io
import json
import os

import cv2
import numpy as np
from PIL import Image

OUT = "test/data/ade847"
os.makedirs(OUT, exist_ok=True)


def noise(n, seed):
    """xorshift32 bytes (the test generates the same ones)."""
    x = seed & 0xFFFFFFFF or 1
    out = np.empty(n, np.uint32)
    for i in range(n):
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        out[i] = x
    return out


def sha(a):
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def target(w, h, max_size=512):
    if w >= h > max_size:
        return round(w / float(h) * max_size), max_size
    if h >= w > max_size:
        return max_size, round(h / float(w) * max_size)
    return None


table = json.load(open("assets/classes/ade847-ids.json"))
id_to_train = {r["id"]: r["trainId"] for r in table}


def to_train(lab):
    out = np.full(lab.shape, 65535, np.uint16)
    for v in np.unique(lab):
        if int(v) in id_to_train:
            out[lab == v] = id_to_train[int(v)]
    return out


expected = {"linear": [], "nearest": [], "jpeg": [], "samples": []}

# cv2 INTER_LINEAR on uint8, 1 and 3 channels: down, up, exact halving (INTER_AREA shortcut), odd sizes.
for k, (sw, sh, cn, dw, dh) in enumerate(
    [
        (37, 29, 3, 20, 15),
        (37, 29, 1, 21, 16),
        (40, 30, 3, 20, 15),
        (13, 11, 3, 29, 23),
        (64, 9, 1, 3, 5),
        (5, 40, 3, 7, 19),
        (90, 61, 3, 61, 41),
    ]
):
    seed = 1000 + k
    src = (noise(sw * sh * cn, seed) & 255).astype(np.uint8).reshape((sh, sw, cn) if cn == 3 else (sh, sw))
    dst = cv2.resize(src, (dw, dh), interpolation=cv2.INTER_LINEAR)
    expected["linear"].append(
        {"sw": sw, "sh": sh, "cn": cn, "dw": dw, "dh": dh, "seed": seed, "sha256": sha(dst), "head": dst.ravel()[:12].tolist()}
    )

# cv2 INTER_NEAREST on int32 id maps.
for k, (sw, sh, dw, dh) in enumerate([(37, 29, 20, 15), (10, 7, 23, 19), (683, 512, 512, 384), (31, 64, 7, 9)]):
    seed = 2000 + k
    src = (noise(sw * sh, seed) & 0x1FFF).astype(np.int32).reshape(sh, sw)
    dst = cv2.resize(src, (dw, dh), interpolation=cv2.INTER_NEAREST)
    expected["nearest"].append(
        {"sw": sw, "sh": sh, "dw": dw, "dh": dh, "seed": seed, "sha256": sha(dst.astype("<i4")), "head": dst.ravel()[:12].tolist()}
    )

# Image.fromarray(a).save(f) for an RGB and a greyscale array: the whole file's bytes.
for k, (w, h, cn) in enumerate([(35, 27, 3), (35, 27, 1), (64, 48, 3)]):
    seed = 3000 + k
    a = (noise(w * h * cn, seed) & 255).astype(np.uint8)
    # smooth it a little so that the JPEG is not pure noise
    a = a.reshape((h, w, cn) if cn == 3 else (h, w)) // 2 + 64
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="JPEG")
    expected["jpeg"].append({"w": w, "h": h, "cn": cn, "seed": seed, "sha256": hashlib.sha256(buf.getvalue()).hexdigest()})

# Two full samples: a 640×520 image (resized to 630×512) and a 300×200 one (kept), each with a full-format
# annotation holding mapped ids, unmapped ids and 0, and R values that are not multiples of 10.
ids = [2978, 312, 3148, 0, 246, 6655, 1831, 2855, 1125]
for name, (w, h) in (("ADE_val_00000100", (640, 520)), ("ADE_val_00000200", (300, 200))):
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack(
        [(xx * 255 // (w - 1)), (yy * 255 // (h - 1)), ((xx + 2 * yy) // 5 % 256)], axis=-1
    ).astype(np.uint8)
    Image.fromarray(img).save(f"{OUT}/{name}.jpg", quality=90)
    block = ((yy // 37) * 5 + (xx // 53)) % len(ids)
    cls = np.array(ids)[block]
    r = (cls // 256) * 10 + (xx % 10)  # floor(R/10) is the high part whatever the last digit
    g = cls % 256
    b = (xx * 3 + yy) % 256  # instance channel, ignored
    seg = np.stack([r, g, b], axis=-1).astype(np.uint8)
    Image.fromarray(seg).save(f"{OUT}/{name}_seg.png")

    # the reference steps
    im = np.asarray(Image.open(f"{OUT}/{name}.jpg"))
    s = np.array(Image.open(f"{OUT}/{name}_seg.png"))
    lab = (s[:, :, 0] / 10).astype(np.int32) * 256 + s[:, :, 1].astype(np.int32)
    t = target(im.shape[1], im.shape[0])
    if t:
        im = cv2.resize(im, t, interpolation=cv2.INTER_LINEAR)
        lab = cv2.resize(lab, t, interpolation=cv2.INTER_NEAREST)
    out = to_train(lab)
    buf = io.BytesIO()
    Image.fromarray(im).save(buf, format="JPEG")
    picks = [[0, 0], [w // 2, h // 3], [w - 1, h - 1], [100, 60], [260, 150]]
    expected["samples"].append(
        {
            "name": name,
            "width": int(out.shape[1]),
            "height": int(out.shape[0]),
            "image_sha256": hashlib.sha256(buf.getvalue()).hexdigest(),
            "label_sha256": sha(out.astype("<u2")),
            "label_values": sorted(int(v) for v in np.unique(out)),
            "label_pixels": [[x, y, int(out[y, x])] for x, y in picks if x < out.shape[1] and y < out.shape[0]],
        }
    )

json.dump(expected, open(f"{OUT}/expected.json", "w"), indent=1)
print(json.dumps(expected["samples"], indent=1))
