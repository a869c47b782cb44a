"""z leaving and entering the app as text: the link's query parameters and the z.json file. Pure (no
Streamlit, no torch): every check on what a user sends lives here, each failure one ShareError whose
message names the parameter or field and is safe to show after app.safe.plain().

    link:     ?model=<checkpoint file name>&z=0.5,-1.2,0,...    (z_param / parse_z)
    z.json:   {"checkpoint": "<checkpoint file name>", "z": [0.5, -1.2, ...]}   (z_json / read_z_json)

A model is named by its file name only, never a path, and resolved by resolve_model against the
listing of the checkpoint folder (vae_core.cache.list_checkpoints rows): a name is a key into that
listing, never opened as a path, so "../../etc/passwd" or "/etc/passwd" cannot reach the file system.
"""

from __future__ import annotations

import json
import math
import os

CKPT_EXT = ".safetensors"
MAX_Z_JSON_BYTES = 64 * 1024  # a z.json of 1,000 dims is ~25 kB; anything bigger is not one
MAX_NUMBER_CHARS = 32  # one number in the link: "-0.1234" is 7, 1e-300 written out is not a z


class ShareError(ValueError):
    """A link parameter or a z file that cannot be used; the message says which and why."""


def resolve_model(name: str, rows: list[dict]) -> str:
    """The path of the checkpoint named `name` (with or without .safetensors) among `rows` (the
    checkpoint folder's listing: dicts with "path"). ShareError if name is a path or not listed."""
    if not isinstance(name, str) or not name.strip():
        raise ShareError("the model parameter is empty")
    name = name.strip()
    if "/" in name or "\\" in name or name.startswith(".") or os.path.isabs(name) or "\x00" in name:
        raise ShareError(f"the model parameter must be a checkpoint file name, not a path: {name[:80]}")
    by_name = {os.path.basename(r["path"]): r["path"] for r in rows}
    for candidate in (name, name + CKPT_EXT):
        if candidate in by_name:
            return by_name[candidate]
    raise ShareError(f"the model {name[:80]} is not in this server's checkpoint folder")


def parse_z(text: str, latent_dim: int) -> list[float]:
    """The z parameter "a,b,c" -> latent_dim floats; fewer values leave the remaining dims at 0 (the
    prior's mean). ShareError (naming the z parameter) for anything else: empty, too many values, a
    value that is not a number, or not finite."""
    if not isinstance(text, str) or not text.strip():
        raise ShareError("the z parameter is empty")
    parts = text.split(",")
    if len(parts) > latent_dim:
        raise ShareError(f"the z parameter has {len(parts)} values; this model has {latent_dim} latent dims")
    vals = []
    for i, p in enumerate(parts):
        p = p.strip()
        try:
            if len(p) > MAX_NUMBER_CHARS:
                raise ValueError
            v = float(p)
        except ValueError:
            raise ShareError(f"the z parameter's value {i + 1} is not a number: {p[:MAX_NUMBER_CHARS]}") from None
        if not math.isfinite(v):
            raise ShareError(f"the z parameter's value {i + 1} is not finite: {p}")
        vals.append(v)
    return vals + [0.0] * (latent_dim - len(vals))


def z_param(z) -> str:
    """z as the link writes it: 4 decimals (the sliders' step is 0.01), no trailing zeros, "0" not "-0"."""
    out = []
    for v in z:
        s = f"{float(v):.4f}".rstrip("0").rstrip(".")
        out.append("0" if s in ("-0", "") else s)
    return ",".join(out)


def link_query(model_path: str, z) -> dict[str, str]:
    """The query parameters of a link to `z` on the model at `model_path` (its file name only)."""
    return {"model": os.path.basename(model_path), "z": z_param(z)}


def z_json(model_path: str, z) -> str:
    """The z.json file: the checkpoint's file name (never the server's path) and z at full precision."""
    return json.dumps({"checkpoint": os.path.basename(model_path or ""), "z": [float(v) for v in z]}, indent=1)


def read_z_json(data: bytes) -> tuple[str | None, list[float]]:
    """(checkpoint file name or None, z) from a z.json's bytes. ShareError for a file that is too
    big, not UTF-8 JSON, not an object, without a list `z` of finite numbers, or whose `checkpoint`
    is not a string (a path is cut to its file name). Its length is checked against a model by the caller."""
    if len(data) > MAX_Z_JSON_BYTES:
        raise ShareError(f"this file is {len(data):,} bytes; a z.json is at most {MAX_Z_JSON_BYTES:,}")
    try:
        obj = json.loads(data.decode("utf-8"))  # json.loads accepts NaN/Infinity: checked below
    except (UnicodeDecodeError, ValueError):
        raise ShareError("this file is not JSON") from None
    if not isinstance(obj, dict):
        raise ShareError("this file's JSON is not an object with a z list")
    z = obj.get("z")
    if not isinstance(z, list) or not z:
        raise ShareError("this file has no list z")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in z):
        raise ShareError("this file's z is not a list of finite numbers")
    name = obj.get("checkpoint")
    if name in (None, ""):
        return None, [float(v) for v in z]
    if not isinstance(name, str) or len(name) > 4096:
        raise ShareError("this file's checkpoint is not a checkpoint file name")
    # older files stored the server's path: only its last part is kept, a key into the folder's listing
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    return (name if name and not name.startswith(".") else None), [float(v) for v in z]
