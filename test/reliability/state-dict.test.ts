// Weights that load without complaint but cannot be right: NaN/Inf values (a model that then predicts one
// class everywhere), integer data for floating-point parameters; and a state dict that does not fit a
// model of another size, whose error must stay readable.
import assert from "node:assert/strict";
import { join } from "node:path";
import { describe, it } from "node:test";
import { loadCheckpoint, saveSafetensors } from "../../src/torch/io/load.js";
import { Module, StateDictError, StateDictValueError } from "../../src/torch/nn/module.js";
import { dispose, full, type Tensor, tensor, zeros } from "../../src/torch/tensor.js";
import { tempDir } from "../temp-dir.js";

const dir = tempDir("dedos-reliability-sd-");

class Net extends Module {
  constructor(layers: number, width = 4) {
    super();
    for (let i = 0; i < layers; i++) {
      this.param(`w${i}`, zeros([width, width]));
      this.param(`b${i}`, zeros([width]));
    }
    this.buffer("steps", zeros([], { dtype: "int64" }));
  }
}

/** A state dict for Net(layers) with every value `v`, written to `name` and opened again. */
function fileFor(name: string, sd: Map<string, Tensor>): { file: string; tensors: Map<string, Tensor> } {
  const file = join(dir, name);
  saveSafetensors(file, sd);
  dispose([...sd.values()]);
  return { file, tensors: loadCheckpoint(file).tensors };
}

function netState(layers: number, v: number, width = 4): Map<string, Tensor> {
  const sd = new Map<string, Tensor>();
  for (let i = 0; i < layers; i++) {
    sd.set(`w${i}`, full([width, width], v, { dtype: "float32" }));
    sd.set(`b${i}`, full([width], v, { dtype: "float32" }));
  }
  sd.set("steps", zeros([], { dtype: "int64" }));
  return sd;
}

function caught(fn: () => unknown): Error {
  try {
    fn();
  } catch (e) {
    return e as Error;
  }
  assert.fail("expected an error");
}

describe("values that cannot be right are refused by the strict loader", () => {
  it("NaN and Inf: the key, the counts and the file are named; the model is left untouched", () => {
    const sd = netState(2, 0.5);
    const w1 = new Float32Array(16).fill(0.5);
    w1.set([Number.NaN, Number.NaN, Number.NaN, Number.POSITIVE_INFINITY, Number.NEGATIVE_INFINITY], 3);
    sd.get("w1")!.dispose();
    sd.set("w1", tensor(w1, [4, 4]));
    const { file, tensors } = fileFor("nan.safetensors", sd);
    const m = new Net(2);
    const err = caught(() => m.loadStateDict(tensors, { source: file }));
    assert.ok(err instanceof StateDictValueError, String(err));
    assert.equal(
      err.message,
      `state dict from ${file} has unusable values:\n  w1: ${file} has 3 NaN and 2 Inf among its 16 values (pass allowNonFinite: true or set DEDOS_ALLOW_NONFINITE=1 to load them anyway)`,
    );
    assert.deepEqual(
      err.problems.map((p) => p.key),
      ["w1"],
    );
    assert.deepEqual(m.stateDict().get("w0")!.toArray(), new Array(16).fill(0), "nothing was copied");
    // The opt-out loads them as they are.
    m.loadStateDict(tensors, { source: file, allowNonFinite: true });
    assert.ok(Number.isNaN(m.stateDict().get("w1")!.toArray()[3]));
    assert.equal(m.stateDict().get("w0")!.toArray()[0], 0.5);
    m.dispose();
  });

  it("integer or bool data for a floating-point parameter names the key, both dtypes and the file", () => {
    const sd = netState(1, 1);
    sd.get("w0")!.dispose();
    sd.set("w0", zeros([4, 4], { dtype: "int64" }));
    sd.get("b0")!.dispose();
    sd.set("b0", zeros([4], { dtype: "bool" }));
    const { file, tensors } = fileFor("ints.safetensors", sd);
    const m = new Net(1);
    const err = caught(() => m.loadStateDict(tensors, { source: file }));
    assert.ok(err instanceof StateDictValueError, String(err));
    assert.equal(
      err.message,
      [
        `state dict from ${file} has unusable values:`,
        `  w0: ${file} has int64 data for the model's float32 parameter (integer or bool tensors are not loaded into floating-point ones)`,
        `  b0: ${file} has bool data for the model's float32 parameter (integer or bool tensors are not loaded into floating-point ones)`,
      ].join("\n"),
    );
    m.dispose();
  });

  it("large finite half-precision values whose sum overflows are not mistaken for Inf", () => {
    const sd = netState(1, 60000, 64);
    for (const [k, t] of sd) {
      if (t.dtype === "float32") {
        sd.set(k, t.to("float16"));
        t.dispose();
      }
    }
    const { file, tensors } = fileFor("big-half.safetensors", sd);
    const m = new Net(1, 64);
    m.loadStateDict(tensors, { source: file });
    assert.equal(m.stateDict().get("w0")!.toArray()[0], 60000);
    m.dispose();
  });
});

describe("a state dict for a model of another size", () => {
  it("the error lists ten keys of each kind with counts; the full lists are on the error", () => {
    const { file, tensors } = fileFor("wide.safetensors", netState(40, 1, 8));
    const m = new Net(60);
    const err = caught(() => m.loadStateDict(tensors, { source: file }));
    assert.ok(err instanceof StateDictError, String(err));
    const lines = err.message.split("\n");
    assert.equal(lines[0], `state dict from ${file} does not fit the model:`);
    assert.ok(lines.length <= 14, `${lines.length} lines:\n${err.message}`);
    assert.equal(lines[1], `  w0: the model expects shape [4, 4], ${file} has [8, 8]`);
    assert.equal(lines[11], "  … and 70 more shape mismatches");
    assert.match(lines[12]!, new RegExp(`^  missing in ${file} \\(40\\): w40, b40, .*, b44, … and 30 more$`));
    assert.equal(
      lines[13],
      "  (set DEDOS_VERBOSE=1 for the full list; it is also on the error: missing, unexpected, mismatched)",
    );
    assert.equal(err.missing.length, 40);
    assert.equal(err.mismatched.length, 80);
    assert.equal(err.shapeMismatches.length, 80);
    m.dispose();

    process.env.DEDOS_VERBOSE = "1";
    try {
      const m2 = new Net(60);
      const all = caught(() => m2.loadStateDict(tensors, { source: file }));
      assert.equal(all.message.split("\n").length, 1 + 80 + 1);
      assert.ok(all.message.includes("b59") && !all.message.includes("more"));
      m2.dispose();
    } finally {
      delete process.env.DEDOS_VERBOSE;
    }
  });
});
