// The browser's half of the z protocol (app/components/latent_decoder/z_sync.mjs), run by
// `node --test tests/z_sync.test.mjs` (tests/test_z_sync.py runs it under pytest).
import { test } from "node:test";
import assert from "node:assert/strict";

import { LOST_MS, Pacer, ZSync, sameZ } from "../app/components/latent_decoder/z_sync.mjs";

test("a new rev from Python moves the sliders; the echo of our own report does not", () => {
  const s = new ZSync();
  assert.equal(s.receive({ z: [0.5, -1], rev: 1 }), true);  // the first message: sliders show it
  assert.deepEqual(Array.from(s.z), [0.5, -1]);
  s.edit(0, 2.25);                                          // the user drags slider 0 and releases
  const a = s.report();
  assert.deepEqual(a, { z: [2.25, -1], rev: 1 });
  s.edit(1, 1.5);                                           // ... and drags slider 1 meanwhile
  assert.equal(s.receive({ z: a.z, rev: 1 }), false);        // Python's echo of a: same rev
  assert.deepEqual(Array.from(s.z), [2.25, 1.5]);            // slider 1 is not yanked back
  assert.equal(s.receive({ z: [0, 0], rev: 2 }), true);      // "z = 0": a set, a new rev
  assert.deepEqual(s.report(), { z: [0, 0], rev: 2 });
});

test("a rebuilt slider set, or one of another length, always takes Python's z", () => {
  const s = new ZSync();
  s.receive({ z: [1, 2], rev: 5 });
  s.edit(0, -1);
  assert.equal(s.receive({ z: [1, 2], rev: 5 }, true), true);
  assert.deepEqual(Array.from(s.z), [1, 2]);
  assert.equal(s.receive({ z: [1, 2, 3], rev: 5 }), true);   // another model, same rev
  assert.equal(s.z.length, 3);
});

test("a map click moves z ahead of Python without changing the rev", () => {
  const s = new ZSync();
  assert.equal(s.local([1, 1]), false);                      // before the first message: nothing to move
  s.receive({ z: [0, 0], rev: 3 });
  assert.equal(s.local([1, 2, 3]), false);                   // another length: ignored
  assert.equal(s.local([0.25, -3]), true);
  assert.deepEqual(s.report(), { z: [0.25, -3], rev: 3 });
  assert.equal(s.receive({ z: [0.25, -3], rev: 4 }), true);  // Python's set for the same click follows
});

test("sameZ compares values, not types", () => {
  assert.equal(sameZ([1, 2], Float64Array.from([1, 2])), true);
  assert.equal(sameZ([1, 2], [1, 2.5]), false);
  assert.equal(sameZ([1], [1, 2]), false);
  assert.equal(sameZ(null, [1]), false);
});

const msg = (z, rev = 1) => ({ z, rev });

test("pacer: a release goes at once, one request in flight, the answer frees the slot", () => {
  const p = new Pacer(100);
  p.want(msg([1]), true);
  assert.deepEqual(p.next(0), { send: msg([1]) });
  assert.equal(p.next(1), null);                             // nothing left to send
  p.want(msg([2]), true);
  assert.deepEqual(p.next(10), { wait: LOST_MS - 10 });     // [1] still in flight
  assert.equal(p.answered(msg([0]), 20), null);              // an unrelated rerun, same rev: not the answer
  assert.equal(p.answered(msg([1]), 30), 30);                // the answer: round trip 30 ms
  assert.deepEqual(p.next(30), { send: msg([2]) });
});

test("pacer: drag previews at most every previewMs, the newest z wins, a set from Python drops it", () => {
  const p = new Pacer(100);
  p.want(msg([1]), false);
  assert.deepEqual(p.next(0), { send: msg([1]) });
  p.answered(msg([1]), 20);
  p.want(msg([2]), false);
  p.want(msg([3]), false);
  assert.deepEqual(p.next(40), { wait: 60 });
  assert.deepEqual(p.next(100), { send: msg([3]) });
  p.answered(msg([3]), 120);
  p.want(msg([4]), false);
  p.drop();
  assert.equal(p.next(500), null);
  p.want(msg([3]), true);                                   // the z last sent: nothing to ask
  assert.equal(p.next(600), null);
});

test("pacer: no previews without previewMs; a new rev answers; a lost request is given up", () => {
  const p = new Pacer(null);
  p.want(msg([1]), false);
  assert.equal(p.next(0), null);
  p.want(msg([1]), true);
  assert.deepEqual(p.next(0), { send: msg([1]) });
  assert.equal(p.answered({ z: [9], rev: 2 }, 50), 50);      // Python set z meanwhile (report was stale)
  p.want(msg([2], 2), true);
  assert.deepEqual(p.next(60), { send: msg([2], 2) });
  p.want(msg([3], 2), true);
  assert.deepEqual(p.next(60 + LOST_MS), { send: msg([3], 2) });  // [2] never answered
  assert.equal(p.lost, 1);
});
