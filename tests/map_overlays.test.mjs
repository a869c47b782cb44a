// The latent map's overlays in app/components/latent_map/points.mjs, run by
// `node --test tests/map_overlays.test.mjs` (tests/test_map_overlays.py runs it under pytest):
// the label highlight of "Map points by label" and the selected point's q(z|x) sample cloud.
import { test } from "node:test";
import assert from "node:assert/strict";

import { DIMMED, cloudDots, pointColours } from "../app/components/latent_map/points.mjs";

const classes = [{ label: 0, color: "#ff0000" }, { label: 1, color: "#00ff00" }, { label: 2, color: "#0000ff" }];
const labels = Int16Array.from([0, 1, 2, 1, 0, 2]);
const rgba = (c, i) => Array.from(c.subarray(4 * i, 4 * i + 4));

test("no highlight: every label in its own colour", () => {
  const c = pointColours(6, labels, classes, new Set(), { mode: "label" }, null);
  assert.deepEqual(rgba(c, 0), [255, 0, 0, 191]);
  assert.deepEqual(rgba(c, 1), [0, 255, 0, 191]);
  assert.deepEqual(rgba(c, 2), [0, 0, 255, 191]);
});

test("a highlighted label keeps its colour, the others are dimmed but still drawn", () => {
  const c = pointColours(6, labels, classes, new Set(), { mode: "label" }, null, 191, 1);
  for (const i of [1, 3]) assert.deepEqual(rgba(c, i), [0, 255, 0, 191]);
  for (const i of [0, 2, 4, 5]) assert.deepEqual(rgba(c, i), DIMMED);
  assert.ok(DIMMED[3] > 0 && DIMMED[3] < 191 / 3);  // faded, yet visible (and pickable)
});

test("a hidden label stays hidden under a highlight; value colours keep the highlighted label's ramp", () => {
  const c = pointColours(6, labels, classes, new Set([2]), { mode: "label" }, null, 191, 0);
  for (const i of [2, 5]) assert.equal(c[4 * i + 3], 0);
  assert.deepEqual(rgba(c, 1), DIMMED);
  const values = Float32Array.from([0, 0, 0, 0, 1, 0]);
  const v = pointColours(6, labels, classes, new Set(), { mode: "value", range: [0, 1] }, values, 191, 0);
  assert.deepEqual(rgba(v, 0), [68, 1, 84, 191]);     // viridis at 0
  assert.deepEqual(rgba(v, 4), [253, 231, 37, 191]);  // viridis at 1
  assert.deepEqual(rgba(v, 1), DIMMED);
});

test("the cloud is drawn only for its point set and the selected point, and only inside the box", () => {
  const t = { ax: 10, bx: 100, ay: -10, by: 100 }, b = { x: 0, y: 0, w: 200, h: 200 };
  const cloud = { points_id: "p1", testIndex: 7, xy: [0, 0, 1, 2, 50, 0] };
  assert.deepEqual(cloudDots(cloud, "p1", 7, t, b), [[100, 100], [110, 80]]);  // (50, 0) is off the box
  assert.deepEqual(cloudDots(cloud, "p1", 8, t, b), []);   // another point selected since
  assert.deepEqual(cloudDots(cloud, "p2", 7, t, b), []);   // another projection
  assert.deepEqual(cloudDots(null, "p1", 7, t, b), []);
  assert.deepEqual(cloudDots({ ...cloud, xy: null }, "p1", 7, t, b), []);  // the toggle is off
});
