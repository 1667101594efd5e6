// `dedos doctor`: what a bug report needs, and works without the engine (it says why the engine is missing).
import { existsSync, readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import { PACKAGE_ROOT } from "../util/assets.js";
import { packageVersion } from "./version.js";

const HELP = `dedos doctor — print what a bug report needs

Prints the versions of dedos, Node and libtorch, where libtorch was found, the native addon, the BLAS in
use and its core type, thread counts, transparent huge pages, and CUDA devices (or why there are none).
Works without a built engine: it then says what is missing and how to get it.`;

interface LibtorchConfig {
  resolveLibtorch(): Error | { kind: string; root: string; lib: string; cuda: boolean };
  describe(t: object): string;
}

function line(key: string, value: string): void {
  console.log(`${`${key}:`.padEnd(18)} ${value}`);
}

function readText(file: string): string | null {
  try {
    return readFileSync(file, "utf8").trim();
  } catch {
    return null;
  }
}

export async function doctorCommand(argv: string[]): Promise<number> {
  if (argv.includes("--help") || argv.includes("-h")) {
    console.log(HELP);
    return 0;
  }
  line("dedos", `${packageVersion()} (${PACKAGE_ROOT})`);
  line("node", `${process.version} ${process.platform}-${process.arch}`);
  const cfg = createRequire(import.meta.url)(join(PACKAGE_ROOT, "native", "config.cjs")) as LibtorchConfig;
  const lt = cfg.resolveLibtorch();
  line("libtorch", lt instanceof Error ? "not found" : cfg.describe(lt));
  const addon = join(PACKAGE_ROOT, "native", "build", "Release", "dedos_native.node");
  line("addon", existsSync(addon) ? addon : "not built");
  const thp = readText("/sys/kernel/mm/transparent_hugepage/enabled");
  line("huge pages", thp ? `${thp} (DEDOS_HUGEPAGES=${process.env.DEDOS_HUGEPAGES ?? "default"})` : "n/a");
  line("OPENBLAS_CORETYPE", process.env.OPENBLAS_CORETYPE ?? "(auto-detected)");
  try {
    const t = await import("../torch/tensor.js");
    const { native } = await import("../torch/native.js");
    const n = native as unknown as Record<string, () => unknown>;
    const config = String(n.config!());
    const version = /TORCH_VERSION=([\w.+-]+)/.exec(config)?.[1] ?? "unknown";
    line("engine", `loaded, libtorch ${version}`);
    const blas = n.blasInfo!() as { core?: string; threads?: number };
    line("BLAS", blas.core ? `OpenBLAS, core ${blas.core}, ${blas.threads} thread(s)` : "not OpenBLAS");
    line(
      "threads",
      `${t.getNumThreads()} intra-op (DEDOS_NUM_THREADS=${process.env.DEDOS_NUM_THREADS ?? "unset"})`,
    );
    const cuda = t.hasCuda()
      ? `${Number(n.cudaDeviceCount!())} device(s)`
      : "none (this libtorch has no CUDA)";
    line("CUDA", cuda);
    return 0;
  } catch (e) {
    line("engine", "not available");
    console.log(`\n${lt instanceof Error ? lt.message : (e as Error).message}`);
    return 1;
  }
}
