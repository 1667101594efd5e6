# PyTorch reference for bench/diffusion.ts and the UNet row of bench/run.ts: the SD-2-base UNet (diffusers UNet2DConditionModel with the
# sd-2-base config: block_out_channels 320/640/1280/1280, 2 layers per block, heads 5/10/20/20 of 64 channels,
# linear projections, cross-attention dim 1024) written out in plain PyTorch (diffusers is not installed here),
# with random weights, at a 48×48 latent, batch 1, text 77 × 1024, under no_grad. Attention follows diffusers'
# AttnProcessor (baddbmm → softmax → bmm over batch·heads), the feed-forward its GEGLU.
#   python3 diffusion.py [threads] [reps]
# Prints JSON: {"SD-2-base UNet fwd 48×48 latent": ms, "… | peak RSS MB": MB, "kernel cases" ...}; as a module
# it gives the case factory of worker.py. Convolution weights and activations are channels-last (weights
# converted once, as PyTorch's CPU performance guide recommends: oneDNN then skips the layout reorders).
import json
import math
import sys

import torch
import torch.nn.functional as F
from torch import nn

from common import best_torch, median_ms, reset_peak_rss, status_mb

BOC = [320, 640, 1280, 1280]
HEADS = [5, 10, 20, 20]
CROSS = 1024
GROUPS = 32


def conv2d(*args, **kw):
    """nn.Conv2d with channels-last weights, converted as it is built: the default-layout copy is freed at once
    and its memory reused by the next layer (converting the built model instead keeps ~1.5 GB of freed
    copies resident under the no-trim malloc settings)."""
    return nn.Conv2d(*args, **kw).to(memory_format=torch.channels_last)


def layout(x):
    cl = torch.channels_last
    return cl if x.is_contiguous(memory_format=cl) and not x.is_contiguous() else torch.contiguous_format


class Resnet(nn.Module):
    def __init__(self, cin, cout, temb=1280):
        super().__init__()
        self.norm1 = nn.GroupNorm(GROUPS, cin, eps=1e-5)
        self.conv1 = conv2d(cin, cout, 3, padding=1)
        self.time_emb_proj = nn.Linear(temb, cout)
        self.norm2 = nn.GroupNorm(GROUPS, cout, eps=1e-5)
        self.conv2 = conv2d(cout, cout, 3, padding=1)
        self.conv_shortcut = conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x, temb):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.time_emb_proj(F.silu(temb))[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return (self.conv_shortcut(x) if self.conv_shortcut is not None else x) + h


class Attention(nn.Module):
    def __init__(self, dim, heads, kv_dim=None):
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_k = nn.Linear(kv_dim or dim, dim, bias=False)
        self.to_v = nn.Linear(kv_dim or dim, dim, bias=False)
        self.to_out = nn.Linear(dim, dim)

    def split(self, t):  # diffusers head_to_batch_dim: (B, L, h·d) → (B·h, L, d)
        b, n, c = t.shape
        return t.reshape(b, n, self.heads, c // self.heads).permute(0, 2, 1, 3).reshape(b * self.heads, n, -1)

    def forward(self, x, ctx=None):
        ctx = x if ctx is None else ctx
        q, k, v = self.split(self.to_q(x)), self.split(self.to_k(ctx)), self.split(self.to_v(ctx))
        empty = torch.empty(q.shape[0], q.shape[1], k.shape[1], dtype=q.dtype)
        probs = torch.baddbmm(empty, q, k.transpose(-1, -2), beta=0, alpha=self.scale).softmax(-1)
        o = torch.bmm(probs, v)
        b = x.shape[0]
        o = o.reshape(b, self.heads, o.shape[1], o.shape[2]).permute(0, 2, 1, 3).reshape(b, o.shape[1], -1)
        return self.to_out(o)


class Block(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn1 = Attention(dim, heads)
        self.attn2 = Attention(dim, heads, CROSS)
        self.ff_proj = nn.Linear(dim, dim * 8)
        self.ff_out = nn.Linear(dim * 4, dim)

    def forward(self, x, text):
        x = self.attn1(self.norm1(x)) + x
        x = self.attn2(self.norm2(x), text) + x
        h, gate = self.ff_proj(self.norm3(x)).chunk(2, dim=-1)
        return self.ff_out(h * F.gelu(gate)) + x


class Transformer(nn.Module):
    def __init__(self, ch, heads):
        super().__init__()
        self.norm = nn.GroupNorm(GROUPS, ch, eps=1e-6)
        self.proj_in = nn.Linear(ch, ch)
        self.block = Block(ch, heads)
        self.proj_out = nn.Linear(ch, ch)

    def forward(self, x, text):
        b, c, h, w = x.shape
        t = self.norm(x).permute(0, 2, 3, 1).reshape(b, h * w, c)
        t = self.proj_out(self.block(self.proj_in(t), text))
        t = t.reshape(b, h, w, c).permute(0, 3, 1, 2)  # diffusers' .contiguous(), in the input's layout
        return t.contiguous(memory_format=layout(x)) + x


class UNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv_in = conv2d(4, BOC[0], 3, padding=1)
        self.lin1, self.lin2 = nn.Linear(BOC[0], 1280), nn.Linear(1280, 1280)
        self.down = nn.ModuleList()
        ch = BOC[0]
        for i, (c, h) in enumerate(zip(BOC, HEADS)):
            attn = i < 3
            d = nn.Module()
            d.resnets = nn.ModuleList([Resnet(ch if j == 0 else c, c) for j in range(2)])
            d.attns = nn.ModuleList([Transformer(c, h) for _ in range(2)]) if attn else None
            d.down = conv2d(c, c, 3, stride=2, padding=1) if i < 3 else None
            self.down.append(d)
            ch = c
        self.mid_res = nn.ModuleList([Resnet(1280, 1280), Resnet(1280, 1280)])
        self.mid_attn = Transformer(1280, HEADS[-1])
        self.up = nn.ModuleList()
        rb, rh = BOC[::-1], HEADS[::-1]
        prev = rb[0]
        for i, (c, h) in enumerate(zip(rb, rh)):
            below = rb[min(i + 1, 3)]
            u = nn.Module()
            u.resnets = nn.ModuleList(
                [Resnet((prev if j == 0 else c) + (below if j == 2 else c), c) for j in range(3)]
            )
            u.attns = nn.ModuleList([Transformer(c, h) for _ in range(3)]) if i > 0 else None
            u.up = conv2d(c, c, 3, padding=1) if i < 3 else None
            self.up.append(u)
            prev = c
        self.norm_out = nn.GroupNorm(GROUPS, BOC[0], eps=1e-5)
        self.conv_out = conv2d(BOC[0], 4, 3, padding=1)

    def forward(self, z, t, text):
        half = BOC[0] // 2
        freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32) / half)
        args = t.float()[:, None] * freqs[None]
        temb = torch.cat([args.cos(), args.sin()], -1)  # flip_sin_to_cos
        temb = self.lin2(F.silu(self.lin1(temb)))
        h = self.conv_in(z)
        skips = [h]
        for d in self.down:
            for j, r in enumerate(d.resnets):
                h = r(h, temb)
                if d.attns is not None:
                    h = d.attns[j](h, text)
                skips.append(h)
            if d.down is not None:
                h = d.down(h)
                skips.append(h)
        h = self.mid_res[1](self.mid_attn(self.mid_res[0](h, temb), text), temb)
        for u in self.up:
            for j, r in enumerate(u.resnets):
                h = r(torch.cat([h, skips.pop()], 1), temb)
                if u.attns is not None:
                    h = u.attns[j](h, text)
            if u.up is not None:
                h = u.up(F.interpolate(h, scale_factor=2.0, mode="nearest"))
        return self.conv_out(F.silu(self.norm_out(h)))


def unet_case(spec):
    """One forward at an H×W latent, batch 1, text 77 × 1024, channels-last (bench/run.ts)."""
    unet = UNet().eval().requires_grad_(False)  # channels-last convolutions (conv2d)
    n = spec.get("latent", 48)
    z = torch.randn(1, 4, n, n).contiguous(memory_format=torch.channels_last)
    text, t = torch.randn(1, 77, CROSS), torch.tensor([50])

    def run():
        with torch.inference_mode():
            unet(z, t, text)

    return run


def main():
    best_torch(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
    reps = int(sys.argv[2]) if len(sys.argv) > 2 else 3
    run = unet_case({"latent": 48})
    name = "SD-2-base UNet fwd 48×48 latent"
    out = {}
    run()
    reset_peak_rss()
    out[name] = median_ms(run, reps, 0)
    out[name + " | peak RSS MB"] = status_mb("VmHWM")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
