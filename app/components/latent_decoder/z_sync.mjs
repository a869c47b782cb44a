// The browser's half of the z protocol; the protocol and its sequence diagram are written once, in
// app/components/z_sync.py. Pure (no DOM, no clock: times are passed in), so node runs its tests
// (tests/z_sync.test.mjs). latent_decoder.py puts this file before component.js in one module.

// The two window events that carry z between the components of one page.
export const Z_EVENTS = {
  select: "vae:select",  // map -> decoder, {z, testIndex}: a clicked point's mean, ahead of Python
  z: "vae:z",            // decoder -> map, {z}: the sliders moved; the star follows
};
export const LOST_MS = 3000;  // a server request unanswered this long is given up (its rerun was cut short)

export function sameZ(a, b) {
  if (!a || !b || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (Number(a[i]) !== Number(b[i])) return false;
  return true;
}

// z as the sliders show it, and the rev of Python's last set.
export class ZSync {
  constructor() {
    this.z = null;    // Float64Array(k); the sliders may round it to their step, z keeps the exact value
    this.rev = null;
  }

  // Python's {z, rev}, sent on every run. True when the sliders must move to msg.z: a set on the
  // server (a new rev) or new sliders (`rebuilt`). False for the echo of our own report.
  receive(msg, rebuilt = false) {
    const move = rebuilt || this.z === null || msg.rev !== this.rev || msg.z.length !== this.z.length;
    this.rev = msg.rev;
    if (move) this.z = Float64Array.from(msg.z, (v) => Number(v) || 0);
    return move;
  }

  // a slider moved: z_i = v
  edit(i, v) {
    this.z[i] = v;
  }

  // the map moved the sliders ahead of Python (Z_EVENTS.select); Python's set follows with a new rev.
  // False (nothing changed) for a z of another length.
  local(z) {
    if (!this.z || !Array.isArray(z) || z.length !== this.z.length) return false;
    this.z = Float64Array.from(z, (v) => Number(v) || 0);
    return true;
  }

  // the report Python accepts only at its current rev
  report() {
    return { z: Array.from(this.z), rev: this.rev };
  }
}

// Server decoding: which report to send and when. One request in flight; a release goes as soon as
// the slot is free, a drag preview also waits until previewMs have passed since the last request
// (previewMs null: no previews, releases only). A request unanswered for LOST_MS is given up.
export class Pacer {
  constructor(previewMs = null) {
    this.previewMs = previewMs;
    this.inflight = null;  // {msg, t}
    this.wanted = null;    // {msg, release}: the newest z still to send
    this.lastSent = null;
    this.lastSentAt = -Infinity;
    this.lost = 0;
  }

  // the sliders moved (release false: a drag step) or were released
  want(msg, release) {
    if (!release && this.previewMs == null) return;
    this.wanted = sameZ(msg.z, this.lastSent) ? null : { msg, release };
  }

  // a set from Python replaces whatever waits
  drop() {
    this.wanted = null;
  }

  // Python's message: the answer to the request in flight (its z) or any newer rev frees the slot.
  // Returns the round trip in ms, or null when it answered nothing.
  answered(msg, now) {
    const f = this.inflight;
    if (!f || (msg.rev === f.msg.rev && !sameZ(msg.z, f.msg.z))) return null;
    this.inflight = null;
    return now - f.t;
  }

  // What to do at time `now`: {send: msg} (it is then in flight), {wait: ms} (ask again after), or null.
  next(now) {
    if (!this.wanted) return null;
    if (this.inflight) {
      const age = now - this.inflight.t;
      if (age < LOST_MS) return { wait: LOST_MS - age };
      this.lost++;
      this.inflight = null;
    }
    const wait = this.wanted.release ? 0 : this.lastSentAt + this.previewMs - now;
    if (wait > 0) return { wait };
    const { msg } = this.wanted;
    this.wanted = null;
    this.inflight = { msg, t: now };
    this.lastSent = msg.z;
    this.lastSentAt = now;
    return { send: msg };
  }
}
