"""torchrun worker for tests/test_distributed.py (not a test): the gradients of fit's steps, averaged
by DistributedDataParallel, for a 13-row and an 11-row set with global batch 10.

    torchrun --nproc_per_node W tests/ddp_grad_worker.py OUT.pt
Rank 0 saves {"grads": [[one tensor per parameter] per step], "rank1_equal": bool}.
"""

import sys

import torch

from vae_core import batches as bt
from vae_core import distributed as ddp
from vae_core.config import ModelConfig, TrainConfig
from vae_core.dataset import unit_float
from vae_core.model import VAE
from vae_core.train import StepLoss, _plan

MODEL = ModelConfig(input_shape=(1, 28, 28), latent_dim=3, arch="conv", hidden=(16,), conv_channels=(4, 8))
TRAIN = TrainConfig(dataset="ddp-test", batch_size=10, seed=0, binarize="dynamic", mc_samples=2, beta=0.7)


def main(out: str) -> None:
    torch.set_num_threads(1)
    world = ddp.world_from_env()
    dev = ddp.init(world, "cpu", timeout_s=120)
    pixels = torch.randint(0, 256, (13, 1, 28, 28), generator=torch.Generator().manual_seed(5), dtype=torch.uint8)
    torch.manual_seed(TRAIN.seed)
    vae = VAE(MODEL).double()  # float64: the comparison is about the sharding, not float32 rounding
    step = StepLoss(vae, TRAIN)
    if world.distributed:
        step = torch.nn.parallel.DistributedDataParallel(step)
    grads = []
    for n in (13, 11):  # steps of 10 + 3 rows (shards 5+5, 1+2), then 10 + 1 (shards 5+5, 0+1)
        noise = bt.StepNoise(TRAIN.seed, dev)
        perm = noise.permutation(n)
        for s, (m, rows, weight) in enumerate(_plan(n, TRAIN.batch_size, world)):
            idx = perm[s * TRAIN.batch_size : (s + 1) * TRAIN.batch_size][rows]
            x, eps = bt.step_inputs(
                noise, unit_float(pixels[idx]), m, rows, TRAIN.binarize, TRAIN.mc_samples, MODEL.latent_dim
            )
            vae.zero_grad(set_to_none=True)
            loss, _recon, _kl = step(
                x.double(),
                eps.double(),
                torch.tensor(TRAIN.beta, dtype=torch.float64),
                torch.tensor(weight, dtype=torch.float64),
            )
            loss.backward()
            grads.append([p.grad.detach().clone() for p in vae.parameters()])
    flat = torch.cat([g.flatten() for step_grads in grads for g in step_grads])
    if world.distributed:  # every rank must hold the same averaged gradient
        gathered = [torch.empty_like(flat) for _ in range(world.size)]
        torch.distributed.all_gather(gathered, flat)
        same = all(torch.equal(gathered[0], g) for g in gathered)
    else:
        same = True
    if world.is_main:
        torch.save({"grads": grads, "ranks_equal": same}, out)
    del step  # DDP's reducer holds the group
    ddp.shutdown(world, wait_for_all=True)


if __name__ == "__main__":
    main(sys.argv[1])
