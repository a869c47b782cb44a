// Fetch the code of the Streamlit elements that other pages of this app draw (Vega-Lite charts, tables,
// LaTeX, ...), once per browser tab, while the browser is idle. Streamlit's frontend loads an element's
// code the first time a page shows one: ~1 s on a 2-core machine for the first lab page (Vega-Lite's
// ~0.8 MB alone). Imported here by the same URLs the frontend imports them by (resolved against its own
// index script), the modules are then in the page's module map, and the frontend's import finds them
// there. data: JSON bytes {chunks: file names in Streamlit's static/js folder, in the order to fetch them}.
export default function ({ data }) {
  let chunks = [];
  try { chunks = JSON.parse(new TextDecoder().decode(data)).chunks || []; } catch { return; }
  if (!chunks.length || globalThis.__vaePrefetch) return;
  const index = document.querySelector('script[type="module"][src*="/static/js/index."]');
  if (!index) return;  // not Streamlit's page (e.g. a test harness): nothing to share a module map with
  const state = (globalThis.__vaePrefetch = { loaded: [], failed: [], finished: false });
  const base = new URL(".", index.src);
  const idle = (fn) => (window.requestIdleCallback ? window.requestIdleCallback(fn, { timeout: 2000 }) : setTimeout(fn, 50));
  const next = (i) => {
    if (i >= chunks.length) { state.finished = true; return; }
    idle(() => {
      const url = new URL(chunks[i], base).href;
      import(url)
        .then(() => state.loaded.push(chunks[i]), () => state.failed.push(chunks[i]))  // a failed one: the element loads it later, as without this
        .finally(() => next(i + 1));
    });
  };
  next(0);
}
