"""One latent vector z shown by two sides, the server (Python) and the browser's sliders: who may move it.

Both sides hold z. Python holds the truth the page is built from (the map's star, the downloads, the
server-decoded image); the browser holds what the sliders show, which runs ahead of Python while the
user drags. Each side may change z:

    Python (a "set")      map click, test index, z = 0, prior sample, posterior sample, a new model
    browser (a "report")  a slider released (browser decoding), or released / dragged (server decoding)

The rule that keeps them in step is one counter, `rev`, owned by Python:
  - every set bumps rev; a report never does;
  - Python sends {z, rev} on every run; the browser moves its sliders only when rev differs from the
    last one it saw, so Python echoing a reported z back (same rev) never moves a slider the user is
    already dragging again;
  - the browser tags each report with the rev its sliders were last set at; Python accepts a report only
    at the current rev: one made before a set (a release racing a button click) is stale and ignored,
    and the browser then receives the set's z with its new rev.

    browser (z_sync.mjs)                   Python (ZSync)
      |  <--- {z: mu, rev: 4} ----------------  set(mu): map click or index     rev 3 -> 4
      |  sliders := mu (rev changed)
      |  drag ... release
      |  ---- report {z: a, rev: 4} ------->  rev matches: z := a              rev 4
      |  <--- {z: a, rev: 4} ----------------  the echo of a
      |  rev unchanged: sliders stay (the user may be dragging again)
      |  release again
      |  ---- report {z: b, rev: 4} --.        "z = 0" clicked meanwhile: set   rev 4 -> 5
      |  <--- {z: 0, rev: 5} ---------+------
      |  sliders := 0 (rev changed)    '---->  rev 4 != 5: stale, ignored      rev 5

A map click moves the sliders in the browser at once (the map's `vae:select` window event); Python's
set for the same click follows with a new rev and the same z. While the sliders move, the decoder
announces z to the map (`vae:z`) so the star follows. Those are the only two window events.

Server decoding also paces its reports (one in flight, drag previews at most every preview_ms): the
Pacer in z_sync.mjs. Python answers each accepted report with the image of its z.

z from slider to picture, in six files:
    app/components/latent_decoder/component.js   the sliders and the canvas (DOM only)
    app/components/latent_decoder/z_sync.mjs     this protocol's browser half (pure; node tests)
    vae_core/js/decode.mjs                        the decoder run in the browser -> pixels
    app/components/latent_decoder.py              the component's Python side: sends {z, rev}, applies reports
    app/components/z_sync.py                      this module: ZSync (pure; pytest)
    app/views/explorer_z.py                       the Explorer's z: the sets, the buttons, server decoding
(server decoding adds vae_core/latent.py's decode in place of decode.mjs).
"""

from __future__ import annotations

import math

from vae_core.constants import SLIDER_RANGE


class ZSync:
    """Python's half: z (clipped to the sliders' range), its revision, and where it came from.

    sync = ZSync([0.0] * k)
    sync.set(mu, origin="μ of test #12")     # a server-side change: the sliders will move
    sync.report({"z": [...], "rev": 3})       # a browser report: True if accepted
    sync.message()                            # {"z": [...], "rev": n} for the browser
    """

    def __init__(self, z, slider_range: float = SLIDER_RANGE, origin: str = ""):
        self.range = float(slider_range)
        self.rev = 0
        self.z: list[float] = []
        self.clipped: list[int] = []  # dims of the last set that lay outside the range (shown as a notice)
        self.origin = ""
        self.set(z, origin)

    def set(self, z, origin: str = "") -> None:
        """A new z from the server (its length may differ: a new model). Values outside ±range are
        clipped and their dims kept in `clipped`; origin says what z is, for the page to show."""
        vals = _finite(z)
        if vals is None:
            raise ValueError(f"z must be a list of finite numbers, got {z!r}")
        self.clipped = [i for i, v in enumerate(vals) if abs(v) > self.range]
        self.z = [self._clip(v) for v in vals]
        self.origin = origin
        self.rev += 1

    def report(self, msg) -> bool:
        """A browser report {"z": [k numbers], "rev": int}. Accepted (True) when it is well formed, has
        this z's length and was made at the current rev; else ignored (False): stale or malformed."""
        if not isinstance(msg, dict) or msg.get("rev") != self.rev:
            return False
        vals = _finite(msg.get("z"))
        if vals is None or len(vals) != len(self.z):
            return False
        self.z = [self._clip(v) for v in vals]
        self.clipped = []
        self.origin = "dragged by hand"
        return True

    def message(self) -> dict:
        """What the browser receives on every run."""
        return {"z": list(self.z), "rev": self.rev}

    def _clip(self, v: float) -> float:
        return min(self.range, max(-self.range, v))


def _finite(z) -> list[float] | None:
    """z as a list of finite floats (a list, tuple, numpy array or tensor), or None."""
    try:
        vals = [float(v) for v in (z.tolist() if hasattr(z, "tolist") else z)]
    except (TypeError, ValueError):
        return None
    return vals if all(math.isfinite(v) for v in vals) else None
