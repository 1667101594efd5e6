#!/usr/bin/python3
"""Writes the small PyTorch checkpoints that test/torch/checkpoint-io.test.ts reads.

Run with Debian's PyTorch:  /usr/bin/python3 scripts/make-test-checkpoints.py
Output: test/data/checkpoints/*.pt(h) plus expected.json (per file: format, every key's dtype, shape,
strides, storage offset and flattened values; int64 values are strings so they survive JSON).

Files:
  sd.pt               torch.save zip of an OrderedDict state_dict (several dtypes, views sharing storage)
  detectron2.pth      {"model": state_dict, "iteration": 5, "__author__": ...}
  nested.pt           {"state_dict": {"backbone": {...}, "head.bias": t}, "epoch": 3, "meta": {...}}
  legacy.pt           sd.pt's dict written with _use_new_zipfile_serialization=False
  script.pt           torch.jit.save of a scripted module tree (ModuleList, buffer, fp16 params, a traced
                      child with a tensor constant, a plain tensor attribute that is not in state_dict())
  malicious.pt        a dict whose "evil" value reduces to os.system("touch /tmp/dedos-pickle-pwned")
  truncated.pt        the first half of sd.pt
  truncated-legacy.pt legacy.pt without its last bytes (the pickles are intact, a storage is cut)
  zip64.pt            sd.pt's entries rewritten with ZIP64 records, a deflated data.pkl and an archive comment
  deflated-tensor.pt  sd.pt's entries with one tensor entry deflated (cannot be memory-mapped)
"""

import collections
import json
import os
import struct
import sys
import zipfile
import zlib

import torch
import torch.nn as nn

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "test", "data", "checkpoints")
OUT = os.path.normpath(OUT)
DTYPE_NAMES = {
    torch.float64: "float64",
    torch.float32: "float32",
    torch.float16: "float16",
    torch.bfloat16: "bfloat16",
    torch.int64: "int64",
    torch.int32: "int32",
    torch.int16: "int16",
    torch.int8: "int8",
    torch.uint8: "uint8",
    torch.bool: "bool",
}


def describe(t):
    flat = t.detach().contiguous().reshape(-1)
    if t.dtype == torch.int64:
        values = [str(v) for v in flat.tolist()]
    elif t.dtype == torch.bool:
        values = [1 if v else 0 for v in flat.tolist()]
    elif t.dtype in (torch.float16, torch.bfloat16):
        values = flat.float().tolist()
    else:
        values = flat.tolist()
    return {
        "dtype": DTYPE_NAMES[t.dtype],
        "shape": list(t.shape),
        "strides": list(t.stride()),
        "storageOffset": t.storage_offset(),
        "contiguous": t.is_contiguous(),
        "values": values,
    }


def make_state_dict():
    g = torch.Generator().manual_seed(0)
    base = torch.arange(12, dtype=torch.float32).reshape(3, 4) * 0.5 - 2.0
    sd = collections.OrderedDict()
    sd["conv.weight"] = torch.randn(2, 3, 2, 2, generator=g)
    sd["conv.bias"] = torch.tensor([0.25, -1.5], dtype=torch.float32)
    # float16: max, smallest normal, a subnormal, negative zero, plain values
    sd["half"] = torch.tensor([1.0, -2.5, 65504.0, 6.103515625e-05, 2.0**-24, -0.0, 0.333], dtype=torch.float16)
    sd["bf16"] = torch.tensor([1.0, -3.140625, 1e30, -1e-30, 0.0], dtype=torch.bfloat16)
    sd["steps"] = torch.tensor([0, -3, 2**40 + 7, -(2**62), 2**63 - 1], dtype=torch.int64)
    sd["mask"] = torch.tensor([[True, False, True], [False, False, True]])
    sd["pixels"] = torch.tensor([[0, 127], [128, 255]], dtype=torch.uint8)
    sd["f64"] = torch.tensor([1e-300, 3.5], dtype=torch.float64)
    sd["i32"] = torch.tensor([-7, 2**31 - 1], dtype=torch.int32)
    sd["scalar"] = torch.tensor(7.25)
    sd["empty"] = torch.zeros(0, 3)
    sd["bn.num_batches_tracked"] = torch.tensor(12, dtype=torch.int64)
    # views: the whole matrix, its transpose (non-contiguous), a row (contiguous, storage offset 4)
    # and a column (non-contiguous, storage offset 2); all four share one storage.
    sd["base"] = base
    sd["base_t"] = base.t()
    sd["base_row1"] = base[1]
    sd["base_col2"] = base[:, 2]
    sd["tied"] = sd["conv.bias"]  # the same tensor under two names
    sd._metadata = collections.OrderedDict([("", {"version": 1}), ("conv", {"version": 2})])
    return sd


class Block(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.ln = nn.LayerNorm(dim)
        self.fc = nn.Linear(dim, dim)
        self.register_buffer("pos", torch.arange(dim, dtype=torch.float32))
        self.scratch = torch.full((2,), 9.0)  # a plain tensor attribute: not part of state_dict()

    def forward(self, x):
        return self.fc(self.ln(x)) + self.pos + self.scratch.sum()


class Traced(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.scale = nn.Parameter(torch.linspace(0.5, 2.0, dim))

    def forward(self, x):
        return x * self.scale + torch.tensor([1.5, -0.5, 2.0])  # becomes a constant in constants.pkl


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.blocks = nn.ModuleList([Block(3), Block(3)])
        self.proj = nn.Parameter(torch.randn(3, 2).half())
        self.head = nn.Linear(2, 2, bias=False).half()
        self.class_embedding = nn.Parameter(torch.tensor([0.5, -0.25, 1.0]))
        self.extra = torch.jit.trace(Traced(3), torch.zeros(1, 3))
        self.n_layers = 2

    def forward(self, x):
        x = self.extra(x)
        for b in self.blocks:
            x = b(x)
        return self.head((x @ self.proj.float()).half()) * self.n_layers


class Evil:
    # What an attacker would put in a checkpoint. torch.save only records the reference to os.system and
    # its argument; nothing runs while writing. A Python unpickler would run it on load; ours must not.
    def __reduce__(self):
        return (os.system, ("touch /tmp/dedos-pickle-pwned",))


def zip_entries(path):
    with zipfile.ZipFile(path) as z:
        return [(i.filename, z.read(i.filename)) for i in z.infolist()]


def write_zip(path, entries, zip64=False, deflate=(), comment=b""):
    """A stored/deflated ZIP writer; with zip64=True every size and offset goes through ZIP64 records."""
    out = bytearray()
    cd = bytearray()
    for name, data in entries:
        method = 8 if name in deflate else 0
        if method == 8:
            c = zlib.compressobj(9, zlib.DEFLATED, -15)
            payload = c.compress(data) + c.flush()
        else:
            payload = data
        crc = zlib.crc32(data)
        nb = name.encode()
        off = len(out)
        if zip64:
            lx = struct.pack("<HHQQ", 1, 16, len(data), len(payload))
            out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 45, 0, method, 0, 0x21, crc, 0xFFFFFFFF, 0xFFFFFFFF, len(nb), len(lx))
            out += nb + lx + payload
            cx = struct.pack("<HHQQQ", 1, 24, len(data), len(payload), off)
            cd += struct.pack(
                "<IHHHHHHIIIHHHHHII", 0x02014B50, 45, 45, 0, method, 0, 0x21, crc, 0xFFFFFFFF, 0xFFFFFFFF,
                len(nb), len(cx), 0, 0, 0, 0, 0xFFFFFFFF,
            )
            cd += nb + cx
        else:
            out += struct.pack("<IHHHHHIIIHH", 0x04034B50, 20, 0, method, 0, 0x21, crc, len(payload), len(data), len(nb), 0)
            out += nb + payload
            cd += struct.pack(
                "<IHHHHHHIIIHHHHHII", 0x02014B50, 20, 20, 0, method, 0, 0x21, crc, len(payload), len(data),
                len(nb), 0, 0, 0, 0, 0, off,
            )
            cd += nb
    cd_off = len(out)
    out += cd
    n = len(entries)
    if zip64:
        eocd64 = len(out)
        out += struct.pack("<IQHHIIQQQQ", 0x06064B50, 44, 45, 45, 0, 0, n, n, len(cd), cd_off)
        out += struct.pack("<IIQI", 0x07064B50, 0, eocd64, 1)
        out += struct.pack("<IHHHHIIH", 0x06054B50, 0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, len(comment))
    else:
        out += struct.pack("<IHHHHIIH", 0x06054B50, 0, 0, n, n, len(cd), cd_off, len(comment))
    out += comment
    with open(path, "wb") as f:
        f.write(out)
    with zipfile.ZipFile(path) as z:  # check that Python agrees with the layout
        assert z.testzip() is None
        assert [i.filename for i in z.infolist()] == [e[0] for e in entries]


def main():
    os.makedirs(OUT, exist_ok=True)
    for name in os.listdir(OUT):
        os.remove(os.path.join(OUT, name))
    p = lambda name: os.path.join(OUT, name)  # noqa: E731
    expected = {}

    sd = make_state_dict()
    torch.save(sd, p("sd.pt"))
    sd_desc = {k: describe(v) for k, v in sd.items()}
    expected["sd.pt"] = {"format": "zip", "keys": sd_desc, "extra": {}}

    d2_sd = collections.OrderedDict((k, sd[k]) for k in ["conv.weight", "conv.bias", "half", "steps"])
    torch.save({"model": d2_sd, "iteration": 5, "__author__": "dedos-tests"}, p("detectron2.pth"))
    expected["detectron2.pth"] = {
        "format": "zip",
        "keys": {k: describe(v) for k, v in d2_sd.items()},
        "extra": {"iteration": 5, "__author__": "dedos-tests"},
    }

    nested = {
        "state_dict": {
            "backbone": {"conv.weight": sd["conv.weight"], "bn": {"running_mean": torch.tensor([0.1, 0.2])}},
            "head.bias": torch.tensor([3.0, 4.0, 5.0], dtype=torch.float16),
        },
        "epoch": 3,
        "meta": {"name": "x", "lr": 0.125},
    }
    torch.save(nested, p("nested.pt"))
    expected["nested.pt"] = {
        "format": "zip",
        "keys": {
            "backbone.conv.weight": describe(sd["conv.weight"]),
            "backbone.bn.running_mean": describe(nested["state_dict"]["backbone"]["bn"]["running_mean"]),
            "head.bias": describe(nested["state_dict"]["head.bias"]),
        },
        "extra": {"epoch": 3, "meta": {"name": "x", "lr": 0.125}},
    }

    torch.save(sd, p("legacy.pt"), _use_new_zipfile_serialization=False)
    expected["legacy.pt"] = {"format": "legacy", "keys": sd_desc, "extra": {}}

    net = torch.jit.script(Net())
    torch.jit.save(net, p("script.pt"))
    tsd = net.state_dict()
    consts = zip_entries(p("script.pt"))
    n_consts = sum(1 for name, _ in consts if "/constants/" in name)
    expected["script.pt"] = {
        "format": "torchscript",
        "keys": {k: describe(v) for k, v in tsd.items()},
        "order": list(tsd.keys()),
        "notKeys": ["blocks.0.scratch", "blocks.1.scratch"],
        "constants": [describe(torch.tensor([1.5, -0.5, 2.0]))] if n_consts else [],
        "extra": {},
    }

    torch.save({"w": torch.ones(2), "evil": Evil()}, p("malicious.pt"))
    expected["malicious.pt"] = {
        "format": "zip",
        "keys": {"w": describe(torch.ones(2))},
        "placeholder": {"key": "evil", "module": os.system.__module__, "name": "system"},
        "marker": "/tmp/dedos-pickle-pwned",
    }

    with open(p("sd.pt"), "rb") as f:
        data = f.read()
    with open(p("truncated.pt"), "wb") as f:
        f.write(data[: len(data) // 2])
    with open(p("legacy.pt"), "rb") as f:
        data = f.read()
    with open(p("truncated-legacy.pt"), "wb") as f:
        f.write(data[:-10])
    expected["truncated.pt"] = {"error": True}
    expected["truncated-legacy.pt"] = {"error": True}

    entries = [(name.replace("sd/", "zip64/", 1), data) for name, data in zip_entries(p("sd.pt"))]
    write_zip(p("zip64.pt"), entries, zip64=True, deflate={"zip64/data.pkl"}, comment=b"dedos zip64 test")
    expected["zip64.pt"] = {"format": "zip", "keys": sd_desc, "extra": {}}

    entries = [(name.replace("sd/", "deflated-tensor/", 1), data) for name, data in zip_entries(p("sd.pt"))]
    write_zip(p("deflated-tensor.pt"), entries, deflate={"deflated-tensor/data/0"})
    expected["deflated-tensor.pt"] = {"error": True, "entry": "deflated-tensor/data/0"}

    # Check that torch itself reads what the expectations describe (the malicious file is never loaded).
    for name in ["sd.pt", "legacy.pt", "zip64.pt"]:
        got = torch.load(p(name))
        assert list(got.keys()) == list(sd.keys()), name
        for k in sd:
            assert torch.equal(got[k], sd[k]), (name, k)

    with open(p("expected.json"), "w") as f:
        json.dump(expected, f, indent=1, sort_keys=False)
        f.write("\n")
    total = sum(os.path.getsize(p(n)) for n in os.listdir(OUT))
    print(f"wrote {len(os.listdir(OUT))} files, {total} bytes, to {OUT}", file=sys.stderr)
    assert total < 200 * 1024, "test checkpoints must stay under 200 KB"


if __name__ == "__main__":
    main()
