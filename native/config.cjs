// Finds libtorch for binding.gyp: $LIBTORCH (a libtorch folder as downloaded from pytorch.org, CPU or CUDA)
// or Debian's libtorch-dev. Usage: node config.cjs include|libs|defines
const fs = require("node:fs");
const path = require("node:path");

function find() {
  const root = process.env.LIBTORCH;
  if (root) {
    const lib = path.join(root, "lib");
    if (!fs.existsSync(path.join(lib, "libtorch_cpu.so")) && !fs.existsSync(path.join(lib, "libtorch.so"))) {
      throw new Error(`LIBTORCH=${root} does not hold lib/libtorch_cpu.so`);
    }
    const cuda = fs.existsSync(path.join(lib, "libtorch_cuda.so"));
    return { include: [path.join(root, "include"), path.join(root, "include/torch/csrc/api/include")], lib, cuda };
  }
  const inc = "/usr/include/torch/csrc/api/include";
  if (!fs.existsSync(inc)) {
    throw new Error("libtorch not found: install Debian's libtorch-dev (make setup does) or set LIBTORCH to a libtorch folder");
  }
  return { include: [inc], lib: "/usr/lib/x86_64-linux-gnu", cuda: false };
}

const t = find();
const what = process.argv[2];
if (what === "include") console.log(t.include.join(" "));
else if (what === "libs") {
  const libs = [`-L${t.lib}`, `-Wl,-rpath,${t.lib}`, "-Wl,--no-as-needed", "-ltorch", "-ltorch_cpu", "-lc10"];
  if (t.cuda) libs.push("-ltorch_cuda", "-lc10_cuda");
  libs.push("-Wl,--as-needed", "-ldl");
  console.log(libs.join(" "));
} else if (what === "defines") console.log(t.cuda ? "DEDOS_CUDA=1" : "DEDOS_CPU_ONLY=1");
else throw new Error("usage: node config.cjs include|libs|defines");
