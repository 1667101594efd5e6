# PyTorch reference for bench/engine.ts and the engine rows of bench/run.ts: the same cases, same shapes, same
# thread count. As a script it prints JSON (ms); as a module it gives the case factories of worker.py.
#   python3 engine.py [threads]
import json
import sys

import torch
import torch.nn.functional as F

from common import best_torch, median_ms

D, H = 768, 12


def matmul(spec):
    n = spec.get("n", 1024)
    a, b = torch.randn(n, n), torch.randn(n, n)

    def run():
        with torch.inference_mode():
            a @ b

    return run


def conv(spec):
    c, s = spec.get("channels", 320), spec.get("size", 64)
    # channels-last input and weights: what PyTorch's CPU performance guide recommends for convolutions
    # (oneDNN then skips two layout reorders per call; about 3× faster here than the default layout).
    x = torch.randn(1, c, s, s).contiguous(memory_format=torch.channels_last)
    w = torch.randn(c, c, 3, 3).contiguous(memory_format=torch.channels_last)

    def run():
        with torch.inference_mode():
            F.conv2d(x, w, None, padding=1)

    return run


class VitBlock:
    """One ViT-B block (pre-LN, 12 heads, MLP 3072, QuickGELU) written as the TypeScript MultiheadAttention."""

    def __init__(self):
        self.ln1, self.ln2 = torch.nn.LayerNorm(D), torch.nn.LayerNorm(D)
        self.in_w = torch.nn.Parameter(torch.randn(3 * D, D) * 0.02)
        self.in_b = torch.nn.Parameter(torch.zeros(3 * D))
        self.out_lin = torch.nn.Linear(D, D)
        self.fc, self.proj = torch.nn.Linear(D, 4 * D), torch.nn.Linear(4 * D, D)
        mods = [self.ln1, self.ln2, self.out_lin, self.fc, self.proj]
        self.params = [self.in_w, self.in_b, *(p for m in mods for p in m.parameters())]

    def attn(self, x):
        # packed projection, matmul-softmax-matmul, out proj (no fused attention in 1.13)
        L, B, E = x.shape
        q, k, v = F.linear(x, self.in_w, self.in_b).chunk(3, -1)
        q, k, v = (t.reshape(L, B * H, E // H).transpose(0, 1) for t in (q, k, v))
        s = (q * (1 / (E // H) ** 0.5)) @ k.transpose(-2, -1)
        o = torch.softmax(s, -1) @ v
        return self.out_lin(o.transpose(0, 1).reshape(L, B, E))

    def __call__(self, x):
        y = x + self.attn(self.ln1(x))
        h = self.fc(self.ln2(y))
        return y + self.proj(h * torch.sigmoid(1.702 * h))


def vit_fwd(spec):
    block, x = VitBlock(), torch.randn(spec.get("tokens", 577), 1, D)

    def run():
        with torch.inference_mode():
            block(x)

    return run


def vit_fwd_bwd(spec):
    block = VitBlock()
    x = torch.randn(spec.get("tokens", 577), 1, D, requires_grad=True)

    def run():
        for p in block.params:
            p.grad = None
        x.grad = None
        block(x).sum().backward()

    return run


def tiny(spec):
    a, b, n = torch.randn(1), torch.randn(1), spec.get("calls", 20000)

    def run():
        with torch.inference_mode():
            for _ in range(n):
                a + b

    return run


def main():
    best_torch(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
    out = {
        "matmul 1024³": median_ms(matmul({}), 20, 3),
        "conv3x3 320ch 64²": median_ms(conv({}), 10, 2),
        "ViT-B block fwd (577 tok)": median_ms(vit_fwd({}), 10, 2),
        "ViT-B block fwd+bwd": median_ms(vit_fwd_bwd({}), 10, 2),
        "tiny op call (add, 1 elem)": median_ms(tiny({}), 7, 2) / 20000,
    }
    print(json.dumps(out))


if __name__ == "__main__":
    main()
