// native/config.cjs and native/install.cjs on fake libtorch layouts: the flags a pytorch.org libtorch (Linux
// CPU and CUDA, macOS), a Debian/Ubuntu system libtorch on another architecture, and no libtorch at all give.
// Only the Debian x86-64 layout is built for real here (make setup); the others are checked as flags.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, it } from "node:test";
import { tempDir } from "../temp-dir.js";

const root = tempDir("dedos-native-config-");

/** A folder tree with empty files at the given relative paths. */
function layout(name: string, files: string[]): string {
  const dir = join(root, name);
  for (const f of files) {
    mkdirSync(join(dir, f, ".."), { recursive: true });
    if (!f.endsWith("/")) writeFileSync(join(dir, f), "");
  }
  return dir;
}

/** Runs `node native/config.cjs what` with only the given variables (plus PATH). */
function config(what: string, env: Record<string, string>) {
  const r = spawnSync(process.execPath, ["native/config.cjs", what], {
    encoding: "utf8",
    env: { PATH: process.env.PATH ?? "", DEDOS_SYSTEM_ROOT: join(root, "empty"), ...env },
  });
  return { status: r.status, out: r.stdout.trim(), err: r.stderr.trim() };
}

/** A pytorch.org libtorch folder: headers and the named libraries with the platform's extension. */
const libtorch = (name: string, ext: string, libs: string[]) =>
  layout(name, ["include/torch/csrc/api/include/torch/torch.h", ...libs.map((l) => `lib/lib${l}.${ext}`)]);
const pytorchLinux = libtorch("libtorch-cpu", "so", ["torch", "torch_cpu", "c10"]);
const pytorchCuda = libtorch("libtorch-cuda", "so", ["torch", "torch_cpu", "torch_cuda", "c10", "c10_cuda"]);
const cudaHome = layout("cuda", ["include/cuda_runtime.h", "lib64/libcudart.so"]);
const ncclHome = layout("nccl", ["include/nccl.h", "lib/libnccl.so"]);
const pytorchMac = libtorch("libtorch-mac", "dylib", ["torch", "torch_cpu", "c10"]);
const debianArm = layout("debian-arm64", [
  "usr/include/torch/csrc/api/include/torch/torch.h",
  "usr/lib/aarch64-linux-gnu/libtorch_cpu.so",
  "usr/lib/aarch64-linux-gnu/libtorch.so",
]);
layout("empty", ["usr/"]);

describe("native/config.cjs", () => {
  it("a pytorch.org libtorch for Linux (CPU): its include folders, rpath, GNU linker flags", () => {
    const env = { LIBTORCH: pytorchLinux, DEDOS_CONFIG_PLATFORM: "linux" };
    assert.equal(
      config("include", env).out,
      `${pytorchLinux}/include ${pytorchLinux}/include/torch/csrc/api/include`,
    );
    assert.equal(
      config("libs", env).out,
      `-L${pytorchLinux}/lib -Wl,-rpath,${pytorchLinux}/lib -Wl,--no-as-needed -ltorch -ltorch_cpu -lc10 -Wl,--as-needed -ldl`,
    );
    assert.equal(config("defines", env).out, "DEDOS_CPU_ONLY=1");
  });

  it("a CUDA libtorch: CUDA and NCCL headers for c10d's NCCL group, the CUDA libraries linked", () => {
    const env = {
      LIBTORCH: pytorchCuda,
      CUDA_HOME: cudaHome,
      NCCL_HOME: ncclHome,
      DEDOS_CONFIG_PLATFORM: "linux",
    };
    assert.equal(config("defines", env).out, "DEDOS_CUDA=1");
    const inc = config("include", env).out.split(" ");
    assert.ok(inc.includes(`${cudaHome}/include`) && inc.includes(`${ncclHome}/include`), inc.join(" "));
    const libs = config("libs", env).out.split(" ");
    for (const f of [`-L${cudaHome}/lib64`, `-L${ncclHome}/lib`, "-ltorch_cuda", "-lc10_cuda", "-lcudart"])
      assert.ok(libs.includes(f), `${f} missing from ${libs.join(" ")}`);
    // libtorch_cuda must stay linked although no symbol is taken from it directly.
    assert.ok(libs.indexOf("-ltorch_cuda") < libs.indexOf("-Wl,--as-needed"));
    assert.match(config("describe", env).out, /LIBTORCH=.*, CUDA/);
  });

  it("macOS: .dylib libraries, rpath, no GNU-only flags; a Linux folder is refused there", () => {
    const env = { LIBTORCH: pytorchMac, DEDOS_CONFIG_PLATFORM: "darwin" };
    assert.equal(
      config("libs", env).out,
      `-L${pytorchMac}/lib -Wl,-rpath,${pytorchMac}/lib -ltorch -ltorch_cpu -lc10`,
    );
    assert.equal(config("defines", env).out, "DEDOS_CPU_ONLY=1");
    const linuxOnMac = config("libs", { LIBTORCH: pytorchLinux, DEDOS_CONFIG_PLATFORM: "darwin" });
    assert.equal(linuxOnMac.status, 1);
    assert.match(linuxOnMac.err, /does not hold .*libtorch_cpu\.dylib/);
  });

  it("a Debian/Ubuntu system libtorch is found in its multiarch folder (here arm64), not a fixed path", () => {
    const env = { DEDOS_SYSTEM_ROOT: debianArm, DEDOS_CONFIG_PLATFORM: "linux" };
    assert.equal(config("include", env).out, `${debianArm}/usr/include/torch/csrc/api/include`);
    assert.match(config("libs", env).out, new RegExp(`^-L${debianArm}/usr/lib/aarch64-linux-gnu `));
  });

  it("no libtorch: one paragraph naming the apt packages and LIBTORCH; the install still succeeds", () => {
    const r = config("libs", { DEDOS_CONFIG_PLATFORM: "linux" });
    assert.equal(r.status, 1);
    assert.match(r.err, /libtorch was not found/);
    assert.match(r.err, /apt install libtorch-dev libopenblas0-openmp libgloo-dev/);
    assert.match(r.err, /LIBTORCH=\/path\/to\/libtorch/);
    const install = spawnSync(process.execPath, ["native/install.cjs"], {
      encoding: "utf8",
      env: { PATH: process.env.PATH ?? "", DEDOS_SYSTEM_ROOT: join(root, "empty") },
    });
    assert.equal(install.status, 0, install.stderr);
    assert.match(install.stderr, /libtorch was not found/);
  });
});
