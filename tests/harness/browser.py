"""Browser-test plumbing: a `streamlit run` server, headless Chromium, and measurements.

Used by tests/browser/ and by bench/ scripts (latency benchmarks):

    from tests.harness.browser import StreamlitServer, chromium, new_page, first_paint_ms, drag_slider

    with StreamlitServer("app/main.py") as server, chromium() as browser:
        page = new_page(browser)
        ms = first_paint_ms(page, server.url + "/explorer")
        lat = drag_slider(page, 0, [0.5 + 0.01 * i for i in range(1, 50)])  # ms per step

Measurements read the canvas pixels themselves (independent of the component) plus the
component's own hook window.__vaeDecoder = {frames, lastDecodeMs, decodeMs, inputToPaintMs, ...},
installed because StreamlitServer runs the app with VAE_DEBUG_HOOKS=1 (app.settings.debug_hooks).
"""

from __future__ import annotations

import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

from app.settings import DEBUG_HOOKS_ENV

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))  # tests/harness -> repo root
# Debian's Chromium (playwright's own browser download cannot work offline); VAE_CHROMIUM overrides it.
CHROMIUM = os.environ.get("VAE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
SCREENSHOT_DIR = os.path.join(REPO, "tests", "browser", "screenshots")

# The decoder component lives in a shadow root; Playwright CSS locators pierce open shadow roots.
CANVAS = "[data-testid=vae-decoder-canvas]"


def slider(i: int) -> str:
    return f"[data-testid=vae-decoder-slider-{i}]"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class StreamlitServer:
    """`streamlit run <script>` on a free port, from the repo root; waits for /_stcore/health.
    The components' measurement hooks are on (VAE_DEBUG_HOOKS=1) unless env says otherwise."""

    def __init__(self, script: str, env: dict | None = None, timeout: float = 600.0, root: str = REPO):
        """root: the checkout to run (another one, e.g. a worktree of the code before a change, runs
        with its own root first on PYTHONPATH, not the editable install's)."""
        self.script, self.timeout, self.root = script, timeout, root
        self.env = {**os.environ, DEBUG_HOOKS_ENV: "1", **(env or {})}
        if root != REPO:
            self.env["PYTHONPATH"] = root
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.log = tempfile.NamedTemporaryFile(prefix="streamlit-", suffix=".log", delete=False)

    def __enter__(self) -> StreamlitServer:
        cmd = [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            self.script,
            "--server.headless",
            "true",
            "--server.port",
            str(self.port),
            "--server.address",
            "127.0.0.1",
            "--browser.gatherUsageStats",
            "false",
            "--server.fileWatcherType",
            "none",
        ]
        self.proc = subprocess.Popen(cmd, cwd=self.root, env=self.env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"streamlit exited with {self.proc.returncode}:\n{self.read_log()}")
            try:
                with urllib.request.urlopen(self.url + "/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        return self
            except OSError:
                pass
            time.sleep(0.25)
        self.__exit__(None, None, None)
        raise TimeoutError(f"streamlit did not answer /_stcore/health in {self.timeout:.0f} s:\n{self.read_log()}")

    def read_log(self) -> str:
        with open(self.log.name, encoding="utf-8", errors="replace") as f:
            return f.read()[-4000:]

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.log.close()


@contextlib.contextmanager
def chromium():
    """Headless Debian Chromium via Playwright; the caller checks CHROMIUM exists."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


def new_page(browser, width: int = 1400, height: int = 1000):
    page = browser.new_page(viewport={"width": width, "height": height})
    page.set_default_timeout(300_000)  # hang guard: a loaded 2-core machine is slow, not stuck
    return page


def hook(page, key: str | None = None) -> dict:
    """The component's measurement hook (a copy), {} if it is not there yet."""
    return page.evaluate(
        "k => JSON.parse(JSON.stringify((k ? (window.__vaeDecoders || {})[k] : window.__vaeDecoder) || {}))", key
    )


def wait_for_frames(page, at_least: int = 1, timeout_ms: float = 300_000) -> None:
    page.wait_for_function(
        "n => window.__vaeDecoder && window.__vaeDecoder.frames >= n", arg=at_least, timeout=timeout_ms
    )


def canvas_pixels(page) -> list[int]:
    """RGBA bytes of the decoded image, read back from the canvas."""
    return page.locator(CANVAS).first.evaluate(
        "c => Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data)"
    )


def slider_values(page) -> list[float]:
    return page.locator("[data-testid^=vae-decoder-slider-]").evaluate_all("els => els.map(e => parseFloat(e.value))")


def first_paint_ms(page, url: str, timeout_ms: float = 120_000) -> float:
    """Navigation start to the first decoded frame on the canvas, in ms."""
    t0 = time.perf_counter()
    page.goto(url)
    wait_for_frames(page, 1, timeout_ms)
    return (time.perf_counter() - t0) * 1000


def slider_track(page, dim: int) -> tuple[float, float, float]:
    """(y, x0, width) in viewport px of slider `dim`'s track: x0 + f * width is fraction f of its range
    (8 px in from each end, the thumb's half width)."""
    box = page.locator(slider(dim)).bounding_box()
    return box["y"] + box["height"] / 2, box["x"] + 8, box["width"] - 16


def drag_slider(page, dim: int, fractions: list[float], on_step=None) -> list[float]:
    """Press the mouse on slider `dim`, move through `fractions` of its width, then release.

    After each move waits for a new frame and calls on_step(i) while the mouse is still down.
    Returns the move-to-new-frame latency (ms) of every step, measured from Python.
    """
    y, x0, w = slider_track(page, dim)
    x_of = lambda f: x0 + f * w  # noqa: E731
    page.mouse.move(x_of(0.5), y)
    page.mouse.down()
    lat = []
    for i, f in enumerate(fractions):
        before = page.evaluate("window.__vaeDecoder.frames")
        t0 = time.perf_counter()
        page.mouse.move(x_of(f), y)
        page.wait_for_function("n => window.__vaeDecoder.frames > n", arg=before, timeout=10_000)
        lat.append((time.perf_counter() - t0) * 1000)
        if on_step is not None:
            on_step(i)
    page.mouse.up()
    return lat


def map_drawn(page) -> int:
    """Data points drawn on the explorer's canvas map (its hook window.__vaeMap), 0 before."""
    return page.evaluate("() => (window.__vaeMap && window.__vaeMap.drawn) || 0")


def wait_for_map(page, at_least: int = 1, timeout_ms: float = 600_000) -> None:
    page.wait_for_function("n => window.__vaeMap && window.__vaeMap.drawn >= n", arg=at_least, timeout=timeout_ms)


def map_points(page, spacing_px: float = 0.0) -> list[list[float]]:
    """Viewport centres [x, y, test index] of the visible map points, except the selected one (a click
    on it changes nothing). spacing_px > 0 keeps only points that far from every other kept one's
    neighbours, so a click cannot land on an overlapping point instead."""
    pts = page.evaluate(
        """sp => {
      const h = window.__vaeMap, sel = h.selectedIndex ? h.selectedIndex() : null;
      const all = h.points().filter(p => p.testIndex !== sel);
      if (!(sp > 0)) return all.map(p => [p.x, p.y, p.testIndex]);
      return all.filter(p => all.every(q => q === p || Math.hypot(p.x - q.x, p.y - q.y) >= sp))
                .map(p => [p.x, p.y, p.testIndex]);
    }""",
        spacing_px,
    )
    return pts


def click_to_sliders_ms(page, xy, timeout_ms: float = 30_000) -> float:
    """Click a map point at screen xy; ms until the decoder's z (the sliders) has changed."""
    z0 = page.evaluate("window.__vaeDecoder.z")
    t0 = time.perf_counter()
    page.mouse.click(xy[0], xy[1])
    page.wait_for_function("z0 => window.__vaeDecoder.z.some((v, i) => v !== z0[i])", arg=z0, timeout=timeout_ms)
    return (time.perf_counter() - t0) * 1000


def drag_fps(page, dim: int, seconds: float = 2.0, hz: float = 120.0) -> dict:
    """Drag slider `dim` back and forth with mouse moves paced at `hz` (like a hand) for `seconds`.

    Returns frames per second drawn while dragging, and the component's own per-frame timings.
    """
    y, x0, w = slider_track(page, dim)
    page.mouse.move(x0 + w / 2, y)
    page.mouse.down()
    h0 = hook(page)
    t0 = time.perf_counter()
    n = 0
    while time.perf_counter() - t0 < seconds:
        phase = (n / hz) % 2.0  # a 1 s sweep right, then 1 s back
        page.mouse.move(x0 + w * (phase if phase < 1 else 2 - phase), y)
        n += 1
        time.sleep(max(0.0, t0 + n / hz - time.perf_counter()))
    elapsed = time.perf_counter() - t0
    h1 = hook(page)
    page.mouse.up()
    frames = h1["frames"] - h0["frames"]
    new = min(frames, len(h1["decodeMs"]))
    return {
        "fps": frames / elapsed,
        "moves": n,
        "frames": frames,
        "decode_ms": h1["decodeMs"][-new:] if new else [],
        "input_to_paint_ms": h1["inputToPaintMs"][-new:] if new else [],
    }


def synthetic_drag_fps(page, dim: int, seconds: float = 2.0, hz: float = 120.0) -> dict:
    """In-page `input` events on slider `dim` at `hz` for `seconds`: frames per second the component
    draws when input is not limited by the test driver's round trips (rAF caps it at the display rate)."""
    return page.locator(slider(dim)).evaluate(
        """(el, [seconds, hz]) => new Promise(resolve => {
      const h = window.__vaeDecoder, f0 = h.frames, t0 = performance.now();
      let n = 0;
      const timer = setInterval(() => {
        const t = (performance.now() - t0) / 1000;
        if (t >= seconds) {
          clearInterval(timer);
          resolve({ fps: (h.frames - f0) / t, events: n, frames: h.frames - f0 });
          return;
        }
        const ph = t % 2;
        el.value = String(-3 + 6 * (ph < 1 ? ph : 2 - ph));
        el.dispatchEvent(new Event("input", { bubbles: true }));
        n++;
      }, 1000 / hz);
    })""",
        [seconds, hz],
    )


def percentiles(xs: list[float]) -> dict:
    xs = sorted(xs)
    q = lambda p: xs[min(len(xs) - 1, int(round(p * (len(xs) - 1))))]  # noqa: E731
    return {"n": len(xs), "p50": q(0.5), "p95": q(0.95), "mean": statistics.fmean(xs), "max": xs[-1]}


class WebSocketBytes:
    """Sizes of the websocket frames the page receives (Streamlit deltas), for "sent once" checks."""

    def __init__(self, page):
        self.frames: list[int] = []
        page.on("websocket", lambda ws: ws.on("framereceived", self._add))

    def _add(self, payload) -> None:
        self.frames.append(len(payload))

    def mark(self) -> int:
        return len(self.frames)

    def since(self, mark: int) -> list[int]:
        return self.frames[mark:]


def save_screenshot(page, name: str, extra_dir: str | None = None) -> str:
    """Full-page PNG in tests/browser/screenshots/ (gitignored) and optionally extra_dir too."""
    os.makedirs(SCREENSHOT_DIR, exist_ok=True)
    path = os.path.join(SCREENSHOT_DIR, name)
    page.screenshot(path=path, full_page=True)
    if extra_dir:
        os.makedirs(extra_dir, exist_ok=True)
        page.screenshot(path=os.path.join(extra_dir, name), full_page=True)
    return path


def wait_idle(page, timeout_s: float = 300) -> None:
    """Until Streamlit's running indicator has been gone for three checks in a row (a hang guard only)."""
    calm, deadline = 0, time.monotonic() + timeout_s
    while calm < 3:
        assert time.monotonic() < deadline, "the page never finished running"
        calm = 0 if page.locator("[data-testid=stStatusWidget]").count() else calm + 1
        page.wait_for_timeout(500)
