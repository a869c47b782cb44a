"""Launch of two checkouts of the app, alternated round by round: first page -> map drawn, and a second
session on the same warm server -> map. For "no worse than before" questions: check the old commit out
beside this one (`git worktree add ../before <commit> --detach`) and pass both roots.

    python bench/launch_pair.py ROOT_A ROOT_B [--rounds 6] [--results PATH]

Each server runs `streamlit run app/main.py` from its own root with PYTHONPATH set to it, on a fresh copy
of the shipped checkpoint and its map cache. Alternating the order each round spreads the load the
previous server leaves behind over both checkouts.
"""

from __future__ import annotations

import os
import tempfile
import time

import benchlib as bl


def launch(browser, root: str, cache: str) -> tuple[float, float]:
    """Seconds from navigation to the map drawn: the server's first session, then a second one."""
    from tests.harness.browser import StreamlitServer, new_page, wait_for_map

    out = []
    with StreamlitServer("app/main.py", env={"VAE_CHECKPOINT_DIR": cache}, root=root) as s:
        for _ in range(2):
            page = new_page(browser)
            t0 = time.perf_counter()
            page.goto(s.url + "/")
            wait_for_map(page)
            out.append(time.perf_counter() - t0)
            page.close()
    return out[0], out[1]


def main() -> None:
    ap = bl.base_parser(__doc__.split("\n")[0])
    ap.add_argument("roots", nargs=2, help="two checkouts of this repository")
    ap.add_argument("--rounds", type=int, default=6)
    a = ap.parse_args()
    load_before = bl.load_avg()
    from tests.harness.browser import chromium

    if bl.chromium_missing(a.results, "launch_pair", "launch pair", load_before, a.smoke):
        return
    roots = [os.path.abspath(r) for r in a.roots]
    times = {r: ([], []) for r in roots}
    with tempfile.TemporaryDirectory() as tmp, chromium() as browser:
        cache = bl.shipped_cache_dir(tmp)
        for i in range(1 if a.smoke else a.rounds):
            for root in roots if i % 2 == 0 else roots[::-1]:
                first, second = launch(browser, root, cache)
                times[root][0].append(first)
                times[root][1].append(second)
                print(f"  round {i + 1}: {root} first {first:.2f} s, second {second:.2f} s", flush=True)
    rows = []
    for root in roots:
        first, second = times[root]
        rows.append([root, len(first), bl.median(first), f"{min(first):.2f}-{max(first):.2f}", bl.median(second)])
    body = bl.table(["checkout", "rounds", "first page -> map, median s", "range s", "second session, median s"], rows)
    print("\n" + body)
    bl.append_results(a.results, "launch_pair", body, load_before, a.smoke)


if __name__ == "__main__":
    main()
