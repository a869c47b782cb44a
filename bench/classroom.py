"""A class at once: N simulated students against `streamlit run app/main.py`, speaking Streamlit's own
websocket protocol (BackMsg / ForwardMsg protobufs on /_stcore/stream, as the frontend does), so the
measuring client costs little next to the server and no browser is needed.

Each student, in order (one step = one request until the server's `script_finished` for it):
  open      connect, ask for the default page (the Explorer) as a fresh tab does;
  click     a map point (the map component's `select` trigger; a fragment rerun, as in the browser);
  release   a slider (the decoder component's `z` trigger with a new z; a fragment rerun);
  lab       open the first Lab page.
The client keeps the messages the server marks cacheable and reports their hashes on later requests,
as the frontend's message cache does. Only 127.0.0.1; every step has a timeout, the run a bound.

Reported for N students (arrivals spread evenly over --spread s):
  server CPU-seconds per student for each step (utime + stime of the server process from
  /proc/<pid>/stat over the whole phase, divided by N: robust to other load on the machine);
  p50 / p95 ms from sending a step (connecting, for `open`) to its last message;
  server RSS per extra session (VmRSS after the N sessions minus before, over N);
  errors (timeouts, closed sockets, error deltas, runs that did not finish).
A warm-up student runs first, alone (the cold server's imports and caches are reported apart).
Targets (issue 11): <= 0.1 CPU-s per student to open the explorer, <= 20 ms per click or release,
p95 open <= 5 s with 30 students arriving within 5 s, <= 15 MB RSS per extra session.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import tempfile
import time

import benchlib as bl

STEPS = ("open", "click", "release", "lab")
STEP_TIMEOUT = 300.0  # s: a step that takes longer counts as an error


class Student:
    """One browser tab, as far as the server can tell."""

    def __init__(self, url: str):
        self.url = url.replace("http://", "ws://") + "/_stcore/stream"
        self.ws = None
        self.cache: set[str] = set()  # hashes of cacheable messages received
        self.components: dict[str, tuple[str, str]] = {}  # component name -> (id, fragment id)
        self.pages: dict[str, str] = {}  # url path -> page_script_hash
        self.page_hash = ""
        self.errors: list[str] = []
        self.bytes = 0
        self.latent_dim = 0
        self.decoder_z: list = []  # the z the decoder component was last given
        self.decoder_rev = 0  # and its rev (a report must carry it)
        self.selected = None  # the test index the page last showed as selected

    async def connect(self) -> None:
        """As a browser: no keepalive pings (a server busy for 20 s would otherwise be dropped)."""
        from websockets.asyncio.client import connect

        self.ws = await connect(
            self.url,
            subprotocols=["streamlit"],
            max_size=None,
            open_timeout=STEP_TIMEOUT,
            ping_interval=None,
            compression=None,
        )

    async def request(self, *, page_hash: str = "", fragment_id: str = "", widget_states=()) -> int:
        """Send one rerun request; read until its script_finished. Returns the bytes received."""
        from streamlit.proto.BackMsg_pb2 import BackMsg

        msg = BackMsg()
        rs = msg.rerun_script
        rs.query_string = ""
        rs.page_script_hash = page_hash
        rs.fragment_id = fragment_id
        rs.cached_message_hashes.extend(sorted(self.cache))
        for ws in widget_states:
            rs.widget_states.widgets.append(ws)
        await self.ws.send(msg.SerializeToString())
        return await self._until_finished()

    async def _until_finished(self) -> int:
        from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

        got = 0
        while True:
            raw = await asyncio.wait_for(self.ws.recv(), STEP_TIMEOUT)
            got += len(raw)
            fm = ForwardMsg()
            fm.ParseFromString(raw)
            kind = fm.WhichOneof("type")
            if fm.metadata.cacheable and fm.hash:
                self.cache.add(fm.hash)
            if kind == "new_session":
                self.page_hash = fm.new_session.page_script_hash
            elif kind == "navigation":
                self.pages = {p.url_pathname: p.page_script_hash for p in fm.navigation.app_pages}
                self.page_hash = fm.navigation.page_script_hash or self.page_hash
            elif kind == "delta":
                self._delta(fm.delta)
            elif kind == "script_finished":
                status = ForwardMsg.ScriptFinishedStatus.Name(fm.script_finished)
                if "SUCCESSFULLY" in status:
                    self.bytes += got
                    return got
                if status not in ("FINISHED_EARLY_FOR_RERUN",):
                    self.errors.append(status)
                    self.bytes += got
                    return got

    def _delta(self, delta) -> None:
        el = delta.new_element if delta.WhichOneof("type") == "new_element" else None
        if el is None:
            return
        which = el.WhichOneof("type")
        if which == "exception":
            self.errors.append(f"exception: {el.exception.message[:120]}")
        elif which == "alert" and el.alert.format == 1:  # ERROR
            self.errors.append(f"error shown: {el.alert.body[:120]}")
        elif which == "bidi_component":
            bc = el.bidi_component
            self.components[bc.component_name] = (bc.id, delta.fragment_id)
            if bc.component_name == "vae_latent_decoder" and bc.json:
                data = json.loads(bc.json)
                data = json.loads(data["json"]) if set(data) == {"json"} else data
                self.latent_dim, self.decoder_z, self.decoder_rev = len(data["z"]), data["z"], data["rev"]
        elif which == "markdown" and el.markdown.body.startswith("**Selected #"):
            self.selected = int(el.markdown.body.split("#", 1)[1].split("*", 1)[0])

    def trigger(self, component: str, event: str, value) -> tuple[list, str]:
        """The widget state a component's setTriggerValue(event, value) sends, and its fragment."""
        from streamlit.components.v2.bidi_component.main import _make_trigger_id
        from streamlit.proto.WidgetStates_pb2 import WidgetState

        cid, fragment = self.components[component]
        ws = WidgetState(id=_make_trigger_id(cid, "events"))
        ws.json_trigger_value = json.dumps([{"event": event, "value": value}])
        return [ws], fragment

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()


async def run_step(student: Student, step: str, rng_value: float, timing: dict, received: dict) -> None:
    """One step; its time and bytes go to timing[step] and received[step]. The page must show the
    step's effect (the clicked point selected, the released z in the decoder), else it is an error."""
    t0, b0 = time.perf_counter(), student.bytes
    try:
        if step == "open":
            await student.connect()
            await student.request()
            if "vae_latent_decoder" not in student.components:
                student.errors.append("open: no decoder on the page")
        elif step == "click":
            index = int(abs(rng_value) * 100)
            states, frag = student.trigger("vae_latent_map", "select", index)
            await student.request(page_hash=student.page_hash, fragment_id=frag, widget_states=states)
            if student.selected != index:
                student.errors.append(f"click: the page shows #{student.selected} selected, not #{index}")
        elif step == "release":
            z = [round(rng_value, 2)] * student.latent_dim
            # a report at the rev the sliders were last set at (app/components/z_sync.py)
            states, frag = student.trigger("vae_latent_decoder", "z", {"z": z, "rev": student.decoder_rev})
            await student.request(page_hash=student.page_hash, fragment_id=frag, widget_states=states)
            if student.decoder_z != z:
                student.errors.append("release: the decoder was not given the released z")
        elif step == "lab":
            lab = next((h for p, h in student.pages.items() if p.startswith("lab-")), None)
            if lab is None:
                raise RuntimeError("no Lab page in the navigation")
            await student.request(page_hash=lab)
        timing[step].append((time.perf_counter() - t0) * 1000)
        received[step].append(student.bytes - b0)
    except Exception as e:  # a bench reports what failed; it does not stop
        student.errors.append(f"{step}: {type(e).__name__}: {str(e)[:120]}")


async def phase(students: list[Student], step: str, spread: float, timing: dict, received: dict) -> None:
    """Every student does `step`, starting spread evenly over `spread` seconds."""

    async def one(i, s):
        await asyncio.sleep(spread * i / max(1, len(students)))
        await run_step(s, step, ((i * 7919) % 97) / 97 * 4 - 2, timing, received)

    await asyncio.gather(*(one(i, s) for i, s in enumerate(students)))


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))] if xs else float("nan")


async def measure(server_pid: int, url: str, n: int, spread: float) -> dict:
    out: dict = {"n": n, "cpu": {}, "ms": {}, "errors": [], "rss_before": bl.rss_mb(str(server_pid))}
    students = [Student(url) for _ in range(n)]
    timing, received = {s: [] for s in STEPS}, {s: [] for s in STEPS}
    for step in STEPS:
        c0 = bl.cpu_seconds(server_pid)
        await phase(students, step, spread if step == "open" else min(spread, 1.0), timing, received)
        await asyncio.sleep(0.2)  # the sessions' last messages are out; nothing else runs
        out["cpu"][step] = (bl.cpu_seconds(server_pid) - c0) / n
        if step == "open":
            out["rss_after_open"] = bl.rss_mb(str(server_pid))
    out["ms"] = {s: (pct(v, 0.5), pct(v, 0.95), len(v)) for s, v in timing.items()}
    out["kb"] = {s: statistics.fmean(v) / 1024 if v else float("nan") for s, v in received.items()}
    for s in students:
        out["errors"] += s.errors
        await s.close()
    out["rss_per_session"] = (out["rss_after_open"] - out["rss_before"]) / n
    return out


def chromium_check(url: str, pid: int, n: int) -> list:
    """N real headless Chromium pages open the Explorer at once (a check of the simulation): ms from
    navigation to the map drawn and to the sliders' first decoded image, and server CPU-s per page."""
    from tests.harness.browser import chromium, new_page

    with chromium() as browser:
        pages = [new_page(browser) for _ in range(n)]
        c0, t0 = bl.cpu_seconds(pid), time.perf_counter()
        for p in pages:
            p.goto(url + "/", wait_until="commit")
        mapped, ready = [], []
        for p in pages:
            p.wait_for_function("() => window.__vaeMap && window.__vaeMap.drawn > 0", timeout=600_000)
            mapped.append(p.evaluate("performance.now()"))
            p.wait_for_function("() => window.__vaeDecoder && window.__vaeDecoder.frames > 0", timeout=600_000)
            ready.append(p.evaluate("window.__vaeDecoder.firstFrameAt"))
        cpu = (bl.cpu_seconds(pid) - c0) / n
        wall = time.perf_counter() - t0
    return [
        f"{n} Chromium pages at once",
        f"{cpu:.3f}",
        f"{pct(mapped, 0.5):.0f} / {pct(mapped, 0.95):.0f}",
        f"{pct(ready, 0.5):.0f} / {pct(ready, 0.95):.0f}",
        f"{wall:.1f}",
    ]


def main():
    p = bl.base_parser(__doc__.split("\n")[0])
    p.add_argument("--students", default=None, help="comma list of N (default 1,10,30,100; smoke: 2)")
    p.add_argument("--spread", type=float, default=5.0, help="seconds over which a phase's students start")
    p.add_argument("--app-root", default=None, help="run the app of another checkout (e.g. the code before a change)")
    p.add_argument("--label", default="", help="a word for the table title, e.g. before / after")
    p.add_argument("--budget", type=float, default=1800.0, help="stop starting new N after this many seconds")
    p.add_argument("--chromium", type=int, default=0, help="also open N real Chromium pages at once (0: skip)")
    a = p.parse_args()
    load_before = bl.load_avg()
    from tests.harness.browser import REPO, StreamlitServer

    ns = [int(v) for v in (a.students or ("2" if a.smoke else "1,10,30,100")).split(",")]
    root = os.path.abspath(a.app_root or REPO)
    print(f"{bl.machine_line()}\nload {load_before}\napp {root}")
    rows, t_start, errors = [], time.perf_counter(), {}
    with tempfile.TemporaryDirectory() as tmp:
        env = {"VAE_CHECKPOINT_DIR": bl.shipped_cache_dir(tmp), "PYTHONPATH": root, "VAE_ALLOW_TRAINING": "0"}
        for n in ns:
            if time.perf_counter() - t_start > a.budget:
                rows.append([n, "not run: --budget spent"] + ["-"] * 9)
                continue
            with StreamlitServer(os.path.join(root, "app", "main.py"), env=env, timeout=600) as server:
                pid = server.proc.pid
                c0 = bl.cpu_seconds(pid)
                warm = asyncio.run(measure(pid, server.url, 1, 0.0))  # the cold server: imports, caches
                cold_cpu = bl.cpu_seconds(pid) - c0
                res = asyncio.run(measure(pid, server.url, n, a.spread))
            errors[n] = warm["errors"] + res["errors"]
            ms, cpu = res["ms"], res["cpu"]
            rows.append(
                [
                    n,
                    f"{cpu['open']:.3f}",
                    f"{1000 * cpu['click']:.0f}",
                    f"{1000 * cpu['release']:.0f}",
                    f"{cpu['lab']:.3f}",
                    " / ".join(f"{ms[s][0]:.0f}" for s in STEPS),
                    " / ".join(f"{ms[s][1]:.0f}" for s in STEPS),
                    f"{res['rss_per_session']:.1f}",
                    " / ".join(f"{res['kb'][s]:.0f}" for s in STEPS),
                    len(errors[n]),
                    f"{cold_cpu:.1f} s, {warm['ms']['open'][0] / 1000:.1f} s",
                ]
            )
            print(f"  N={n}: {rows[-1]}", flush=True)
        if a.chromium:
            with StreamlitServer(os.path.join(root, "app", "main.py"), env=env, timeout=600) as server:
                asyncio.run(measure(server.proc.pid, server.url, 1, 0.0))  # warm, as above
                real = chromium_check(server.url, server.proc.pid, a.chromium)
    body = bl.table(
        [
            "N",
            "CPU-s/student open",
            "CPU-ms/student click",
            "CPU-ms/student release",
            "CPU-s/student lab",
            "p50 ms open / click / release / lab",
            "p95 ms open / click / release / lab",
            "RSS MB per extra session",
            "KB received per student open / click / release / lab",
            "errors",
            "warm-up student alone: server CPU, open",
        ],
        rows,
    )
    body += (
        f"\n\nApp: {os.path.relpath(root, REPO) if root != REPO else 'this checkout'}"
        f"{' (' + a.label + ')' if a.label else ''}; the shipped checkpoint with its projection cache, "
        f"VAE_ALLOW_TRAINING=0. Students start each phase spread over {a.spread:g} s (open) or 1 s (the others); "
        "the client runs in this process on the same cores as the server."
    )
    if a.chromium:
        body += "\n\nCheck of the simulation in real headless Chromium (one browser, N pages, on the same cores):\n\n"
        body += bl.table(
            [
                "what",
                "server CPU-s per page",
                "map drawn ms p50 / p95 (page clock)",
                "sliders' first image ms p50 / p95",
                "all done, s",
            ],
            [real],
        )
    errs = [e for es in errors.values() for e in es]
    if errs:
        body += "\n\nErrors (first 5): " + "; ".join(errs[:5])
    print("\n" + body)
    bl.append_results(a.results, "classroom" + (f" ({a.label})" if a.label else ""), body, load_before, a.smoke)


if __name__ == "__main__":
    main()
