"""Browser latency of the app, in headless Chromium against `streamlit run app/main.py`.

Measured (timings from Python around Playwright actions, so they include the browser, the
websocket and Streamlit's rerun; p50/p95 over >= 50 interactions each):
  launch        server spawn -> /_stcore/health, then page load -> latent map drawn (shipped checkpoint
                in a fresh cache dir); a second session on the warm server too. Target <= 5 s.
  train         empty cache: Train page, press Train with the form's defaults (or --train-epochs),
                then the explorer's map of the new model. Target <= 60 s.
  drag          in-browser MLP decoder: mouse-drag a slider in >= 50 steps, each step waits for the
                next painted frame; fps = 1000 / per-step latency. Target >= 30 fps.
  click         map click -> the sliders show the clicked point's mean. Target p95 <= 300 ms.
  server decode conv model, "Decode in the browser" switched off: keyboard step of a server slider -> new image.
                Target p95 <= 150 ms.
Helpers: tests/harness/browser.py (server, Chromium, the decoder component's hook).
"""

from __future__ import annotations

import os
import tempfile
import time

import benchlib as bl


def map_points(page) -> int:
    """Data points drawn on the explorer's canvas map (0 before it is drawn)."""
    from tests.harness.browser import map_drawn

    return map_drawn(page)


def wait_for_map(page, at_least: int = 1, timeout_ms: float = 600_000) -> None:
    from tests.harness.browser import wait_for_map as wait

    wait(page, at_least, timeout_ms)


def conv_cache_dir(tmp: str) -> str:
    """A seeded, untrained conv VAE for mnist-5k (conv models decode on the server). Decode cost
    does not depend on the weights; the decoder is scaled x2 so images differ between slider steps."""
    import torch

    from vae_core.checkpoints import save_checkpoint
    from vae_core.config import ModelConfig, TrainConfig
    from vae_core.model import VAE

    d = os.path.join(tmp, "conv")
    os.makedirs(d, exist_ok=True)
    torch.manual_seed(0)
    model = VAE(ModelConfig(input_shape=(1, 28, 28), latent_dim=16, arch="conv", hidden=(256,), likelihood="bernoulli"))
    with torch.no_grad():
        for prm in model.decoder.parameters():
            prm.mul_(2.0)
    save_checkpoint(
        os.path.join(d, "conv-untrained.safetensors"),
        model,
        TrainConfig(dataset="mnist-5k", epochs=1, binarize="dynamic"),
    )
    return d


def bench_launch(browser, cache_dir: str, rounds: int) -> list[list]:
    from tests.harness.browser import StreamlitServer, new_page

    rows, res = [], {"server": [], "page": [], "total": [], "second": []}
    for r in range(rounds):
        t0 = time.perf_counter()
        with StreamlitServer("app/main.py", env={"VAE_CHECKPOINT_DIR": cache_dir}, timeout=600) as s:
            t_up = time.perf_counter()
            page = new_page(browser)
            page.goto(s.url + "/")
            wait_for_map(page)
            t_map = time.perf_counter()
            page.close()
            page = new_page(browser)  # a second session on the warm server
            t1 = time.perf_counter()
            page.goto(s.url + "/")
            wait_for_map(page)
            second = time.perf_counter() - t1
            page.close()
        res["server"].append(t_up - t0)
        res["page"].append(t_map - t_up)
        res["total"].append(t_map - t0)
        res["second"].append(second)
        print(
            f"  launch {r + 1}/{rounds}: server {t_up - t0:.1f} s, page -> map {t_map - t_up:.1f} s, "
            f"second session {second:.1f} s",
            flush=True,
        )
    for key, what in [
        ("server", "launch: server spawn -> health"),
        ("page", "launch: first page -> map drawn"),
        ("total", "launch -> visible latent map (target <= 5 s)"),
        ("second", "second session on the warm server -> map"),
    ]:
        rows.append([what, len(res[key]), bl.median(res[key]) * 1000, max(res[key]) * 1000, "-"])
    return rows


def bench_train(browser, tmp: str, epochs: int | None) -> list[list]:
    from tests.harness.browser import StreamlitServer, new_page

    d = os.path.join(tmp, "empty")
    os.makedirs(d, exist_ok=True)
    with StreamlitServer("app/main.py", env={"VAE_CHECKPOINT_DIR": d}, timeout=600) as s:
        page = new_page(browser)
        page.set_default_timeout(900_000)  # a loaded 2-core machine trains slowly
        page.goto(s.url + "/train")
        button = page.get_by_role("button", name="Train (or load if cached)")
        button.wait_for()
        if epochs:
            box = page.get_by_label("Epochs", exact=True)
            box.fill(str(epochs))
        shown_epochs = page.get_by_label("Epochs", exact=True).input_value()
        t0 = time.perf_counter()
        button.click()
        page.get_by_text("Trained and saved").or_(page.get_by_text("Loaded from the cache")).first.wait_for()
        t_trained = time.perf_counter()
        page.get_by_role("link", name="Latent explorer").click()
        wait_for_map(page)
        t_map = time.perf_counter()
    return [
        [f"empty cache: Train ({shown_epochs} epochs) -> trained", 1, (t_trained - t0) * 1000, "-", "-"],
        [
            f"empty cache: Train ({shown_epochs} epochs) -> map of the new model (target <= 60 s)",
            1,
            (t_map - t0) * 1000,
            "-",
            "-",
        ],
    ]


def bench_drag(page, steps: int) -> tuple[list[list], dict]:
    from tests.harness.browser import drag_fps, drag_slider, hook, percentiles, wait_for_frames

    wait_for_frames(page, 1)
    lat = []
    dims = 0
    while len(lat) < steps:  # sweep back and forth over a few sliders
        fr = [0.15 + 0.7 * ((i % 50) / 49) for i in range(min(50, steps - len(lat)))]
        lat += drag_slider(page, dims % 4, fr if dims % 2 == 0 else fr[::-1])
        dims += 1
    h = hook(page)
    p = percentiles(lat)
    rows = [
        [
            "slider drag: mouse move -> new frame painted (fps = 1000/ms)",
            p["n"],
            p["p50"],
            p["p95"],
            f"{1000 / p['p50']:.0f} fps at p50, {1000 / p['p95']:.0f} fps at p95 (target >= 30)",
        ]
    ]
    if h.get("decodeMs"):
        d = percentiles(h["decodeMs"])
        rows.append(["  of which in-browser decode (component hook)", d["n"], d["p50"], d["p95"], "-"])
    if h.get("inputToPaintMs"):
        d = percentiles(h["inputToPaintMs"])
        rows.append(["  input event -> paint (component hook)", d["n"], d["p50"], d["p95"], "-"])
    # A hand-like drag: mouse moves paced at 120 Hz without waiting for frames, 2 s per sweep; fps =
    # frames painted / time. Each step above also pays a driver round trip; this is what a user sees.
    sweeps = [drag_fps(page, (i + 1) % 4, seconds=2.0)["fps"] for i in range(5 if steps >= 50 else 1)]
    rows.append(
        [
            "slider drag at 120 Hz mouse moves: frames painted per second (sweeps of 2 s)",
            len(sweeps),
            f"{bl.median(sweeps):.0f} fps",
            f"{min(sweeps):.0f} fps (worst sweep)",
            "target >= 30 fps",
        ]
    )
    return rows, p


def bench_click(page, clicks: int) -> list[list]:
    """A real mouse click on a map point (spread over the map, never the selected one) until the
    decoder's sliders show that point's mean; then, separately, until the server has caught up
    (the clicked point's images under the map)."""
    from tests.harness.browser import map_points as centres_of
    from tests.harness.browser import percentiles

    wait_for_map(page)
    page.wait_for_function("() => window.__vaeDecoder && window.__vaeDecoder.frames > 0")
    lat, server, missed = [], [], 0
    for i in range(clicks):
        centres = centres_of(page, spacing_px=6)  # re-read: the view may have changed
        x, y, test_index = centres[(i * 7919) % len(centres)]
        before = page.evaluate("JSON.stringify(window.__vaeDecoder.z)")
        t0 = time.perf_counter()
        page.mouse.click(x, y)
        try:
            page.wait_for_function("b => JSON.stringify(window.__vaeDecoder.z) !== b", arg=before, timeout=10_000)
            lat.append((time.perf_counter() - t0) * 1000)
            page.get_by_text(f"Selected #{test_index}").first.wait_for(timeout=10_000)
            server.append((time.perf_counter() - t0) * 1000)
        except Exception:  # the click hit another point's disc or nothing
            missed += 1
        page.wait_for_timeout(100)
    p = percentiles(lat) if lat else {"n": 0, "p50": float("nan"), "p95": float("nan")}
    q = percentiles(server) if server else {"n": 0, "p50": float("nan"), "p95": float("nan")}
    return [
        [
            "map click -> sliders show the point (target p95 <= 300 ms)",
            p["n"],
            p["p50"],
            p["p95"],
            f"{missed} clicks changed nothing",
        ],
        ["  map click -> server caught up (clicked point's images shown)", q["n"], q["p50"], q["p95"], "-"],
    ]


# The server-decoded image as the page shows it: the decoder component's canvas (in a shadow root)
# read back, as a short hash of its pixels, with the hook's frame count and the z it says they were
# decoded from, and the value of slider d.
_DECODED_SRC = """(d = 0) => {
  const find = sel => document.querySelector(sel) || [...document.querySelectorAll('*')]
    .map(e => e.shadowRoot && e.shadowRoot.querySelector(sel)).find(Boolean);
  const els = window.__benchDecoderEls;
  if (!els || !els.canvas.isConnected || !els.slider.isConnected)
    window.__benchDecoderEls = {canvas: find('[data-testid=vae-decoder-canvas]'),
                                slider: find(`[data-testid=vae-decoder-slider-${d}]`)};
  const {canvas, slider} = window.__benchDecoderEls, h = window.__vaeDecoder;
  if (!canvas || !slider || !h || h.mode !== 'server' || !h.frames) { window.__benchDecoderEls = null; return null; }
  const px = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
  let hash = 0;
  for (let i = 0; i < px.length; i++) hash = (hash * 31 + px[i]) | 0;
  return {frames: h.frames, z: h.z, pixels: hash, value: parseFloat(slider.value)};
}"""


def bench_server_decode(page, steps: int) -> list[list]:
    """Keyboard steps (ArrowRight/Left, 0.01) on the first active latent slider of the server-mode
    decoder component; each step waits until the canvas shows the image decoded from the slider's
    new z (hook z equal to the slider value, a new frame painted)."""
    from tests.harness.browser import hook, percentiles, slider

    # The conv decoder runs in the browser too (by default): switch that off so the server decodes.
    toggle = page.get_by_text("Decode in the browser while dragging")
    if toggle.count():
        toggle.click()
    page.wait_for_function(f"() => ({_DECODED_SRC})() !== null")
    inactive = page.locator("[data-testid^=vae-decoder-row-]").evaluate_all(
        "els => els.map(e => e.dataset.inactive === 'true')"
    )
    dim = inactive.index(False) if False in inactive else 0
    thumb = page.locator(slider(dim))
    thumb.scroll_into_view_if_needed()
    page.wait_for_timeout(500)
    h0 = hook(page)
    lat, missed, same = [], 0, 0
    for i in range(steps):
        before = page.evaluate(_DECODED_SRC, dim)
        thumb.focus()
        t0 = time.perf_counter()
        page.keyboard.press("ArrowRight" if (i // 20) % 2 == 0 else "ArrowLeft")
        try:  # a new frame, decoded from the z the slider now shows
            page.wait_for_function(
                f"""([b, d]) => {{ const now = ({_DECODED_SRC})(d);
              return now && now.frames > b.frames && now.value !== b.value && now.z[d] === now.value; }}""",
                arg=[before, dim],
                timeout=10_000,
            )
            lat.append((time.perf_counter() - t0) * 1000)
            same += page.evaluate(_DECODED_SRC, dim)["pixels"] == before["pixels"]
        except Exception:
            missed += 1
    h = hook(page)
    p = percentiles(lat) if lat else {"n": 0, "p50": float("nan"), "p95": float("nan")}
    rows = [
        [
            "conv model, server decode: slider key step -> its image painted (target p95 <= 150 ms)",
            p["n"],
            p["p50"],
            p["p95"],
            f"{missed} steps timed out, {same} left the pixels unchanged",
        ]
    ]
    rt = h["roundTripMs"][-(h["sent"] - h0["sent"]) :] if h["sent"] > h0["sent"] else []
    if rt:
        q = percentiles(rt)
        rows.append(
            [
                "  z sent -> image painted (component hook)",
                q["n"],
                q["p50"],
                q["p95"],
                f"{h['sent'] - h0['sent']} requests, {h['lost'] - h0['lost']} lost",
            ]
        )
    return rows


def main():
    p = bl.base_parser(__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=None, help="launches (default 3)")
    p.add_argument("--interactions", type=int, default=None, help="per interaction kind (default 60)")
    p.add_argument(
        "--train-epochs",
        type=int,
        default=None,
        help="epochs typed into the Train form (default: the form's own default)",
    )
    p.add_argument("--skip", default="", help="comma list of parts to skip: launch,train,drag,click,server")
    a = p.parse_args()
    load_before = bl.load_avg()
    from tests.harness.browser import StreamlitServer, chromium, new_page

    if bl.chromium_missing(a.results, "browser_latency", "browser latency", load_before, a.smoke):
        return
    skip = set(filter(None, a.skip.split(",")))
    if a.smoke:  # one server: drag and click only
        skip |= {"launch", "train", "server"}
    rounds = a.rounds or (1 if a.smoke else 3)
    n = a.interactions or (5 if a.smoke else 60)
    epochs = a.train_epochs or (1 if a.smoke else None)
    rows = []
    print(f"{bl.machine_line()}\nload {load_before}")

    def part(name, fn):
        """Run one part; a failure becomes a row naming it, so the other parts still report."""
        if name in skip:
            return
        try:
            rows.extend(fn())
        except Exception as e:  # a bench must report what it could not measure, not stop
            msg = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
            print(f"  {name} failed: {type(e).__name__}: {msg}", flush=True)
            rows.append([f"{name}: NOT MEASURED ({type(e).__name__}: {msg})", 0, "-", "-", "-"])

    def explorer(cache_dir, fn):
        def run():
            with StreamlitServer("app/main.py", env={"VAE_CHECKPOINT_DIR": cache_dir}, timeout=600) as s:
                page = new_page(browser)
                page.goto(s.url + "/")
                wait_for_map(page)
                return fn(page)

        return run

    with tempfile.TemporaryDirectory() as tmp, chromium() as browser:
        shipped = bl.shipped_cache_dir(tmp)
        part("launch", lambda: bench_launch(browser, shipped, rounds))
        part("train", lambda: bench_train(browser, tmp, epochs))
        part("drag", explorer(shipped, lambda page: bench_drag(page, n)[0]))
        part("click", explorer(shipped, lambda page: bench_click(page, n)))
        part("server", lambda: explorer(conv_cache_dir(tmp), lambda page: bench_server_decode(page, n))())
    body = bl.table(["what", "n", "p50 / median ms", "p95 / max ms", "note"], rows)
    print("\n" + body)
    bl.append_results(a.results, "browser_latency", body, load_before, a.smoke)


if __name__ == "__main__":
    main()
