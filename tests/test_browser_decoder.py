"""The browser decoder (decode.mjs run by node, MLP and conv) against the PyTorch decoder, and the payload format."""

from __future__ import annotations

import base64
import copy
import json
import os
import shutil
import subprocess

import numpy as np
import pytest
import torch

from vae_core.browser import BrowserDecodingError, decoder_payload, supports_browser_decoding
from vae_core.cache import default_checkpoint_path
from vae_core.checkpoints import load_checkpoint
from vae_core.config import ModelConfig
from vae_core.model import VAE

DECODE_JS = os.path.join(os.path.dirname(__file__), "..", "vae_core", "js", "decode.mjs")
NODE = shutil.which("node")
needs_node = pytest.mark.skipif(NODE is None, reason="node is not installed: cannot run the JS decoder")

# Reads {"payload", "zs"} on stdin, prints the decoded means and the RGBA bytes of the first z.
_RUNNER = """
import { parseDecoder, decode, toRGBA } from %s;
let text = "";
for await (const chunk of process.stdin) text += chunk;
const { payload, zs } = JSON.parse(text);
const net = parseDecoder(payload);
const means = zs.map((z) => Array.from(decode(net, z)));
const rgba = Array.from(toRGBA(net, decode(net, zs[0]), new Uint8ClampedArray(net.H * net.W * 4)));
process.stdout.write(JSON.stringify({ means, rgba, C: net.C, H: net.H, W: net.W }));
"""


def run_js(payload: dict, zs: torch.Tensor) -> dict:
    src = _RUNNER % json.dumps("file://" + os.path.abspath(DECODE_JS))
    proc = subprocess.run(
        [NODE, "--input-type=module", "-e", src],
        capture_output=True,
        text=True,
        input=json.dumps({"payload": payload, "zs": zs.tolist()}),
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def reference_mean(model: VAE, z: torch.Tensor) -> torch.Tensor:
    """E[x|z] from PyTorch in float64 (same float32 weights, exact products), flattened (B, D)."""
    m = copy.deepcopy(model).double()
    with torch.no_grad():
        return m.decode_mean(z.double()).flatten(1)


def tiny_model(likelihood: str, input_shape=(1, 5, 4), hidden=(7, 6), seed=0) -> VAE:
    torch.manual_seed(seed)
    model = VAE(ModelConfig(input_shape=input_shape, latent_dim=3, hidden=hidden, likelihood=likelihood))
    with torch.no_grad():  # larger weights than the init so pre-activations span saturation and ~0
        for p in model.decoder.parameters():
            p.mul_(3.0)
    return model.eval()


def z_grid(k: int, seed: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.cat(
        [torch.zeros(1, k), 3 * torch.ones(1, k), -3 * torch.ones(1, k), torch.randn(5, k, generator=g) * 1.5]
    )


@needs_node
@pytest.mark.parametrize("likelihood", ["bernoulli", "continuous-bernoulli", "gaussian"])
def test_js_decode_matches_torch_tiny_mlp(likelihood):
    model = tiny_model(likelihood)
    zs = z_grid(3)
    got = torch.tensor(run_js(decoder_payload(model), zs)["means"], dtype=torch.float64)
    want = reference_mean(model, zs)
    assert got.shape == want.shape == (len(zs), 20)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)
    # the float32 model the app holds agrees too
    with torch.no_grad():
        torch.testing.assert_close(got.float(), model.decode_mean(zs.float()).flatten(1), rtol=0, atol=1e-4)


@needs_node
def test_js_continuous_bernoulli_mean_near_half():
    """lam -> 1/2 is 0/0 in the closed form; JS must stay at the limit 1/2 + a/12 there."""
    model = VAE(ModelConfig(input_shape=(1, 2, 4), latent_dim=1, hidden=(), likelihood="continuous-bernoulli"))
    a = torch.tensor([0.0, 1e-7, -1e-4, 5e-3, -9.9e-3, 1.1e-2, 0.3, -7.0])
    with torch.no_grad():  # logits = a * z with z = 1: one logit per pixel
        model.decoder[0].weight.copy_(a.view(8, 1))
        model.decoder[0].bias.zero_()
    got = torch.tensor(run_js(decoder_payload(model), torch.ones(1, 1))["means"][0], dtype=torch.float64)
    a64 = a.double()
    # independent closed form in float64, lam = sigmoid(a), away from a = 0; the limit 1/2 at a = 0
    lam = torch.sigmoid(a64)
    closed = lam / (2 * lam - 1) + 1 / (2 * torch.atanh(1 - 2 * lam))
    want = torch.where(a64.abs() > 1e-3, closed, 0.5 + a64 / 12)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-7)


@needs_node
def test_js_continuous_bernoulli_mean_equals_the_servers_at_large_logits():
    """decode.mjs and vae_core.likelihoods.continuous_bernoulli_mean are one formula: the same
    picture in the browser and from the server, exact where torch's clamped mean is not (a = 20)."""
    model = VAE(ModelConfig(input_shape=(1, 2, 4), latent_dim=1, hidden=(), likelihood="continuous-bernoulli"))
    a = torch.tensor([20.0, -30.0, 30.0, -20.0, 0.05, -0.15, 1.0, 60.0])
    with torch.no_grad():  # logits = a * z with z = 1
        model.decoder[0].weight.copy_(a.view(8, 1))
        model.decoder[0].bias.zero_()
    got = torch.tensor(run_js(decoder_payload(model), torch.ones(1, 1))["means"][0], dtype=torch.float64)
    server = reference_mean(model, torch.ones(1, 1))[0]  # float64 decode_mean
    torch.testing.assert_close(got, server, rtol=0, atol=1e-7)  # JS stores float32 means
    assert got[0] == pytest.approx(0.95, abs=1e-7) and got[1] == pytest.approx(1 / 30, abs=1e-7)
    float32_server = model.decode_mean(torch.ones(1, 1))[0].flatten().double()
    torch.testing.assert_close(got, float32_server, rtol=0, atol=3e-7)


@needs_node
def test_js_implements_every_registry_transform_and_refuses_others():
    from vae_core import likelihoods

    src = (
        f"import {{ OUTPUT_TRANSFORMS }} from {json.dumps('file://' + os.path.abspath(DECODE_JS))}; "
        "process.stdout.write(JSON.stringify(Object.keys(OUTPUT_TRANSFORMS)));"
    )
    proc = subprocess.run(
        [NODE, "--input-type=module", "-e", src], capture_output=True, text=True, timeout=300, check=False
    )
    assert proc.returncode == 0, proc.stderr
    assert {lk.browser_transform for lk in likelihoods.REGISTRY.values()} == set(json.loads(proc.stdout))
    payload = {**decoder_payload(tiny_model("bernoulli")), "output": "softplus"}
    src = _RUNNER % json.dumps("file://" + os.path.abspath(DECODE_JS))
    proc = subprocess.run(
        [NODE, "--input-type=module", "-e", src],
        capture_output=True,
        text=True,
        timeout=300,
        input=json.dumps({"payload": payload, "zs": [[0.0, 0.0, 0.0]]}),
        check=False,
    )
    assert proc.returncode != 0 and "unknown output transform softplus" in proc.stderr


@needs_node
@pytest.mark.parametrize("shape", [(3, 4, 5), (1, 3, 7), (12,)])
def test_js_image_layout_grey_rgb_flat(shape):
    """RGBA bytes: channel c of pixel (y, x) comes from mean[c, y, x]; grey repeats channel 0."""
    model = tiny_model("bernoulli", input_shape=shape, hidden=(4,))
    zs = torch.tensor([[0.3, -1.0, 2.0]])
    res = run_js(decoder_payload(model), zs)
    mean = reference_mean(model, zs)[0].numpy()
    rgba = np.array(res["rgba"], dtype=np.float64).reshape(res["H"], res["W"], 4)
    if len(shape) == 3:
        c, h, w = shape
        img = mean.reshape(c, h, w).transpose(1, 2, 0)
        assert (res["C"], res["H"], res["W"]) == shape
    else:  # 12 is not a square: a 1x12 grey strip
        assert (res["C"], res["H"], res["W"]) == (1, 1, 12)
        img = mean.reshape(1, 12, 1)
    rgb = np.repeat(img, 3, axis=2) if img.shape[2] == 1 else img
    np.testing.assert_allclose(rgba[..., :3], rgb * 255, atol=0.51)
    assert (rgba[..., 3] == 255).all()


@needs_node
def test_js_decode_matches_shipped_checkpoint():
    path = default_checkpoint_path()
    if not os.path.exists(path):
        pytest.skip(f"shipped checkpoint {path} not present")
    model = load_checkpoint(path).model.eval()
    zs = z_grid(model.cfg.latent_dim, seed=7)
    got = torch.tensor(run_js(decoder_payload(model), zs)["means"], dtype=torch.float64)
    torch.testing.assert_close(got, reference_mean(model, zs), rtol=0, atol=1e-5)


def test_payload_is_little_endian_float32_of_the_weights():
    model = tiny_model("bernoulli")
    p = decoder_payload(model)
    assert [(l["in"], l["out"], l["relu"]) for l in p["layers"]] == [(3, 7, True), (7, 6, True), (6, 20, False)]
    w0 = np.frombuffer(base64.b64decode(p["layers"][0]["weight"]), dtype="<f4").reshape(7, 3)
    np.testing.assert_array_equal(w0, model.decoder[0].weight.detach().numpy())
    b2 = np.frombuffer(base64.b64decode(p["layers"][2]["bias"]), dtype="<f4")
    np.testing.assert_array_equal(b2, model.decoder[4].bias.detach().numpy())
    assert p["output"] == "sigmoid" and p["input_shape"] == [1, 5, 4] and p["latent_dim"] == 3
    # the id follows the weights: same weights -> same id, one changed weight -> new id
    assert decoder_payload(copy.deepcopy(model))["id"] == p["id"]
    with torch.no_grad():
        model.decoder[2].bias[0] += 1e-3
    assert decoder_payload(model)["id"] != p["id"]


def test_unsupported_decoders_are_refused_with_a_clear_error():
    conv = tiny_conv("bernoulli")
    assert supports_browser_decoding(conv)
    conv.decoder.deconvs[1] = torch.nn.Sigmoid()  # a layer decode.mjs does not implement
    assert not supports_browser_decoding(conv)
    with pytest.raises(BrowserDecodingError, match=r"Sigmoid at decoder.deconvs\[1\]"):
        decoder_payload(conv)
    odd = tiny_conv("bernoulli")
    odd.decoder.deconvs[0].output_padding = (1, 1)
    with pytest.raises(BrowserDecodingError, match="output_padding"):
        decoder_payload(odd)
    mlp = tiny_model("gaussian")
    assert supports_browser_decoding(mlp)
    with pytest.raises(BrowserDecodingError, match="value_range"):
        decoder_payload(mlp, value_range=(1.0, 1.0))
    with pytest.raises(BrowserDecodingError, match="dtype"):
        decoder_payload(mlp, dtype="<f8")


# --- conv decoders: Linear layers, a view as (C, H, W), ConvTranspose2d layers -----------------------


def tiny_conv(likelihood: str, input_shape=(1, 28, 28), seed=0) -> VAE:
    torch.manual_seed(seed)
    model = VAE(
        ModelConfig(
            input_shape=input_shape, latent_dim=3, arch="conv", hidden=(8,), conv_channels=(4, 6), likelihood=likelihood
        )
    )
    with torch.no_grad():  # wider than the init: pre-activations reach saturation and cross 0
        for p in model.decoder.parameters():
            p.mul_(3.0)
    return model.eval()


@needs_node
@pytest.mark.parametrize(
    "likelihood,shape", [("bernoulli", (1, 28, 28)), ("continuous-bernoulli", (3, 32, 32)), ("gaussian", (1, 28, 28))]
)
def test_js_conv_decode_matches_torch(likelihood, shape):
    model = tiny_conv(likelihood, shape)
    zs = z_grid(3)
    res = run_js(decoder_payload(model), zs)
    got = torch.tensor(res["means"], dtype=torch.float64)
    want = reference_mean(model, zs)
    assert (res["C"], res["H"], res["W"]) == shape and got.shape == want.shape
    assert want.std() > 0.05, "the test decoder's images are flat; the comparison would prove little"
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)


@needs_node
def test_js_conv_transpose_matches_torch_for_other_strides_and_paddings():
    """The scatter loop against F.conv_transpose2d for a stride, padding and kernel the VAE does not use,
    so an index slip that happens to cancel for (k=4, s=2, p=1) still shows."""
    model = tiny_conv("gaussian")
    dec = model.decoder
    torch.manual_seed(5)
    dec.deconvs[0] = torch.nn.ConvTranspose2d(6, 4, 3, 3, 2)  # 7 -> (7-1)*3 - 4 + 3 = 17
    dec.deconvs[2] = torch.nn.ConvTranspose2d(4, 1, 5, 1, 0)  # 17 -> 21
    zs = z_grid(3)
    payload = decoder_payload(model)
    payload["input_shape"] = [1, 21, 21]
    got = torch.tensor(run_js(payload, zs)["means"], dtype=torch.float64)
    with torch.no_grad():  # gaussian: the output transform is the identity, E[x|z] = dec(z)
        want = copy.deepcopy(dec).double()(zs.double()).flatten(1)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-5)


def test_conv_payload_holds_pytorchs_weight_layout():
    model = tiny_conv("bernoulli")
    p = decoder_payload(model)
    assert p["format"] == "vae-conv-decoder/1" and p["unflatten"] == [6, 7, 7]
    assert [(l["in"], l["out"], l["relu"]) for l in p["layers"]] == [(3, 8, True), (8, 294, True)]
    assert [(d["in"], d["out"], d["kernel"], d["stride"], d["padding"], d["relu"]) for d in p["deconvs"]] == [
        (6, 4, 4, 2, 1, True),
        (4, 1, 4, 2, 1, False),
    ]
    w = np.frombuffer(base64.b64decode(p["deconvs"][0]["weight"]), dtype="<f4").reshape(6, 4, 4, 4)
    np.testing.assert_array_equal(w, model.decoder.deconvs[0].weight.detach().numpy())


@needs_node
@pytest.mark.parametrize("kind", ["mlp", "conv"])
def test_float16_weights_decode_within_2_of_255_of_float32(kind):
    """The static export stores weights as float16: its pixels stay within 2/255 of the float32 decode."""
    model = tiny_model("bernoulli", input_shape=(1, 28, 28), hidden=(64,)) if kind == "mlp" else tiny_conv("bernoulli")
    zs = z_grid(3)
    half = decoder_payload(model, dtype="<f2")
    first = model.decoder[0] if kind == "mlp" else model.decoder.fc[0][0]
    w16 = np.frombuffer(base64.b64decode(half["layers"][0]["weight"]), dtype="<f2")
    np.testing.assert_array_equal(w16, first.weight.detach().numpy().astype("<f2").ravel())
    got = torch.tensor(run_js(half, zs)["means"], dtype=torch.float64)
    want = reference_mean(model, zs)
    assert (got - want).abs().max() <= 2 / 255
    assert half["id"] != decoder_payload(model)["id"]
