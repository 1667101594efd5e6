# PyTorch reference for bench/segment.ts: one CAT-Seg `AggregatorLayer` (cvlab-kaist/CAT-Seg
# cat_seg/modeling/transformer/model.py: SwinTransformerBlockWrapper with appearance guidance, then
# ClassTransformerLayer with text guidance and linear attention) at full size, random weights, written with
# plain torch ops that mirror src/catseg/aggregator.ts and src/catseg/swin.ts op for op, so both sides run
# the same libtorch kernels. Prints JSON: ms per case and "<case> | peak RSS MB".
#   python3 aggregator.py THREADS SPEC.json
# SPEC.json (written by bench/segment.ts): {"B", "T", "C", "H", "W", "window", "heads", "appearanceDim",
#   "textDim", "reps", "warmup", "names": {"layer", "swin", "class", "block1", "block2", "linattn"}, "rssKey"}
#
# The mirrored ops (ours → here):
#   nn.Linear → F.linear; nn.LayerNorm → F.layer_norm; GELU exact; roll; window partition by reshape/permute;
#   F.attention → (q·scale) @ kᵀ (+ mask (nW, 1, N, N)) → softmax → @ v (never scaled_dot_product_attention);
#   linear attention → elu+1, einsum "nshd,nshv->nhdv", "nlhd,nhd->nlh", "nlhd,nhdv,nlh->nlhv" as written.
import json
import resource
import sys

import torch
from common import best_torch, median_ms, reset_peak_rss, status_mb
import torch.nn.functional as F

threads = int(sys.argv[1]) if len(sys.argv) > 1 else 2
spec = json.load(open(sys.argv[2]))
best_torch(threads)

B, T, C, H, W = spec["B"], spec["T"], spec["C"], spec["H"], spec["W"]
WS, HEADS = spec["window"], spec["heads"]
CA, CT = spec["appearanceDim"], spec["textDim"]
NAMES = spec["names"]
RSS_KEY = spec["rssKey"]
EPS_NORM = 1e-5
EPS_LIN = 1e-6


def linear(i, o):
    b = 1 / i**0.5
    return (torch.empty(o, i).uniform_(-b, b), torch.empty(o).uniform_(-b, b))


def lin(x, p):
    return F.linear(x, p[0], p[1])


def ln(x, n):
    return F.layer_norm(x, (n,), torch.ones(n), torch.zeros(n), EPS_NORM)


class LN:
    def __init__(self, n):
        self.n, self.w, self.b = n, torch.ones(n), torch.zeros(n)

    def __call__(self, x):
        return F.layer_norm(x, (self.n,), self.w, self.b, EPS_NORM)


def shifted_window_mask(h, w, ws, shift):
    img_mask = torch.zeros((1, h, w, 1))
    cnt = 0
    for hs in (slice(0, -ws), slice(-ws, -shift), slice(-shift, None)):
        for wsl in (slice(0, -ws), slice(-ws, -shift), slice(-shift, None)):
            img_mask[:, hs, wsl, :] = cnt
            cnt += 1
    mw = window_partition(img_mask, ws).reshape(-1, ws * ws)
    m = mw.unsqueeze(1) - mw.unsqueeze(2)
    return m.masked_fill(m != 0, -100.0).masked_fill(m == 0, 0.0).contiguous()


def window_partition(x, ws):
    b, h, w, c = x.shape
    return x.reshape(b, h // ws, ws, w // ws, ws, c).permute(0, 1, 3, 2, 4, 5).reshape(-1, ws * ws, c)


def window_reverse(win, ws, h, w):
    c = win.shape[-1]
    b = win.shape[0] // ((h // ws) * (w // ws))
    return win.reshape(b, h // ws, w // ws, ws, ws, c).permute(0, 1, 3, 2, 4, 5).reshape(b, h, w, c)


class WindowAttention:
    def __init__(self, dim, gdim, heads):
        self.dim, self.h, self.d = dim, heads, dim // heads
        self.q = linear(dim + gdim, dim)
        self.k = linear(dim + gdim, dim)
        self.v = linear(dim, dim)
        self.proj = linear(dim, dim)

    def __call__(self, x, mask):
        bw, n, _ = x.shape
        h, d = self.h, self.d
        nw = mask.shape[0] if mask is not None else 1

        def heads(t):
            return t.reshape(bw // nw, nw, n, h, d).permute(0, 1, 3, 2, 4)

        q = heads(lin(x, self.q))
        k = heads(lin(x, self.k))
        v = heads(lin(x.narrow(-1, 0, self.dim), self.v))
        s = q.mul(d**-0.5).matmul(k.mT)
        if mask is not None:
            s = s.add(mask.unsqueeze(1))
        out = torch.softmax(s, -1).matmul(v)
        return lin(out.permute(0, 1, 3, 2, 4).reshape(bw, n, h * d), self.proj)


class SwinBlock:
    def __init__(self, dim, gdim, res, heads, ws, shift):
        self.res, self.ws, self.shift = res, ws, shift
        self.norm1, self.norm2 = LN(dim), LN(dim)
        self.attn = WindowAttention(dim, gdim, heads)
        self.fc1, self.fc2 = linear(dim, 4 * dim), linear(4 * dim, dim)
        self.mask = shifted_window_mask(res[0], res[1], ws, shift) if shift > 0 else None

    def __call__(self, x, g):
        h_, w_ = self.res
        b, l, c = x.shape
        ws, s = self.ws, self.shift
        h = self.norm1(x).reshape(b, h_, w_, c)
        if g is not None:
            h = torch.cat([h, g.reshape(b, h_, w_, -1)], -1)
        if s > 0:
            h = h.roll((-s, -s), (1, 2))
        attended = self.attn(window_partition(h, ws), self.mask)
        y = window_reverse(attended, ws, h_, w_)
        if s > 0:
            y = y.roll((s, s), (1, 2))
        r = x.add(y.reshape(b, h_ * w_, c))
        return r.add(lin(F.gelu(lin(self.norm2(r), self.fc1)), self.fc2))


class SwinWrapper:
    def __init__(self, dim, gdim, res, heads, ws):
        self.block_1 = SwinBlock(dim, gdim, res, heads, ws, 0)
        self.block_2 = SwinBlock(dim, gdim, res, heads, ws, ws // 2)
        self.guidance_norm = LN(gdim)

    def tokens(self, x, guidance):
        b, c, t, h, w = x.shape
        tokens = x.permute(0, 2, 3, 4, 1).reshape(b * t, h * w, c)
        cg = guidance.shape[1]
        normed = self.guidance_norm(guidance.permute(0, 2, 3, 1).reshape(b, 1, h * w, cg))
        g = normed.expand(b, t, h * w, cg).reshape(b * t, h * w, cg)
        return tokens, g

    def __call__(self, x, guidance):
        b, c, t, h, w = x.shape
        tokens, g = self.tokens(x, guidance)
        y = self.block_1(tokens, g)
        y = self.block_2(y, g)
        return y.reshape(b, t, h, w, c).permute(0, 4, 1, 2, 3)


def linear_attention(q, k, v):
    Q = F.elu(q).add(1)
    K = F.elu(k).add(1)
    S = v.shape[1]
    KV = torch.einsum("nshd,nshv->nhdv", K, v.div(S))
    Z = torch.einsum("nlhd,nhd->nlh", Q, K.sum(1)).add(EPS_LIN).reciprocal()
    return torch.einsum("nlhd,nhdv,nlh->nlhv", Q, KV, Z).mul(S).contiguous()


class AttentionLayer:
    def __init__(self, dim, gdim, heads):
        self.h = heads
        self.q, self.k, self.v = linear(dim + gdim, dim), linear(dim + gdim, dim), linear(dim, dim)

    def __call__(self, x, g):
        xg = torch.cat([x, g], -1)
        n, l, c = x.shape

        def split(t):
            return t.reshape(n, l, self.h, c // self.h)

        out = linear_attention(split(lin(xg, self.q)), split(lin(xg, self.k)), split(lin(x, self.v)))
        return out.reshape(n, l, c)


class ClassLayer:
    def __init__(self, dim, gdim, heads, pad_len):
        self.attention = AttentionLayer(dim, gdim, heads)
        self.mlp1, self.mlp2 = linear(dim, 4 * dim), linear(4 * dim, dim)
        self.norm1, self.norm2 = LN(dim), LN(dim)
        self.pad_len = pad_len
        self.padding_tokens = torch.zeros(1, 1, dim)
        self.padding_guidance = torch.zeros(1, 1, gdim)

    def __call__(self, x, g):
        # Pooling (1, 1) (CAT-Seg's evaluation setting): no AvgPool2d, no interpolation.
        b, c, t, h, w = x.shape
        xp = x.permute(0, 2, 1, 3, 4).reshape(b * t, c, h, w).reshape(b, t, c, h, w)
        pad = self.pad_len - t if t < self.pad_len else 0
        if pad > 0:
            tokens = self.padding_tokens.reshape(1, 1, c, 1, 1).expand(b, pad, c, h, w)
            xp = torch.cat([xp, tokens], 1)
            g = torch.cat([g, self.padding_guidance.expand(b, pad, g.shape[-1])], 1)
        tp = t + pad
        s = xp.permute(0, 3, 4, 1, 2).reshape(b * h * w, tp, c)
        gs = g.unsqueeze(1).expand(b, h * w, tp, g.shape[-1]).reshape(b * h * w, tp, g.shape[-1])
        s = s.add(self.attention(self.norm1(s), gs))
        s = s.add(lin(F.relu(lin(self.norm2(s), self.mlp1)), self.mlp2))
        maps = s.reshape(b, h, w, tp, c).narrow(3, 0, t).permute(0, 3, 4, 1, 2).reshape(b * t, c, h, w)
        return x.add(maps.reshape(b, t, c, h, w).permute(0, 2, 1, 3, 4))


swin = SwinWrapper(C, CA, (H, W), HEADS, WS)
cls = ClassLayer(C, CT, HEADS, 256)

x = torch.randn(B, C, T, H, W)
ag = torch.randn(B, CA, H, W)
tg = torch.randn(B, T, CT)
tokens, g = swin.tokens(x, ag)
N_CLS = B * H * W
q_lin = torch.randn(N_CLS, 256, HEADS, C // HEADS)
k_lin = torch.randn(N_CLS, 256, HEADS, C // HEADS)
v_lin = torch.randn(N_CLS, 256, HEADS, C // HEADS)
y1 = None
with torch.inference_mode():
    y1 = swin.block_1(tokens, g)
    after_swin = swin(x, ag)

reps, warmup = spec["reps"], spec["warmup"]
cases = {
    NAMES["layer"]: lambda: cls(swin(x, ag), tg),
    NAMES["swin"]: lambda: swin(x, ag),
    NAMES["block1"]: lambda: swin.block_1(tokens, g),
    NAMES["block2"]: lambda: swin.block_2(y1, g),
    NAMES["class"]: lambda: cls(after_swin, tg),
    NAMES["linattn"]: lambda: linear_attention(q_lin, k_lin, v_lin),
}
only = spec.get("only")
out = {}
with torch.inference_mode():
    for name, fn in cases.items():
        if only and name not in only:
            continue
        reset = reset_peak_rss()
        out[name] = median_ms(fn, reps, warmup)
        if reset:
            out[name + RSS_KEY] = status_mb("VmHWM")
out["maxrss MB"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(out))
