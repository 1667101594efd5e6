# PyTorch reference for bench/clip.ts and the CLIP rows of bench/run.ts: a full-size CLIP ViT-B/16 (random
# weights) written with plain torch ops in openai/CLIP's structure, run the way dedos runs it. As a script it
# prints JSON: ms per case and "<case> | peak RSS MB"; as a module it gives the case factories of worker.py.
#   python3 clip.py THREADS SPEC.json
# SPEC.json (written by bench/clip.ts): {"vision": {...preset}, "text": {...preset}, "resolution": 384,
#   "taps": [3, 7], "ids": [...row-major int ids...], "idsShape": [B, L], "reps": {...}}
#
# Every op mirrors the TypeScript code, so the two sides run the same libtorch kernels:
#   attention = packed F.linear → chunk → reshape/transpose → (q·scale) @ kᵀ (+ mask) → softmax → @ v
#   → out_proj (src/torch/nn/layers.ts MultiheadAttention + F.attention); never nn.MultiheadAttention or
#   F.scaled_dot_product_attention (no fused fast path). QuickGELU = x·σ(1.702x) (native quickGelu).
import json
import math
import resource
import sys

import torch
import torch.nn.functional as F
from torch import nn

from common import best_torch, median_ms, reset_peak_rss, status_mb


def param(*shape, std):
    return nn.Parameter(torch.randn(*shape) * std, requires_grad=False)


class Linear(nn.Module):
    def __init__(self, i, o):
        super().__init__()
        self.weight = param(o, i, std=i**-0.5)
        self.bias = nn.Parameter(torch.zeros(o), requires_grad=False)

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)


class Attention(nn.Module):
    """nn.MultiheadAttention's parameters (packed in_proj), computed the way dedos computes it."""

    def __init__(self, d, heads):
        super().__init__()
        self.heads = heads
        self.in_proj_weight = param(3 * d, d, std=(2 / (4 * d)) ** 0.5)
        self.in_proj_bias = nn.Parameter(torch.zeros(3 * d), requires_grad=False)
        self.out_proj = Linear(d, d)

    def forward(self, x, mask=None):
        L, B, E = x.shape
        H = self.heads
        d = E // H
        qkv = F.linear(x, self.in_proj_weight, self.in_proj_bias)  # (L, B, 3E)
        q, k, v = (t.reshape(L, B * H, d).transpose(0, 1) for t in qkv.chunk(3, -1))  # (B·H, L, d)
        s = (q * (1 / math.sqrt(d))) @ k.transpose(-2, -1)
        if mask is not None:
            s = s + mask
        o = torch.softmax(s, -1) @ v  # (B·H, L, d)
        return self.out_proj(o.transpose(0, 1).reshape(L, B, E))


class Mlp(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.c_fc = Linear(d, 4 * d)
        self.c_proj = Linear(4 * d, d)

    def forward(self, x):
        h = self.c_fc(x)
        return self.c_proj(h * torch.sigmoid(h * 1.702))  # QuickGELU


class ResidualAttentionBlock(nn.Module):
    def __init__(self, d, heads):
        super().__init__()
        self.attn = Attention(d, heads)
        self.ln_1 = nn.LayerNorm(d)
        self.mlp = Mlp(d)
        self.ln_2 = nn.LayerNorm(d)

    def forward(self, x, mask=None):
        x = x + self.attn(self.ln_1(x), mask)
        return x + self.mlp(self.ln_2(x))

    def forward_dense(self, x):
        # CAT-Seg model_vpt.py: value path only, residual = the input CLS token.
        D = x.shape[-1]
        wv = self.attn.in_proj_weight.narrow(0, 2 * D, D)
        bv = self.attn.in_proj_bias.narrow(0, 2 * D, D)
        v = self.attn.out_proj(F.linear(self.ln_1(x), wv, bv))
        h = v + x.narrow(0, 0, 1)
        return h + self.mlp(self.ln_2(h))


class Transformer(nn.Module):
    def __init__(self, d, layers, heads):
        super().__init__()
        self.resblocks = nn.ModuleList(ResidualAttentionBlock(d, heads) for _ in range(layers))

    def forward(self, x, mask=None, dense_last=False, taps=()):
        outs = []
        n = len(self.resblocks)
        for i, b in enumerate(self.resblocks):
            x = b.forward_dense(x) if dense_last and i == n - 1 else b(x, mask)
            if i in taps:
                outs.append(x)
        return x, outs


class VisionTransformer(nn.Module):
    def __init__(self, c):
        super().__init__()
        d, p = c["width"], c["patchSize"]
        self.grid = c["imageSize"] // p
        scale = d**-0.5
        self.class_embedding = param(d, std=scale)
        self.positional_embedding = param(self.grid**2 + 1, d, std=scale)
        self.proj = param(d, c["outputDim"], std=scale)
        self.conv1 = nn.Conv2d(3, d, p, stride=p, bias=False).requires_grad_(False)
        self.ln_pre = nn.LayerNorm(d)
        self.transformer = Transformer(d, c["layers"], c["heads"])
        self.ln_post = nn.LayerNorm(d)

    def pos_embed(self, gh, gw):
        # CAT-Seg resized_pos_embed: CLS row kept, grid resized bicubically (align_corners=False).
        pos, g = self.positional_embedding, self.grid
        if gh == g and gw == g:
            return pos
        D = pos.shape[1]
        grid = pos.narrow(0, 1, g * g).reshape(1, g, g, D).permute(0, 3, 1, 2)
        r = F.interpolate(grid, size=(gh, gw), mode="bicubic", align_corners=False)
        return torch.cat([pos.narrow(0, 0, 1), r.reshape(D, gh * gw).transpose(0, 1)], 0)

    def forward(self, x, dense=True, taps=()):
        p = self.conv1(x)  # (B, D, gh, gw)
        B, D, gh, gw = p.shape
        x0 = p.reshape(B, D, gh * gw).permute(0, 2, 1)
        cls = self.class_embedding.view(1, 1, D).expand(B, 1, D)
        x = self.ln_pre(torch.cat([cls, x0], 1) + self.pos_embed(gh, gw))
        out, tapped = self.transformer(x.permute(1, 0, 2), dense_last=dense, taps=taps)
        ln_post = self.ln_post(out.permute(1, 0, 2))  # every token (dense features)
        return ln_post @ self.proj, tapped


class TextTransformer(nn.Module):
    def __init__(self, c):
        super().__init__()
        w = c["width"]
        self.positional_embedding = param(c["contextLength"], w, std=0.01)
        self.text_projection = param(w, c["embedDim"], std=w**-0.5)
        self.transformer = Transformer(w, c["layers"], c["heads"])
        self.token_embedding = nn.Embedding(c["vocabSize"], w).requires_grad_(False)
        self.ln_final = nn.LayerNorm(w)

    def forward(self, ids):
        B, L = ids.shape
        x = self.token_embedding(ids) + self.positional_embedding.narrow(0, 0, L)
        mask = torch.full((L, L), float("-inf")).triu(1)
        out, _ = self.transformer(x.permute(1, 0, 2), mask)
        ln = self.ln_final(out.permute(1, 0, 2))
        pooled = ln[torch.arange(B), ids.argmax(-1)]  # EOT (largest id) position
        return pooled @ self.text_projection


def frozen(module):
    module.eval()
    for p_ in module.parameters():
        p_.requires_grad_(False)
    return module


def vision_case(spec):
    """The image tower in dense mode with the guidance taps, on one random image (bench/run.ts)."""
    vision = frozen(VisionTransformer(spec["vision"]))
    r, taps = spec["resolution"], tuple(spec["taps"])
    pixels = torch.randn(1, 3, r, r)

    def run():
        with torch.inference_mode():
            vision(pixels, True, taps)

    return run


def text_case(spec):
    """The text tower on token ids (bench/run.ts)."""
    text = frozen(TextTransformer(spec["text"]))
    ids = torch.tensor(spec["ids"], dtype=torch.int64).reshape(*spec["idsShape"])

    def run():
        with torch.inference_mode():
            text(ids)

    return run


def main():
    best_torch(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
    spec = json.load(open(sys.argv[2]))
    vision = frozen(VisionTransformer(spec["vision"]))
    text = frozen(TextTransformer(spec["text"]))
    model_rss = status_mb("VmRSS")  # weights of both towers resident (randn touched every page)

    R = spec["resolution"]
    taps = tuple(spec["taps"])
    pixels = torch.randn(1, 3, R, R)
    ids = torch.tensor(spec["ids"], dtype=torch.int64).reshape(*spec["idsShape"])
    names = spec["names"]
    reps = spec["reps"]

    out = {}
    with torch.inference_mode():
        # Sanity: random full-size weights must not overflow (inf/NaN would change kernel speed).
        tok, _ = vision(pixels, True, taps)
        feats = text(ids)
        if not (torch.isfinite(tok).all() and torch.isfinite(feats).all()):
            print("warning: non-finite outputs", file=sys.stderr)
        del tok, feats

        ok = reset_peak_rss()
        out[names["vision"]] = median_ms(lambda: vision(pixels, True, taps), *reps["vision"])
        if ok:
            out[names["vision"] + spec["rssKey"]] = status_mb("VmHWM")

        ok = reset_peak_rss()
        out[names["text"]] = median_ms(lambda: text(ids), *reps["text"])
        if ok:
            out[names["text"] + spec["rssKey"]] = status_mb("VmHWM")

    # ru_maxrss: the whole process (KB on Linux); includes model construction.
    out["ru_maxrss MB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out["model RSS MB"] = model_rss
    print(json.dumps(out))


if __name__ == "__main__":
    main()
