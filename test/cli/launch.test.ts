// The --nproc launcher shared by `dedos eval` and `dedos train`: its flags are read once and not passed on.
import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { parseLaunchFlags, shouldLaunch, withoutLauncherFlags } from "../../src/cli/launch.js";

describe("launcher", () => {
  test("the workers' arguments are the command's without the launcher flags and their values", () => {
    assert.deepEqual(
      withoutLauncherFlags([
        "--config",
        "c.json",
        "--nproc",
        "2",
        "--nnodes=2",
        "--node-rank",
        "1",
        "--data",
        "d",
        "--master-addr",
        "10.0.0.1",
        "--master-port=29500",
        "--resume",
      ]),
      ["--config", "c.json", "--data", "d", "--resume"],
    );
  });

  test("flags: defaults, numbers, and a bad --nproc named", () => {
    assert.deepEqual(parseLaunchFlags({}), {
      nproc: 1,
      nnodes: 1,
      nodeRank: 0,
      addr: undefined,
      port: undefined,
    });
    assert.deepEqual(
      parseLaunchFlags({
        nproc: "2",
        nnodes: "3",
        "node-rank": "1",
        "master-addr": "h",
        "master-port": "29500",
      }),
      { nproc: 2, nnodes: 3, nodeRank: 1, addr: "h", port: 29500 },
    );
    for (const bad of ["0", "1.5", "two"])
      assert.throws(() => parseLaunchFlags({ nproc: bad }), /^Error: --nproc must be a positive integer$/);
  });

  test("a launcher starts workers for several processes or machines; a worker never does", () => {
    const saved = process.env.DEDOS_WORLD_SIZE;
    try {
      delete process.env.DEDOS_WORLD_SIZE;
      assert.equal(shouldLaunch({ nproc: 1, nnodes: 1 }), false);
      assert.equal(shouldLaunch({ nproc: 2 }), true);
      assert.equal(shouldLaunch({ nproc: 1, nnodes: 2 }), true);
      process.env.DEDOS_WORLD_SIZE = "2";
      assert.equal(shouldLaunch({ nproc: 2 }), false);
    } finally {
      if (saved === undefined) delete process.env.DEDOS_WORLD_SIZE;
      else process.env.DEDOS_WORLD_SIZE = saved;
    }
  });
});
