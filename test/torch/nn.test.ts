import assert from "node:assert/strict";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import {
  AdamW,
  clipGradNorm,
  Generator,
  loadCheckpoint,
  Module,
  ModuleList,
  nn,
  ones,
  randn,
  SGD,
  StateDictError,
  saveSafetensors,
  type Tensor,
  tensor,
  tidy,
} from "../../src/torch/index.js";
import { assertClose } from "../helpers.js";
import { tempDir } from "../temp-dir.js";

class Block extends Module {
  readonly fc: nn.Linear;
  readonly norm: nn.LayerNorm;
  constructor(d: number, g: Generator) {
    super();
    this.fc = this.child("fc", new nn.Linear(d, d, true, { generator: g }));
    this.norm = this.child("norm", new nn.LayerNorm(d));
  }
  forward(x: Tensor): Tensor {
    return tidy(() => this.norm.forward(this.fc.forward(x)));
  }
}
class Tiny extends Module {
  readonly blocks: ModuleList<Block>;
  readonly bn: nn.BatchNorm2d;
  constructor(seed: number) {
    super();
    const g = new Generator(seed);
    this.param("scale", ones([4]));
    this.blocks = this.child("blocks", new ModuleList([new Block(4, g), new Block(4, g)]));
    this.bn = this.child("bn", new nn.BatchNorm2d(4));
    this.buffer("cache", ones([2]), false);
  }
  forward(x: Tensor): Tensor {
    return tidy(() => {
      let y = x.mul(this.namedParameters()[0]![1]);
      for (const b of this.blocks) y = b.forward(y);
      return y;
    });
  }
}

describe("nn.Module naming and state dicts", () => {
  it("state dict keys follow PyTorch's dotted names and order; non-persistent buffers are left out", () => {
    const m = new Tiny(0);
    assert.deepEqual(
      [...m.stateDict().keys()],
      [
        "scale",
        "blocks.0.fc.weight",
        "blocks.0.fc.bias",
        "blocks.0.norm.weight",
        "blocks.0.norm.bias",
        "blocks.1.fc.weight",
        "blocks.1.fc.bias",
        "blocks.1.norm.weight",
        "blocks.1.norm.bias",
        "bn.weight",
        "bn.bias",
        "bn.running_mean",
        "bn.running_var",
        "bn.num_batches_tracked",
      ],
    );
    assert.equal(m.numParameters(), 4 + 2 * (16 + 4 + 4 + 4) + 8);
  });
  it("strict loading reports missing and unexpected keys; shape mismatches name the key and both shapes", () => {
    const m = new Tiny(0);
    const sd = new Map(new Tiny(1).stateDict());
    sd.delete("blocks.1.fc.bias");
    sd.set("extra.weight", ones([1]));
    sd.set("blocks.0.fc.weight", ones([4, 5]));
    try {
      m.loadStateDict(sd, { source: "model.pth" });
      assert.fail("should throw");
    } catch (e) {
      assert.ok(e instanceof StateDictError);
      assert.match(
        e.message,
        /blocks\.0\.fc\.weight: the model expects shape \[4, 4\], model\.pth has \[4, 5\]/,
      );
      assert.match(e.message, /missing in model\.pth \(1\): blocks\.1\.fc\.bias/);
      assert.match(e.message, /unexpected in model\.pth \(1\): extra\.weight/);
    }
    sd.set("blocks.0.fc.weight", ones([4, 4]));
    const r = m.loadStateDict(sd, { strict: false });
    assert.deepEqual(r.missing, ["blocks.1.fc.bias"]);
    assert.deepEqual(r.unexpected, ["extra.weight"]);
    assert.deepEqual(m.stateDict().get("blocks.0.fc.weight")!.toArray(), new Array(16).fill(1));
  });
  it("safetensors round trip reproduces the output bit for bit", () => {
    const dir = tempDir("dedos-");
    const a = new Tiny(3);
    const b = new Tiny(4);
    const file = join(dir, "tiny.safetensors");
    saveSafetensors(file, a.stateDict(), { note: "test" });
    const ck = loadCheckpoint(file);
    assert.equal(ck.format, "safetensors");
    assert.equal(ck.extra.note, "test");
    b.loadStateDict(ck.tensors, { source: file });
    const x = randn([2, 4], { generator: new Generator(9) });
    assert.deepEqual(a.forward(x).toArray(), b.forward(x).toArray());
  });
  it("a truncated safetensors file names the file and the tensor", () => {
    const dir = tempDir("dedos-");
    const file = join(dir, "t.safetensors");
    saveSafetensors(file, new Tiny(0).stateDict());
    const bytes = readFileSync(file);
    writeFileSync(file, bytes.subarray(0, bytes.length - 10));
    assert.throws(
      () => loadCheckpoint(file),
      new RegExp(
        `t\\.safetensors: tensor ".*" ends at byte \\d+ but the file has ${bytes.length - 10} bytes`,
      ),
    );
  });
  it("init 'empty' skips the random fill and loads like any layer; 'random' is reproducible by generator", () => {
    const a = new nn.Linear(3, 2, true, { generator: new Generator(5) });
    const b = new nn.Linear(3, 2, true, { generator: new Generator(5) });
    assert.deepEqual(a.weight.toArray(), b.weight.toArray());
    const e = new nn.Linear(3, 2, true, { init: "empty" });
    e.loadStateDict(a.stateDict());
    assert.deepEqual(e.weight.toArray(), a.weight.toArray());
  });
  it("train/eval reach every child; BatchNorm updates running stats only in training", () => {
    const m = new Tiny(0).eval();
    assert.equal(m.bn.training, false);
    const x = randn([2, 4, 3, 3], { generator: new Generator(1) });
    m.bn.forward(x);
    assert.deepEqual(m.stateDict().get("bn.running_mean")!.toArray(), [0, 0, 0, 0]);
    m.train();
    m.bn.forward(x);
    const mean = x.mean([0, 2, 3]).mul(0.1).toArray();
    assertClose(m.stateDict().get("bn.running_mean")!.toArray(), mean, 1e-6);
    assert.equal(m.stateDict().get("bn.num_batches_tracked")!.item(), 1);
  });
});

describe("checkpoint files written by PyTorch", () => {
  const dir = "test/data/checkpoints";
  const expected = JSON.parse(readFileSync(join(dir, "expected.json"), "utf8"));
  it("zip state dict, detectron2 wrapper, legacy format and TorchScript load as tensors with the stored values", () => {
    const files = ["sd.pt", "detectron2.pth", "legacy.pt", "script.pt"].filter((f) =>
      existsSync(join(dir, f)),
    );
    assert.equal(files.length, 4);
    for (const f of files) {
      const ck = loadCheckpoint(join(dir, f));
      const exp = expected[f] ?? expected.files?.[f];
      assert.ok(exp, `expected.json has an entry for ${f}`);
      const keys = exp.keys ?? exp.tensors ?? exp;
      for (const [k, info] of Object.entries(
        keys as Record<string, { shape: number[]; values?: number[] }>,
      )) {
        const t = ck.tensors.get(k);
        assert.ok(t, `${f}: key ${k}`);
        assert.deepEqual(t.shape, info.shape, `${f}: ${k} shape`);
        if (info.values) assertClose(t.toArray(), info.values.map(Number), 1e-6, 1e-3, `${f}: ${k}`);
      }
    }
  });
});

describe("optimizers", () => {
  it("AdamW matches the hand-computed update over three steps, with two parameter groups", () => {
    const p1 = tensor(Float64Array.from([1, -2]), [2], { requiresGrad: true });
    const p2 = tensor(Float64Array.from([0.5]), [1], { requiresGrad: true });
    const opt = new AdamW([
      { params: [p1], lr: 0.1, weightDecay: 0.01 },
      { params: [p2], lr: 0.01, weightDecay: 0 },
    ]);
    const ref = [
      { p: [1, -2], m: [0, 0], v: [0, 0], lr: 0.1, wd: 0.01 },
      { p: [0.5], m: [0], v: [0], lr: 0.01, wd: 0 },
    ];
    for (let step = 1; step <= 3; step++) {
      opt.zeroGrad();
      // loss = Σ p1² · step + 3·p2  →  grads 2·p1·step and 3
      p1.square().sum().mul(step).add(p2.mul(3).sum()).backward();
      opt.step();
      const grads = [ref[0]!.p.map((x) => 2 * x * step), [3]];
      ref.forEach((r, gi) => {
        r.p = r.p.map((x, i) => {
          const g = grads[gi]![i]!;
          let y = x * (1 - r.lr * r.wd);
          r.m[i] = 0.9 * r.m[i]! + 0.1 * g;
          r.v[i] = 0.999 * r.v[i]! + 0.001 * g * g;
          const mh = r.m[i]! / (1 - 0.9 ** step);
          const vh = r.v[i]! / (1 - 0.999 ** step);
          y -= (r.lr * mh) / (Math.sqrt(vh) + 1e-8);
          return y;
        });
      });
      assertClose(p1.toArray(), ref[0]!.p, 1e-12, 1e-9, `p1 step ${step}`);
      assertClose(p2.toArray(), ref[1]!.p, 1e-12, 1e-9, `p2 step ${step}`);
    }
    opt.setLr(1, 0.5);
    assert.equal(opt.getLr(1), 0.5);
    const st = opt.getState();
    assert.equal(st[0]!.step, 3);
    assertClose(st[0]!.expAvg!.toArray(), ref[0]!.m, 1e-12, 1e-9);
  });
  it("AdamW state restores exactly (resume gives the same next step)", () => {
    const mk = () => tensor(Float64Array.from([1, 2, 3]), [3], { requiresGrad: true });
    const a = mk();
    const oa = new AdamW([{ params: [a], lr: 0.05 }]);
    const stepOn = (p: Tensor, o: AdamW) => {
      o.zeroGrad();
      p.pow(3).sum().backward();
      o.step();
    };
    stepOn(a, oa);
    stepOn(a, oa);
    const b = tensor(a.toTypedArray() as Float64Array, [3], { requiresGrad: true });
    const ob = new AdamW([{ params: [b], lr: 0.05 }]);
    ob.setState(oa.getState());
    stepOn(a, oa);
    stepOn(b, ob);
    assert.deepEqual(b.toArray(), a.toArray());
  });
  it("SGD with momentum matches the hand computation", () => {
    const p = tensor(Float64Array.from([1]), [1], { requiresGrad: true });
    const opt = new SGD([{ params: [p], lr: 0.1, momentum: 0.9 }]);
    let x = 1;
    let buf = 0;
    for (let s = 0; s < 3; s++) {
      opt.zeroGrad();
      p.square().sum().backward();
      opt.step();
      const g = 2 * x;
      buf = s === 0 ? g : 0.9 * buf + g;
      x -= 0.1 * buf;
    }
    assertClose(p.toArray(), [x], 1e-12);
  });
  it("frozen parameters are refused by an optimizer", () => {
    assert.throws(() => new AdamW([{ params: [ones([2])], lr: 1 }]), /does not require grad/);
  });
  it("clipGradNorm scales to the maximum norm and returns the norm before clipping", () => {
    const a = tensor([3], undefined, { requiresGrad: true });
    const b = tensor([4], undefined, { requiresGrad: true });
    a.mul(b).sum().backward(); // grads: a → 4, b → 3; norm 5
    const n = clipGradNorm([a, b], 1);
    assert.ok(Math.abs(n - 5) < 1e-6);
    assertClose([a.grad!.item(), b.grad!.item()], [0.8, 0.6], 1e-6);
  });
});
