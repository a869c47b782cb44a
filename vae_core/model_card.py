"""A model card for a checkpoint: its data, model, objective, results, and how to reproduce it.

`card_sections(meta, sha256=, file_name=)` turns a checkpoint's header (vae_core.checkpoints.
read_metadata: no torch, no weights) into titled rows of (field, value) strings, for a page to
show as text; `model_card(...)` writes the same rows as Markdown, every value escaped, for a
download. A field an older checkpoint's header lacks reads NOT_RECORDED: nothing is invented.
`reproduce_command` rebuilds the `python -m vae_core train` line from the stored configs; every
config field has its flag (FLAGS), so parsing the line gives back the same configs and so the
same cache key (tests/test_model_card.py runs it through the CLI and gets a cache hit).
"""

from __future__ import annotations

import hashlib
import re
import shlex

from .config import ModelConfig

NOT_RECORDED = "not recorded"

# (CLI flag, argparse dest, "model" | "train", config field): every field of both configs except
# input_shape, which the CLI takes from the data.
FLAGS = (
    ("--dataset", "dataset", "train", "dataset"),
    ("--arch", "arch", "model", "arch"),
    ("--latent-dim", "latent_dim", "model", "latent_dim"),
    ("--hidden", "hidden", "model", "hidden"),
    ("--conv-channels", "conv_channels", "model", "conv_channels"),
    ("--likelihood", "likelihood", "model", "likelihood"),
    ("--sigma", "sigma", "model", "sigma"),
    ("--sigma-mode", "sigma_mode", "model", "sigma_mode"),
    ("--binarize", "binarize", "train", "binarize"),
    ("--objective", "objective", "train", "objective"),
    ("--beta", "beta", "train", "beta"),
    ("--warmup", "warmup", "train", "warmup_epochs"),
    ("--free-bits", "free_bits", "train", "free_bits"),
    ("--mc-samples", "mc_samples", "train", "mc_samples"),
    ("--iw-samples", "iw_samples", "train", "iw_samples"),
    ("--mmd-weight", "mmd_weight", "train", "mmd_weight"),
    ("--epochs", "epochs", "train", "epochs"),
    ("--batch-size", "batch_size", "train", "batch_size"),
    ("--lr", "lr", "train", "lr"),
    ("--seed", "seed", "train", "seed"),
    ("--test-fraction", "test_fraction", "train", "test_fraction"),
    ("--max-train", "max_train", "train", "max_train"),
)


def sha256_file(path: str) -> str:
    """The hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _flag_value(v) -> str:
    """A config value as the CLI parses it back: ints as ints, floats by repr (exact), lists comma-joined."""
    if isinstance(v, (list, tuple)):
        return ",".join(str(int(x)) for x in v)
    return repr(v) if isinstance(v, float) else str(v)


def reproduce_command(model_config: dict, train_config: dict, final_iw_samples: int | None = None) -> str:
    """One shell line, every flag given as --flag=value (a value starting with '-' stays a value)."""
    cfgs = {"model": model_config, "train": train_config}
    args = [f"{flag}={_flag_value(cfgs[which][field])}" for flag, _dest, which, field in FLAGS]
    if final_iw_samples is not None:
        args.append(f"--final-iw-samples={int(final_iw_samples)}")
    return "python -m vae_core train " + " ".join(shlex.quote(a) for a in args)


def _num(v, fmt: str = "{:.2f}", unit: str = "") -> str:
    return NOT_RECORDED if v is None else fmt.format(v) + unit


def _get(d: dict, key: str, fmt=str) -> str:
    return NOT_RECORDED if d.get(key) is None else fmt(d[key])


def _training_time(history: list) -> str:
    secs = [h.get("seconds") for h in history]
    if not secs or any(s is None for s in secs):
        return NOT_RECORDED
    return (
        f"{sum(secs):.1f} s over {len(secs)} epochs (training steps; the per-epoch test evaluation "
        f"and the final log p(x) are not counted)"
    )


def card_sections(meta: dict, *, sha256: str, file_name: str) -> list[tuple[str, list[tuple[str, str]]]]:
    """[(section title, [(field, value), ...]), ...] from a checked checkpoint header."""
    mc, tc = meta["model_config"], meta["train_config"]
    ds, m, hist = meta.get("dataset") or {}, meta.get("metrics") or {}, meta.get("history") or []
    rt = m.get("runtime") if isinstance(m.get("runtime"), dict) else {}
    k = mc["latent_dim"]
    arch = (
        f"MLP {'-'.join(str(v) for v in [ModelConfig.from_dict(mc).input_dim, *mc['hidden'], k])}"
        if mc["arch"] == "mlp"
        else f"conv: two 4x4 stride-2 convs ({mc['conv_channels'][0]}, {mc['conv_channels'][1]} channels), "
        f"hidden {mc['hidden'] or 'none'}, latent {k}, mirrored decoder"
    )
    likelihood = (
        mc["likelihood"]
        + (f", sigma = {mc['sigma']:g}" if mc["likelihood"] == "gaussian" else "")
        + (f", sigma {mc['sigma_mode']}" if mc["likelihood"] == "gaussian-learned" else "")
    )
    objective = {
        "elbo": f"ELBO, beta = {tc['beta']:g}, KL warm-up {tc['warmup_epochs']:g} epochs, "
        f"free bits {tc['free_bits']:g} nats per dim, L = {tc['mc_samples']} sample(s)",
        "iwae": f"IWAE bound, K = {tc['iw_samples']}",
        "mmd": f"MMD-VAE (InfoVAE), lambda = {tc['mmd_weight']:g}",
        "ae": "plain autoencoder (no KL): test ELBO and log p(x) are not meaningful",
    }[tc["objective"]]
    iw = m.get("iw_samples")
    active = m.get("active_units")
    return [
        (
            "Data",
            [
                ("dataset", _get(ds, "name", str) if ds.get("name") else tc["dataset"]),
                ("train / test examples", f"{_get(ds, 'n_train')} / {_get(ds, 'n_test')}"),
                ("input shape", " x ".join(str(v) for v in mc["input_shape"])),
                (
                    "split",
                    f"the dataset's own test split, or a seeded test fraction of {tc['test_fraction']:g} "
                    f"where it has none; first {tc['max_train']} training examples"
                    if tc["max_train"]
                    else f"the dataset's own test split, or a seeded test fraction of {tc['test_fraction']:g} "
                    f"where it has none; all training examples",
                ),
                (
                    "targets",
                    {
                        "none": "pixel values as they are",
                        "fixed": "binarized once (x > 0.5)",
                        "dynamic": "binarized afresh each epoch (test set: one seeded draw)",
                    }[tc["binarize"]],
                ),
                ("data fingerprint", _get(ds, "fingerprint")),
            ],
        ),
        (
            "Model",
            [
                ("architecture", arch),
                ("latent dimensions", str(k)),
                ("parameters", f"{ModelConfig.from_dict(mc).n_parameters():,}"),
                ("likelihood p(x|z)", likelihood),
                ("prior p(z)", "N(0, I)"),
                ("posterior q(z|x)", "diagonal Gaussian"),
            ],
        ),
        (
            "Training",
            [
                ("objective", objective),
                ("optimiser", f"Adam, learning rate {tc['lr']:g}"),
                ("epochs", str(tc["epochs"])),
                ("batch size", str(tc["batch_size"])),
                ("seed", str(tc["seed"])),
                ("training time", _training_time(hist)),
                (
                    "device",
                    _get(rt, "device")
                    + (f" x {rt['world_size']} processes" if (rt.get("world_size") or 1) > 1 else ""),
                ),
            ],
        ),
        (
            "Test results (nats per example)",
            [
                ("ELBO", _num(m.get("elbo"))),
                ("reconstruction E_q log p(x|z)", _num(m.get("recon"))),
                ("KL(q(z|x) || p(z))", _num(m.get("kl"))),
                (
                    "log p(x), importance-sampled",
                    _num(m.get("log_likelihood"))
                    + (f" (K = {iw})" if iw and m.get("log_likelihood") is not None else ""),
                ),
                ("active units", NOT_RECORDED if active is None else f"{active} of {k}"),
                ("test examples evaluated", _get(m, "n")),
            ],
        ),
        ("Checkpoint", [("file", file_name), ("sha256", sha256), ("reproduce", reproduce_command(mc, tc, iw))]),
    ]


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$&:])")


def md_escape(s: str) -> str:
    """A string as literal Markdown text on one line: punctuation backslash-escaped, newlines as spaces."""
    return _MD_SPECIAL.sub(r"\\\1", " ".join(str(s).split()))


def model_card(meta: dict, *, sha256: str, file_name: str) -> str:
    """The card as a Markdown document: one table per section, the command in a code block."""
    out = [f"# Model card: {md_escape(file_name)}", ""]
    for title, rows in card_sections(meta, sha256=sha256, file_name=file_name):
        out += [f"## {md_escape(title)}", "", "| field | value |", "|---|---|"]
        command = None
        for field, value in rows:
            if field == "reproduce":
                command = value
                continue
            out.append(f"| {md_escape(field)} | {md_escape(value)} |")
        if command is not None:
            fence = "`" * max(3, 1 + max((len(r) for r in re.findall("`+", command)), default=0))
            out += [
                "",
                "Reproduce (a cache hit if the checkpoint is in the cache):",
                "",
                f"{fence}bash",
                command,
                fence,
            ]
        out.append("")
    return "\n".join(out)


def model_card_for(path: str) -> str:
    """The Markdown card of the checkpoint file at `path` (its header only)."""
    import os

    from .checkpoints import read_metadata

    return model_card(read_metadata(path), sha256=sha256_file(path), file_name=os.path.basename(path))
