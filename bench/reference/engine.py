# PyTorch reference for bench/engine.ts: the same cases, same shapes, same thread count. Prints JSON (ms).
import json
import sys

import torch
from common import median_ms
import torch.nn.functional as F

threads = int(sys.argv[1]) if len(sys.argv) > 1 else 2
torch.set_num_threads(threads)
torch.manual_seed(0)


out = {}
a = torch.randn(1024, 1024)
b = torch.randn(1024, 1024)
out["matmul 1024³"] = median_ms(lambda: a @ b, 20, 3)

x = torch.randn(1, 320, 64, 64)
w = torch.randn(320, 320, 3, 3)
out["conv3x3 320ch 64²"] = median_ms(lambda: F.conv2d(x, w, None, padding=1), 10, 2)

D, H = 768, 12
ln1, ln2 = torch.nn.LayerNorm(D), torch.nn.LayerNorm(D)
in_w = torch.nn.Parameter(torch.randn(3 * D, D) * 0.02)
in_b = torch.nn.Parameter(torch.zeros(3 * D))
out_lin = torch.nn.Linear(D, D)
fc, proj = torch.nn.Linear(D, 4 * D), torch.nn.Linear(4 * D, D)
params = [*ln1.parameters(), *ln2.parameters(), in_w, in_b, *out_lin.parameters(), *fc.parameters(), *proj.parameters()]


def attn(x):
    # the same ops as the TypeScript MultiheadAttention: packed projection, matmul-softmax-matmul, out proj
    L, B, E = x.shape
    q, k, v = F.linear(x, in_w, in_b).chunk(3, -1)
    q, k, v = (t.reshape(L, B * H, E // H).transpose(0, 1) for t in (q, k, v))
    s = (q * (1 / (E // H) ** 0.5)) @ k.transpose(-2, -1)
    o = torch.softmax(s, -1) @ v
    return out_lin(o.transpose(0, 1).reshape(L, B, E))


def block(x):
    y = x + attn(ln1(x))
    h = fc(ln2(y))
    return y + proj(h * torch.sigmoid(1.702 * h))


xb = torch.randn(577, 1, D)
with torch.no_grad():
    out["ViT-B block fwd (577 tok)"] = median_ms(lambda: block(xb), 10, 2)
xg = torch.randn(577, 1, D, requires_grad=True)


def fwd_bwd():
    for p in params:
        p.grad = None
    xg.grad = None
    block(xg).sum().backward()


out["ViT-B block fwd+bwd"] = median_ms(fwd_bwd, 10, 2)

ta, tb = torch.randn(1), torch.randn(1)
n = 20000


def tiny():
    for _ in range(n):
        ta + tb


out["tiny op call (add, 1 elem)"] = median_ms(tiny, 7, 2) / n
print(json.dumps(out))
