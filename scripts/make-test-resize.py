# Reference outputs of detectron2's test-time resize for test/data/resize.test.ts:
#   /usr/bin/python3 scripts/make-test-resize.py      (Debian python3-pil 9.4, the Pillow detectron2 runs on)
# detectron2's ResizeShortestEdge(640, 2560) computes the output size, then ResizeTransform.apply_image runs
# Pillow's Image.resize((w, h), BILINEAR) on the uint8 image (utils.read_image gives uint8 RGB). Every case
# stores the size and the SHA-256 of the row-major RGB bytes Pillow produced; a few small ones also keep
# the bytes themselves (hex) so that a failing test can show where it differs.
import hashlib
import json

import numpy as np
from PIL import Image


def output_shape(h, w, short, max_size):  # detectron2 ResizeShortestEdge.get_output_shape
    scale = short * 1.0 / min(h, w)
    newh, neww = (short, scale * w) if h < w else (scale * h, short)
    if max(newh, neww) > max_size:
        scale = max_size * 1.0 / max(newh, neww)
        newh, neww = newh * scale, neww * scale
    return int(newh + 0.5), int(neww + 0.5)


# (source PNG, crop box (left, top, right, bottom) or None, short side, max size, what it covers)
CASES = [
    ("assets/coco/000000039769.png", None, 640, 2560, "COCO photo 640×480 → 853×640 (up)"),
    ("assets/images/chelsea.png", None, 640, 2560, "451×300 → 962×640 (up ×2.13)"),
    ("assets/ade20k/full_format/ADE_train_00000970_raw.png", None, 640, 2560, "1024×768 → 853×640 (down)"),
    ("assets/voc/1_image.png", None, 640, 2560, "513×513 → 640×640 (square, up)"),
    ("assets/clip/CLIP.png", None, 640, 2560, "RGBA 2162×762 → 1816×640 (wide, down, alpha dropped)"),
    ("assets/ade20k/full_format/ADE_train_00000970_raw.png", (3, 5, 1000, 766), 640, 2560, "odd 997×761 → 841×640 (down)"),
    ("assets/coco/000000039769.png", (11, 7, 344, 224), 640, 2560, "odd 333×217 → 982×640 (up ×2.95)"),
    ("assets/images/astronaut.png", (0, 0, 301, 511), 640, 2560, "tall 301×511 → 640×1087 (up)"),
    ("assets/ade20k/full_format/ADE_train_00000970_raw.png", (0, 300, 1024, 400), 640, 2560, "thin 1024×100 → 2560×250 (max-size cap)"),
    ("assets/images/coffee.png", (5, 5, 42, 33), 20, 2560, "small 37×28 → 26×20 (down, bytes kept)"),
    ("assets/images/coffee.png", (100, 50, 113, 67), 40, 2560, "small 13×17 → 40×52 (up, bytes kept)"),
]

out = []
for src, box, short, max_size, what in CASES:
    img = Image.open(src).convert("RGB")  # detectron2 utils.read_image(format="RGB")
    if box is not None:
        img = img.crop(box)
    w, h = img.size
    nh, nw = output_shape(h, w, short, max_size)
    res = np.asarray(img.resize((nw, nh), Image.BILINEAR))
    case = {
        "what": what,
        "source": src,
        "crop": box,
        "size": [w, h],
        "shortSide": short,
        "maxSize": max_size,
        "resized": [nw, nh],
        "sha256": hashlib.sha256(res.tobytes()).hexdigest(),
    }
    if nw * nh <= 2000:
        case["bytes"] = res.tobytes().hex()
    out.append(case)
with open("test/data/resize/pillow-resize.json", "w") as f:
    json.dump({"pillow": Image.__version__, "cases": out}, f, indent=1)
    f.write("\n")
