// The selected point's q(z|x) samples for the latent map (app/components/latent_map.py map_cloud),
// sent after the map by the explorer's panels. Kept page-wide per map (meta) and announced with a
// `vae:cloud` event, so the map draws them whichever of the two arrives first.
// Appended to points.mjs (unpack) by app/components/latent_map.py.
export default function (component) {
  if (!(component.data instanceof Uint8Array)) return;
  const { meta, points_id, testIndex, z } = unpack(component.data), cloud = { meta, points_id, testIndex, z };
  (globalThis.__vaeClouds ??= new Map()).set(cloud.meta, cloud);
  window.dispatchEvent(new CustomEvent("vae:cloud", { detail: cloud }));
}
