// Finds libtorch for binding.gyp and prints the compiler and linker flags of one part.
// Usage: node config.cjs include|libs|defines|ldflags|describe
//
// Where libtorch comes from, in order:
//   1. $LIBTORCH: a libtorch folder as downloaded from pytorch.org (include/, lib/; Linux CPU or CUDA, or
//      macOS with .dylib files);
//   2. the system's: Debian/Ubuntu `libtorch-dev` (headers in /usr/include, libraries in the multiarch folder
//      /usr/lib/<triplet>, found by where libtorch_cpu.so actually is; nothing x86-64 specific).
// A CUDA libtorch (lib/libtorch_cuda.so) also needs the CUDA toolkit headers ($CUDA_HOME, else
// /usr/local/cuda) and NCCL's headers ($NCCL_HOME, else the CUDA include folder), since c10d's
// ProcessGroupNCCL header includes them.
//
// DEDOS_CONFIG_PLATFORM=linux|darwin overrides process.platform (tests check the macOS flags on Linux).
// As a module, `resolveLibtorch()` and `flags()` are what the install script and the tests use.
const fs = require("node:fs");
const path = require("node:path");

const LIB_EXT = { linux: "so", darwin: "dylib" };

function platform() {
  return process.env.DEDOS_CONFIG_PLATFORM || process.platform;
}

function libFile(dir, name, plat) {
  return path.join(dir, `lib${name}.${LIB_EXT[plat] ?? "so"}`);
}

/** The system libtorch (Debian/Ubuntu libtorch-dev): the library folder that holds libtorch_cpu. */
function systemLibtorch(plat) {
  const root = process.env.DEDOS_SYSTEM_ROOT || "/";
  const inc = path.join(root, "usr/include/torch/csrc/api/include");
  if (!fs.existsSync(inc)) return null;
  const candidates = [];
  const usrLib = path.join(root, "usr/lib");
  if (fs.existsSync(usrLib)) {
    for (const d of fs.readdirSync(usrLib)) {
      const full = path.join(usrLib, d);
      if (/-linux-gnu/.test(d) && fs.statSync(full).isDirectory()) candidates.push(full);
    }
  }
  candidates.push(usrLib, path.join(root, "usr/lib64"), path.join(root, "usr/local/lib"));
  const lib = candidates.find((d) => fs.existsSync(libFile(d, "torch_cpu", plat)));
  if (!lib) return null;
  return { kind: "system", root: path.join(root, "usr"), include: [inc], lib, cuda: false };
}

/** The libtorch this build uses, or an Error that says what is missing and how to get it. */
function resolveLibtorch() {
  const plat = platform();
  const root = process.env.LIBTORCH;
  if (root) {
    const lib = path.join(root, "lib");
    const hasCpu = ["torch_cpu", "torch"].some((n) => fs.existsSync(libFile(lib, n, plat)));
    if (!hasCpu)
      return new Error(
        `LIBTORCH=${root} does not hold ${libFile(lib, "torch_cpu", plat)} (a libtorch folder from pytorch.org has include/ and lib/)`,
      );
    const cuda = plat === "linux" && fs.existsSync(libFile(lib, "torch_cuda", plat));
    const include = [path.join(root, "include"), path.join(root, "include/torch/csrc/api/include")];
    return { kind: "LIBTORCH", root, include, lib, cuda };
  }
  const sys = systemLibtorch(plat);
  if (sys) return sys;
  return new Error(MISSING);
}

const MISSING =
  "libtorch was not found, so the dedos engine (its native addon) was not built. Inference and training need " +
  "it; --help, --version and `dedos doctor` work without it. To get it: on Debian/Ubuntu, " +
  "`sudo apt install libtorch-dev libopenblas0-openmp libgloo-dev` (then select OpenBLAS: " +
  "`sudo update-alternatives --set libblas.so.3-$(gcc -print-multiarch) " +
  "/usr/lib/$(gcc -print-multiarch)/openblas-openmp/libblas.so.3`); anywhere else, download libtorch " +
  "(CPU or CUDA, Linux or macOS) from https://pytorch.org, unpack it and set LIBTORCH=/path/to/libtorch. " +
  "Then rebuild the addon: `npm rebuild dedos` in your app (or `npm run build:native` in a dedos checkout).";

/** CUDA toolkit and NCCL include and library folders (CUDA builds only). */
function cudaFolders() {
  const cudaHome = process.env.CUDA_HOME || process.env.CUDA_PATH || "/usr/local/cuda";
  const ncclHome = process.env.NCCL_HOME || "";
  const include = [path.join(cudaHome, "include")];
  if (ncclHome) include.push(path.join(ncclHome, "include"));
  const lib = [path.join(cudaHome, "lib64")];
  if (ncclHome) lib.push(path.join(ncclHome, "lib"));
  return { include, lib };
}

/** Every flag group for a resolved libtorch `t` on platform `plat`. */
function flags(t, plat = platform()) {
  const include = [...t.include];
  const defines = [t.cuda ? "DEDOS_CUDA=1" : "DEDOS_CPU_ONLY=1"];
  const libDirs = [t.lib];
  if (t.cuda) {
    const c = cudaFolders();
    include.push(...c.include);
    libDirs.push(...c.lib);
  }
  const names = ["torch", "torch_cpu", "c10"];
  if (t.cuda) names.push("torch_cuda", "c10_cuda", "cudart");
  const L = libDirs.map((d) => `-L${d}`);
  const rpath = [`-Wl,-rpath,${t.lib}`];
  const l = names.map((n) => `-l${n}`);
  let libs;
  if (plat === "darwin") {
    // Apple's linker keeps every named library; it has no --as-needed.
    libs = [...L, ...rpath, ...l];
  } else {
    // GNU ld drops libraries no symbol is taken from; libtorch_cuda registers itself at load time.
    libs = [...L, ...rpath, "-Wl,--no-as-needed", ...l, "-Wl,--as-needed", "-ldl"];
  }
  // oneDNN's C++ API for the prepacked, fused linears (packed.cpp): only with a system libtorch, which shares the
  // system's libdnnl (pytorch.org builds carry a private, hidden copy); without it packed.cpp falls back.
  if (t.kind !== "LIBTORCH" && [path.join(t.root, "include"), ...t.include].some((d) => fs.existsSync(path.join(d, "oneapi", "dnnl", "dnnl.hpp")))) {
    defines.push("DEDOS_DNNL=1");
    libs.push("-ldnnl");
  }
  return { include, defines, libs };
}

function describe(t) {
  return `${t.kind === "LIBTORCH" ? `LIBTORCH=${t.root}` : `system libtorch (${t.lib})`}${t.cuda ? ", CUDA" : ", CPU"}`;
}

module.exports = { resolveLibtorch, flags, describe, MISSING };

if (require.main === module) {
  const what = process.argv[2];
  const t = resolveLibtorch();
  if (t instanceof Error) {
    console.error(t.message);
    process.exit(1);
  }
  const f = flags(t);
  if (what === "include") console.log(f.include.join(" "));
  else if (what === "libs") console.log(f.libs.join(" "));
  else if (what === "defines") console.log(f.defines.join(" "));
  else if (what === "describe") console.log(describe(t));
  else {
    console.error("usage: node config.cjs include|libs|defines|describe");
    process.exit(2);
  }
}
