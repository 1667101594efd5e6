import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { roundHalfEven } from "../../src/util/math.js";

describe("roundHalfEven", () => {
  it("rounds halves to the even neighbour, as numpy and Python do, on both signs", () => {
    assert.deepEqual([0.5, 1.5, 2.5, -0.5, 2.4, 2.6].map(roundHalfEven), [0, 2, 2, -0, 2, 3]);
    assert.deepEqual([-1.5, -2.5, 999.5, 1000.5, 12.0].map(roundHalfEven), [-2, -2, 1000, 1000, 12]);
  });
});
