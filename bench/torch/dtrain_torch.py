#!/usr/bin/env python3
"""The four models of dtrain's SPEC, written in plain PyTorch, to compare speed.

Each model follows the SPEC's literal recipe (layer shapes, losses, Adam settings,
batch sizes), reads the same HDF5 data file as dtrain (/vae/train/images and
/cyclegan/A|B/train/images, uint8 [N,3,28,28]; HDF5 skips the file's 512-byte user
block) and trains on images preloaded as float tensors.

  dtrain_torch.py MODEL --data FILE --threads T --steps N [--batch B]
      MODEL: vae, dvae, jvae or cyclegan. Runs 3 warm-up steps, then N timed
      training steps; prints one line of JSON whose images_per_s counts, as dtrain
      does, images per second of step time (the CycleGAN: A and B images, 2 x batch
      per iteration).
  dtrain_torch.py check --data FILE [--steps N] [--threads T]
      trains each model N steps (default 50) and fails (exit status 1) unless its
      loss falls and the CycleGAN's parameter counts are those of dtrain's networks.
"""
import argparse
import ctypes
import json
import math
import sys
import time

import h5py
import torch
import torch.nn as nn
import torch.nn.functional as F

IMG = 3 * 28 * 28  # 2352
WARMUP = 3

# parameter counts of dtrain's CycleGAN networks (SPEC, model 4)
G_PARAMS = 3 * 32 * 9 + 32 + 32 * 40 * 9 + 40 + 40 * 3 + 3
D_PARAMS = 3 * 32 * 9 + 32 + 32 * 64 * 9 + 64 + 3136 * 128 + 128 + 128 + 1


def die(msg):
    print(f"dtrain_torch: error: {msg}", file=sys.stderr)
    sys.exit(2)


def load_images(path, group):
    """uint8 [N,3,28,28] from the data file -> float32 in [0,1], in memory."""
    try:
        with h5py.File(path, "r") as f:
            if group not in f:
                die(f"{path} has no /{group}; write the data file with './dtrain prepare --out {path}'")
            u8 = f[group][...]
    except OSError as e:
        die(f"cannot read the data file {path} ({e}); write it with './dtrain prepare --out {path}'")
    return torch.from_numpy(u8).float().div_(255.0)


class Batches:
    """Shuffled batches of a preloaded tensor, a new permutation each epoch; the
    last partial batch is kept (SPEC)."""

    def __init__(self, x, batch, gen):
        self.x, self.batch, self.gen = x, batch, gen
        self.perm, self.at = None, len(x)

    def next(self):
        if self.at >= len(self.x):
            self.perm, self.at = torch.randperm(len(self.x), generator=self.gen), 0
        idx = self.perm[self.at:self.at + self.batch]
        self.at += self.batch
        return self.x[idx]


# ---- the three VAEs (SPEC models 1-3) ----

def trunk():
    return nn.Sequential(nn.Linear(IMG, 512), nn.ReLU(), nn.Linear(512, 256), nn.ReLU())


def decoder(zdim):
    return nn.Sequential(nn.Linear(zdim, 256), nn.ReLU(), nn.Linear(256, 512), nn.ReLU(),
                         nn.Linear(512, IMG), nn.Sigmoid())


def kl_gauss(mu, logvar):
    # KL(q(z|x) || N(0,I)) = -1/2 sum(1 + log s^2 - mu^2 - s^2), summed over the batch
    return -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())


def kl_uniform(logits, K):
    # KL(q || uniform) = sum q log(q K + 1e-20), q = softmax of each row
    q = F.softmax(logits, dim=-1)
    return torch.sum(q * torch.log(q * K + 1e-20))


class VAE(nn.Module):
    def __init__(self):
        super().__init__()
        self.enc, self.head, self.dec = trunk(), nn.Linear(256, 4), decoder(2)

    def forward(self, x, tau):
        mu, logvar = self.head(self.enc(x)).chunk(2, dim=1)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        return self.dec(z), [kl_gauss(mu, logvar)]


class DVAE(nn.Module):
    def __init__(self, N=2, K=10, hard=False):
        super().__init__()
        self.N, self.K, self.hard = N, K, hard
        self.enc, self.head, self.dec = trunk(), nn.Linear(256, N * K), decoder(N * K)

    def forward(self, x, tau):
        logits = self.head(self.enc(x)).view(-1, self.N, self.K)
        z = F.gumbel_softmax(logits, tau=tau, hard=self.hard, dim=-1)
        return self.dec(z.flatten(1)), [kl_uniform(logits, self.K)]


class JVAE(nn.Module):
    def __init__(self, N=2, K=10, hard=False):
        super().__init__()
        self.N, self.K, self.hard = N, K, hard
        self.enc = trunk()
        self.gauss, self.cat = nn.Linear(256, 4), nn.Linear(256, N * K)
        self.dec = decoder(2 + N * K)

    def forward(self, x, tau):
        h = self.enc(x)
        mu, logvar = self.gauss(h).chunk(2, dim=1)
        zc = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
        logits = self.cat(h).view(-1, self.N, self.K)
        zd = F.gumbel_softmax(logits, tau=tau, hard=self.hard, dim=-1)
        return self.dec(torch.cat([zc, zd.flatten(1)], 1)), [kl_gauss(mu, logvar), kl_uniform(logits, self.K)]


def tau_at(t, tau0=1.0, tau_min=0.5, rate=3e-4, every=100):
    # tau = max(tau0 exp(-rate t), tau_min), recomputed every 100 iterations
    return max(tau0 * math.exp(-rate * (t - t % every)), tau_min)


class VAEStep:
    """One Adam step (lr 1e-3) of BCE + KL, per image, averaged over the batch."""

    def __init__(self, model, data, batch, gen):
        self.net = {"vae": VAE, "dvae": DVAE, "jvae": JVAE}[model]()
        self.opt = torch.optim.Adam(self.net.parameters(), lr=1e-3)
        self.batches = Batches(data["vae"], batch, gen)
        self.t = 0

    def __call__(self):
        x = self.batches.next().view(-1, IMG)
        recon, kls = self.net(x, tau_at(self.t))
        loss = (F.binary_cross_entropy(recon, x, reduction="sum") + sum(kls)) / x.shape[0]
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.t += 1
        return x.shape[0], {"loss": loss.item()}


# ---- the CycleGAN (SPEC model 4) ----

def generator():
    return nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(32, 40, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(40, 3, 1), nn.Sigmoid())


def discriminator():
    return nn.Sequential(nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(3136, 128), nn.ReLU(), nn.Linear(128, 1), nn.Sigmoid())


def count(net):
    return sum(p.numel() for p in net.parameters())


def set_requires_grad(nets, flag):
    for net in nets:
        for p in net.parameters():
            p.requires_grad_(flag)


class CycleGANStep:
    """The standard CycleGAN iteration: the generators step on adversarial BCE +
    10 x L1 cycle with the discriminators frozen, then D_A on real A vs the detached
    fake A, then D_B likewise; four Adams (lr 2e-4, beta1 0.5)."""

    def __init__(self, data, batch, gen, lambda_cyc=10.0):
        self.G_AB, self.G_BA = generator(), generator()
        self.D_A, self.D_B = discriminator(), discriminator()
        adam = lambda net: torch.optim.Adam(net.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.opt = {n: adam(getattr(self, n)) for n in ("G_AB", "G_BA", "D_A", "D_B")}
        self.A = Batches(data["A"], batch, gen)
        self.B = Batches(data["B"], batch, gen)
        self.lambda_cyc = lambda_cyc
        self.bce, self.l1 = nn.BCELoss(), nn.L1Loss()

    def adv(self, p, real):
        return self.bce(p, torch.ones_like(p) if real else torch.zeros_like(p))

    def __call__(self):
        real_A, real_B = self.A.next(), self.B.next()
        # generators (A->B and B->A), discriminators frozen
        set_requires_grad([self.D_A, self.D_B], False)
        for n in ("G_AB", "G_BA"):
            self.opt[n].zero_grad(set_to_none=True)
        fake_B = self.G_AB(real_A)
        fake_A = self.G_BA(real_B)
        cyc = self.l1(self.G_BA(fake_B), real_A) + self.l1(self.G_AB(fake_A), real_B)
        loss_G = self.adv(self.D_B(fake_B), True) + self.adv(self.D_A(fake_A), True) + self.lambda_cyc * cyc
        loss_G.backward()
        self.opt["G_AB"].step()
        self.opt["G_BA"].step()
        set_requires_grad([self.D_A, self.D_B], True)
        # each discriminator: real vs the fakes of this step, detached
        loss_D = []
        for D, real, fake in ((self.D_A, real_A, fake_A), (self.D_B, real_B, fake_B)):
            name = "D_A" if D is self.D_A else "D_B"
            self.opt[name].zero_grad(set_to_none=True)
            loss = self.adv(D(real), True) + self.adv(D(fake.detach()), False)
            loss.backward()
            self.opt[name].step()
            loss_D.append(loss.item())
        return real_A.shape[0] + real_B.shape[0], {"cycle": cyc.item(), "loss_G": loss_G.item(),
                                                   "loss_D_A": loss_D[0], "loss_D_B": loss_D[1]}

    def params(self):
        return {"params_g": count(self.G_AB), "params_d": count(self.D_A)}


def build(model, path, batch, seed):
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    if model == "cyclegan":
        data = {X: load_images(path, f"cyclegan/{X}/train/images") for X in "AB"}
        return CycleGANStep(data, batch or 64, gen)
    return VAEStep(model, {"vae": load_images(path, "vae/train/images")}, batch or 128, gen)


def set_threads(n):
    torch.set_num_threads(n)
    # Debian's PyTorch does its matrix products in OpenBLAS, whose own thread pool
    # (one thread per core) set_num_threads leaves alone: give it the same count
    try:
        ctypes.CDLL("libopenblas.so.0").openblas_set_num_threads(n)
    except (OSError, AttributeError):
        pass


def train(model, path, threads, steps, batch, seed):
    """WARMUP untimed steps, then `steps` timed ones; returns the result as a dict."""
    set_threads(threads)
    step = build(model, path, batch, seed)
    hist = []
    for _ in range(WARMUP):
        hist.append(step()[1])
    images, secs = 0, 0.0
    for _ in range(steps):
        t0 = time.perf_counter()
        n, losses = step()
        secs += time.perf_counter() - t0
        images += n
        hist.append(losses)
    out = {"model": model, "framework": f"pytorch {torch.__version__}", "threads": threads,
           "batch": batch or (64 if model == "cyclegan" else 128), "steps": steps,
           "images_per_s": images / secs if secs > 0 else 0.0}
    key = "cycle" if model == "cyclegan" else "loss"
    k = min(5, len(hist) // 2)
    out[key + "_first"] = sum(h[key] for h in hist[:k]) / k
    out[key + "_last"] = sum(h[key] for h in hist[-k:]) / k
    if model == "cyclegan":
        out.update(step.params())
        out["loss_D_last"] = (hist[-1]["loss_D_A"] + hist[-1]["loss_D_B"]) / 2
    return out


def check(path, threads, steps, seed):
    """Sanity of the four models: the loss falls; the CycleGAN's networks have
    dtrain's parameter counts. Returns the number of failures."""
    failed = 0
    for model in ("vae", "dvae", "jvae", "cyclegan"):
        r = train(model, path, threads, steps, None, seed)
        key = "cycle" if model == "cyclegan" else "loss"
        first, last = r[key + "_first"], r[key + "_last"]
        ok = last < 0.9 * first
        msg = f"{model}: {key} {first:.4g} -> {last:.4g} over {steps + WARMUP} steps"
        if model == "cyclegan":
            ok_p = r["params_g"] == G_PARAMS and r["params_d"] == D_PARAMS
            msg += (f"; parameters G {r['params_g']} D {r['params_d']} "
                    f"(dtrain: G {G_PARAMS} D {D_PARAMS})")
            ok = ok and ok_p
        print(("ok   " if ok else "FAIL ") + msg, flush=True)
        failed += not ok
    return failed


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", choices=["vae", "dvae", "jvae", "cyclegan", "check"])
    ap.add_argument("--data", required=True, help="dtrain's HDF5 data file")
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (default 1)")
    ap.add_argument("--steps", type=int, default=None,
                    help=f"timed training steps after {WARMUP} warm-up steps (default 40; check: 50)")
    ap.add_argument("--batch", type=int, default=None, help="batch (default: SPEC's, 128 VAEs, 64 CycleGAN)")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args(argv)
    if a.threads < 1 or (a.steps is not None and a.steps < 1) or (a.batch is not None and a.batch < 1):
        ap.error("--threads, --steps and --batch must be at least 1")
    if a.model == "check":
        return 1 if check(a.data, a.threads, a.steps or 50, a.seed) else 0
    print(json.dumps(train(a.model, a.data, a.threads, a.steps or 40, a.batch, a.seed)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
