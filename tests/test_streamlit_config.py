"""streamlit_config.toml really takes effect.

Streamlit reads .streamlit/config.toml from the working directory and from beside the main script
(app/.streamlit/). Both are git-tracked relative symlinks to streamlit_config.toml. We check
(1) the links, (2) Streamlit's own config loader in a fresh process, from the repo and from a
foreign working directory, and (3) a real `streamlit run app/main.py` server: the options it sends
to a browser over its websocket (the theme, toolbar mode, usage stats) are the toml's.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
import tomllib

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOML = os.path.join(REPO, "streamlit_config.toml")
LINKS = {
    ".streamlit/config.toml": "../streamlit_config.toml",
    "app/.streamlit/config.toml": "../../streamlit_config.toml",
}


def _expected() -> dict:
    with open(TOML, "rb") as f:
        toml = tomllib.load(f)
    return {f"{section}.{key}": val for section, opts in toml.items() for key, val in opts.items()}


def _clean_env(home) -> dict:
    """No STREAMLIT_* overrides and an empty HOME, so only the project files can set options."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMLIT_")}
    env["HOME"] = str(home)
    return env


def test_toml_sets_the_promised_options():
    opts = _expected()
    assert opts["server.headless"] is True
    assert opts["server.runOnSave"] is False
    assert opts["runner.postScriptGC"] is False  # a full collection after every rerun cost ~200 ms
    assert opts["client.showErrorDetails"] == "none"  # served: no traceback, no server path
    # the server's hard cap is the dataset upload limit; images have their own smaller check
    from vae_core.data_upload import MAX_DATASET_UPLOAD_BYTES
    from vae_core.images import MAX_UPLOAD_BYTES

    assert opts["server.maxUploadSize"] * 2**20 == MAX_DATASET_UPLOAD_BYTES
    assert MAX_UPLOAD_BYTES < MAX_DATASET_UPLOAD_BYTES


@pytest.mark.parametrize("link,target", sorted(LINKS.items()))
def test_config_files_are_relative_symlinks_tracked_by_git(link, target):
    path = os.path.join(REPO, link)
    assert os.path.islink(path), f"{link} must be a symlink to streamlit_config.toml"
    assert os.readlink(path) == target
    assert os.path.samefile(path, TOML)
    try:
        out = subprocess.run(["git", "ls-files", "-s", link], cwd=REPO, capture_output=True, text=True, timeout=300)
    except FileNotFoundError:
        pytest.skip("git not installed")
    if out.returncode != 0:
        pytest.skip("not a git checkout")
    assert out.stdout.startswith("120000 "), f"{link} is not committed as a symlink: {out.stdout!r}"


_LOADER = """
import json, sys
from streamlit import config
if len(sys.argv) > 1:
    config._main_script_path = sys.argv[1]  # exactly what `streamlit run SCRIPT` does (streamlit/web/cli.py)
config.get_config_options(force_reparse=True)
keys = json.loads(sys.stdin.read())
print(json.dumps({k: [config.get_option(k), config.get_where_defined(k)] for k in keys}))
"""


@pytest.mark.parametrize("where", ["repo cwd", "foreign cwd, main script app/main.py"])
def test_streamlit_loader_applies_every_option(where, tmp_path):
    expected = _expected()
    if where == "repo cwd":
        cwd, args = REPO, []
    else:
        cwd, args = str(tmp_path), [os.path.join(REPO, "app", "main.py")]
    out = subprocess.run(
        [sys.executable, "-c", _LOADER, *args],
        cwd=cwd,
        input=json.dumps(list(expected)),
        capture_output=True,
        text=True,
        timeout=600,
        env=_clean_env(tmp_path),
    )
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    for key, val in expected.items():
        value, defined_in = got[key]
        assert value == val, f"{key}: streamlit sees {value!r}, the toml says {val!r}"
        assert os.path.samefile(defined_in, TOML), f"{key} came from {defined_in}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _new_session_msg(port: int, timeout: float = 300.0):
    """Open the app's websocket like a browser does, ask for a run, return the NewSession message."""
    import websockets
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    back = BackMsg()
    back.rerun_script.query_string = ""
    back.rerun_script.page_script_hash = ""
    async with websockets.connect(
        f"ws://127.0.0.1:{port}/_stcore/stream", max_size=2**26, origin=f"http://127.0.0.1:{port}"
    ) as ws:
        await ws.send(back.SerializeToString())
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            raw = await asyncio.wait_for(ws.recv(), timeout=deadline - time.monotonic())
            msg = ForwardMsg()
            msg.ParseFromString(raw)
            if msg.WhichOneof("type") == "new_session":
                return msg.new_session
    raise AssertionError("no NewSession message from the server")


@pytest.mark.parametrize("from_repo", [True, False], ids=["cwd=repo", "cwd=elsewhere"])
def test_real_server_sends_the_configured_theme_and_client_options(from_repo, tmp_path):
    pytest.importorskip("websockets")
    expected = _expected()
    port = _free_port()
    cwd = REPO if from_repo else str(tmp_path)
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamlit",
            "run",
            os.path.join(REPO, "app", "main.py"),
            "--server.port",
            str(port),
            "--server.address",
            "127.0.0.1",
        ],
        cwd=cwd,
        env=_clean_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 600  # a hang guard
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert proc.poll() is None, proc.stdout.read().decode(errors="replace")[-2000:]
            assert time.monotonic() < deadline, "streamlit did not start in 90 s"
            time.sleep(0.3)
        # a fresh thread has no event loop running (Playwright's sync API may own this thread's loop)
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            ns = pool.submit(asyncio.run, _new_session_msg(port)).result()
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    theme = ns.custom_theme
    assert theme.primary_color.lower() == expected["theme.primaryColor"].lower()
    assert theme.background_color.lower() == expected["theme.backgroundColor"].lower()
    assert theme.text_color.lower() == expected["theme.textColor"].lower()
    assert ns.config.gather_usage_stats is expected["browser.gatherUsageStats"]
    from streamlit.proto.NewSession_pb2 import Config

    assert Config.ToolbarMode.Name(ns.config.toolbar_mode).lower() == expected["client.toolbarMode"]
