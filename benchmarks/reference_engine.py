"""BENCHMARK-ONLY replica of the reference code's DPAP / SD-SNN engine (never imported by the
library; ``src/devprune`` must not depend on it).

Purpose: measure devprune's engine against the reference's *way of computing* in the same
process, so the speed-ups in ``benchmarks/results/{dpap,sdsnn}.md`` are same-run ratios and
not comparisons with times quoted from another day. It is a re-implementation written from
the reference's behaviour described in docs/DPAP.md#dpap-method and docs/SDSNN.md#sdsnn-method
and the authors' code's data layout, reproducing its operation sequence on the CPU:

DPAP (BrainCog CIFAR code)
    * per batch: one trace tensor per recorded module output (input, every ``feature``
      module output including the max-pools, the flattened vector and ``fc_prun``'s spikes),
      advanced by a Python loop over the T steps with out-of-place ``delta * x + o``, then
      ``/ T`` and a spatial sum; per prunable layer the BCM update
      ``M = M + mm((a * (a - theta)).T, a_pre)`` with the per-batch-slot threshold
      ``theta = (theta * (k - 1) + a) / k`` and the activity total ``A = A + sum_b a``;
    * per epoch: ``S = minmax(rowsum M) * minmax(A)``; the robust normalisation
      ``clip((v - min) / (P75 - min), 0, 1)`` with numpy's percentile on a host copy; float
      "codebook" masks the shape of the weight (FC synapse mask built as a flat float book,
      reshaped, multiplied in), dead filters/rows zeroed one index at a time in a Python
      loop, and ``weight.data = weight * mask`` for every layer.

SD-SNN (BrainCog CIFAR code)
    * range counters as float64 numpy arrays; "beyond its bound now and last epoch" as
      Python-set intersections of flat indices, the reset set as
      ``set(range(n)) - counted`` (three times per layer and epoch); only the FC layer's
      ranges are updated (the reference's indentation bug, docs/SDSNN.md#sdsnn-conv-range-bug);
    * clipping with numpy boolean indexing on a host copy of every pruned layer;
    * regrowth: numpy percentile of the signed weights (conv: 3x3 kernel sums), candidates
      and persistence as Python sets, restored conv kernels written one slice at a time;
    * neuron pruning: ``argsort`` of the summed min-max range width times the mask, the
      history as a Python set; the neurotrophic rate rules; ``weight.data *= mask``.

Only the engine's arithmetic is replicated (no model, no GPU transfers: on this CPU-only
machine ``.cuda()`` / ``.cpu()`` would be no-ops or copies the reference pays on its GPU).
Where the semantics coincide with a devprune setting (DPAP ``theta="per_slot"``,
``readout="last"``, ``mode="reference"``; SD-SNN's range counter), ``tests/benchmarks_check``
checks that the results agree on small tensors.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


# --------------------------------------------------------------------------------------------
# DPAP: per-batch trace + BCM bookkeeping
# --------------------------------------------------------------------------------------------
def reference_unit_minmax(x: torch.Tensor) -> torch.Tensor:
    """``(x - min) / (max - min)``, 0.5 everywhere when constant (the reference's unit_tensor)."""
    hi, lo = torch.max(x), torch.min(x)
    marge = hi - lo
    if marge != 0:
        return (x - lo) / marge
    return 0.5 * torch.ones_like(x)


def reference_unit_robust(x: torch.Tensor) -> torch.Tensor:
    """``clip((x - min) / (P75 - min), 0, 1)`` with numpy's percentile on a host copy."""
    host = x.detach().cpu().numpy()
    lo = float(np.min(host))
    hi = float(np.percentile(host, 75))
    return torch.clamp((x - lo) / (hi - lo), 0, 1)


class ReferenceDPAPBookkeeping:
    """Traces of every recorded module output and the BCM state of the prunable layers.

    ``layers`` are ``(pre_index, post_index)`` positions in the per-step output list.
    """

    def __init__(self, outputs: list[torch.Tensor], layers: list[tuple[int, int]],
                 batch: int, steps: int, delta: float = 0.5) -> None:
        self.layers = layers
        self.batch, self.steps, self.delta = batch, steps, delta
        self.shapes = [tuple(o.shape[1:]) for o in outputs]  # [T, B, ...] per output
        self.num = 0
        self.bcm, self.theta, self.trace_total = {}, {}, {}
        for pre, post in layers:
            n_post, n_pre = self.shapes[post][1], self.shapes[pre][1]
            self.bcm[post] = torch.zeros(n_post, n_pre)
            self.theta[post] = torch.zeros(batch, n_post)
            self.trace_total[post] = torch.zeros(n_post)

    def computing_trace(self, spikes: list[list[torch.Tensor]]) -> list[torch.Tensor]:
        """``spikes[t][i]``: output i at step t. Returns ``x[T] / T`` summed over space."""
        traces = [torch.zeros(shape) for shape in self.shapes]
        for t in range(self.steps):
            for i in range(len(traces)):
                traces[i] = self.delta * traces[i] + spikes[t][i].detach()
        out = []
        for x in traces:
            x = x / self.steps
            if x.dim() == 4:
                x = torch.sum(torch.sum(x, dim=2), dim=2)
            out.append(x)
        return out

    def update(self, spikes: list[list[torch.Tensor]]) -> None:
        """One batch (``BCM_and_trace``)."""
        self.num += 1
        csum = self.computing_trace(spikes)
        for pre, post in self.layers:
            post1 = csum[post] * (csum[post] - self.theta[post])
            hebb = torch.mm(post1.T, csum[pre])
            self.bcm[post] = self.bcm[post] + hebb
            self.theta[post] = torch.div(self.theta[post] * (self.num - 1) + csum[post],
                                         self.num)
            self.trace_total[post] = self.trace_total[post] + torch.sum(csum[post], dim=0)


# --------------------------------------------------------------------------------------------
# DPAP: epoch-end step
# --------------------------------------------------------------------------------------------
class ReferenceDPAPMask:
    """Reserves and float codebooks of conv filters and FC neurons + synapses (BC constants)."""

    def __init__(self, weights: dict[str, torch.Tensor], kinds: dict[str, str],
                 conv=(0.65, 5.0, 10.0, 12.0), fc=(1.5, 2.0, 10.0, 13.0), e0: int = 5,
                 gamma: float = 0.999) -> None:
        self.weights, self.kinds = weights, kinds
        self.conv, self.fc, self.e0, self.gamma = conv, fc, e0, gamma
        self.fullbook = {n: torch.ones_like(w) for n, w in weights.items()}
        self.reduce = {n: torch.full((w.shape[0],), (conv if kinds[n] == "conv" else fc)[2])
                       for n, w in weights.items()}
        self.reduceww = {n: torch.full((w.numel(),), fc[2])
                         for n, w in weights.items() if kinds[n] == "fc"}

    def spines(self, bcm: torch.Tensor, trace_total: torch.Tensor) -> torch.Tensor:
        return reference_unit_minmax(torch.sum(bcm, dim=1)) * reference_unit_minmax(trace_total)

    def _units(self, name: str, dendrite: torch.Tensor, const, epoch: int) -> None:
        offset, bonus, _, kappa = const
        delta = reference_unit_robust(dendrite) * 2 - offset
        pos = torch.nonzero(delta > 0)
        delta[pos] = delta[pos] + bonus
        self.reduce[name] = self.reduce[name] * self.gamma + delta * math.exp(
            -int((epoch - self.e0) / kappa))
        dead = torch.nonzero(self.reduce[name] < 0)
        for x in range(len(dead)):
            self.fullbook[name][dead[x]] = 0

    def _synapses(self, name: str, bcm: torch.Tensor, epoch: int) -> None:
        offset, bonus, _, kappa = self.fc
        book = torch.ones(bcm.numel())
        delta = reference_unit_robust(bcm.view(-1)) * 2 - offset
        pos = torch.nonzero(delta > 0)
        delta[pos] = delta[pos] + bonus
        self.reduceww[name] = self.reduceww[name] * self.gamma + delta * math.exp(
            -int((epoch - self.e0) / kappa))
        book[torch.nonzero(self.reduceww[name] < 0)] = 0
        self.fullbook[name] = self.fullbook[name] * book.reshape(bcm.shape[0], -1)

    def step(self, bcm: dict[str, torch.Tensor], trace_total: dict[str, torch.Tensor],
             epoch: int) -> None:
        """Spines, reserves, codebooks (``init_mask``) and ``do_mask``."""
        spines = {n: self.spines(bcm[n], trace_total[n]) for n in self.weights}
        for name in self.weights:
            if self.kinds[name] == "conv":
                self._units(name, spines[name], self.conv, epoch)
            else:
                self._synapses(name, bcm[name], epoch)
                self._units(name, spines[name], self.fc, epoch)
        for name, w in self.weights.items():
            w.data = w * self.fullbook[name]


# --------------------------------------------------------------------------------------------
# SD-SNN: range counters, clipping, regrowth, pruning
# --------------------------------------------------------------------------------------------
class ReferenceSetRanges:
    """One layer's ranges with Python-set counters (``get_range_weight``), float64 numpy."""

    def __init__(self, weight: np.ndarray, count_threshold: int, shrink: float = 0.75) -> None:
        flat = weight.reshape(-1).astype(np.float32)
        n = flat.size
        self.n, self.c, self.shrink = n, count_threshold, shrink
        self.pos = float(flat.max()) * np.ones((n,))
        self.neg = -float(flat.max()) * np.ones((n,))
        self.count = {k: np.zeros((n,)) for k in ("pos", "neg", "in")}
        self.dsum = {k: np.zeros((n,)) for k in ("pos", "neg", "in")}
        self.previous = {k: np.array([n + 1]) for k in ("pos", "neg", "in")}  # no index
        self.weight_previous = np.abs(flat)

    def _run(self, key: str, now: np.ndarray, excess: np.ndarray) -> np.ndarray:
        index = set(now) & set(self.previous[key])
        zero = set([i for i in range(self.n)]) - index
        index = np.array(list(index))
        zero = np.array(list(zero))
        if zero.size > 0:
            self.count[key][zero] = 0
            self.dsum[key][zero] = 0
        if index.size > 0:
            self.count[key][index] = self.count[key][index] + 1
            self.dsum[key][index] += excess[index]
        hit = np.where(self.count[key] >= self.c)
        self.previous[key] = now
        return hit

    def update(self, weight: np.ndarray) -> None:
        w = weight.reshape(-1)
        w_abs = abs(w)
        now = np.where(w >= self.pos)[0]
        hit = self._run("pos", now, w - self.pos)
        self.pos[hit] += self.dsum["pos"][hit] / self.c
        self.count["pos"][hit] = 0
        self.dsum["pos"][hit] = 0
        now = np.where(w <= self.neg)[0]
        hit = self._run("neg", now, w - self.neg)
        self.neg[hit] += self.dsum["neg"][hit] / self.c
        self.count["neg"][hit] = 0
        self.dsum["neg"][hit] = 0
        now = np.where(w_abs < self.weight_previous)[0]
        hit = self._run("in", now, w_abs - self.weight_previous)
        self.pos[hit] = self.shrink * self.pos[hit]
        self.neg[hit] = self.shrink * self.neg[hit]
        self.count["in"][hit] = 0
        self.dsum["in"][hit] = 0
        self.weight_previous = w_abs


class ReferenceSDSNN:
    """The epoch-end update of the BrainCog CIFAR SD-SNN code on a list of weights.

    ``weights`` maps names to conv (4-d) or linear (2-d) weight tensors, conv layers first.
    Constants: BC CIFAR-10 (docs/SDSNN.md#sdsnn-variants).
    """

    def __init__(self, weights: dict[str, torch.Tensor], count_threshold: int = 18,
                 fc_only_ranges: bool = True) -> None:
        self.weights = weights
        self.c = count_threshold
        self.codebook = {n: torch.ones_like(w) for n, w in weights.items()}
        self.ranges = {}
        for name, w in weights.items():
            r = ReferenceSetRanges(w.detach().numpy(), count_threshold)
            self.ranges[name] = r
        self.tracked = [n for n, w in weights.items() if w.dim() == 2 or not fc_only_ranges]
        self.rate = {n: (0.5 if w.dim() == 4 else 2.0) for n, w in weights.items()}
        self.history = {n: {w.shape[0] + 1} for n, w in weights.items()}
        cands = {n: (w.shape[0] * w.shape[1]) for n, w in weights.items()}
        self.grow_count = {n: np.zeros((k,)) for n, k in cands.items()}
        self.grow_previous = {n: {k + 1} for n, k in cands.items()}

    def update_ranges(self) -> None:
        for name in self.tracked:
            ww = self.weights[name].data * self.codebook[name]
            self.ranges[name].update(ww.view(-1).cpu().numpy())

    def clip(self) -> None:
        for name, item in self.weights.items():
            r = self.ranges[name]
            a = item.data.view(-1).cpu().numpy().copy()
            a[a > r.pos] = r.pos[a > r.pos]
            a[a < r.neg] = r.neg[a < r.neg]
            item.data = torch.from_numpy(a).float().view(item.shape)

    def regrow(self, epoch: int) -> None:
        for name, item in self.weights.items():
            conv = item.dim() == 4
            if conv:
                ww = torch.sum(torch.sum(item.data, dim=2), dim=2).view(-1).cpu().numpy()
                code = torch.sum(torch.sum(self.codebook[name], dim=2), dim=2)
                rate, limit = min(99, 65 + 1.1 ** (epoch - 37)), 18
            else:
                ww = item.data.view(-1).cpu().numpy()
                code = self.codebook[name]
                rate, limit = min(99, 60 + 1.1 ** (epoch - 37)), 18
            p_index = np.where(code.view(-1).cpu().numpy() == 0)[0]
            gg = np.percentile(ww, rate)
            grow = np.where(ww > gg)[0]
            growth_ind = set(grow) & set(p_index)
            growth_index = growth_ind & set(self.grow_previous[name])
            zero_index = set([i for i in range(ww.size)]) - growth_index
            growth_index = np.array(list(growth_index))
            zero_index = np.array(list(zero_index))
            count = self.grow_count[name]
            if zero_index.size > 0:
                count[zero_index] = 0
            if growth_index.size > 0:
                count[growth_index] = count[growth_index] + 1
            gr_index = np.where(count > limit)[0]
            if conv:
                book = self.codebook[name].view(-1)
                k = item[0, 0].numel()
                for x in range(len(gr_index)):
                    book[gr_index[x] * k:(gr_index[x] + 1) * k] = 1
            else:
                self.codebook[name].view(-1)[gr_index] = 1
            self.grow_previous[name] = growth_ind
            count[gr_index] = 0

    def prune(self, epoch: int) -> None:
        names = list(self.weights)
        for i, name in enumerate(names):
            item = self.weights[name]
            r = self.ranges[name]
            width = r.pos + abs(r.neg)
            lo, hi = np.min(width), np.max(width)
            b = (width - lo) / (hi - lo) if hi != lo else 0.5 * np.ones_like(width)
            b = b * self.codebook[name].view(-1).cpu().numpy()
            presum = torch.sum(torch.tensor(b).reshape(item.shape[0], -1), dim=1)
            k = int(item.shape[0] * self.rate[name] / 100)
            n_index = torch.argsort(presum)[0:k].cpu().numpy()
            ind = np.array(list(set(n_index) - set(self.history[name])))
            if ind.size:
                self.codebook[name][ind] = 0
            self.history[name] = self.history[name] | set(ind.tolist())
            self._rate(i, names, epoch)
        for name, item in self.weights.items():
            item.data = item.data * self.codebook[name]

    def _rate(self, i: int, names: list[str], epoch: int) -> None:
        name = names[i]
        fc = names[-1]
        fc_rows = torch.sum(self.codebook[fc].view(self.codebook[fc].shape[0], -1), dim=1)
        fc_pruned = int((fc_rows < 50).sum())
        if name == fc:
            gain = 0.5 * math.exp(-(epoch - 37)) if epoch <= 60 else 0.0005
            self.rate[name] += gain * (self.codebook[fc].shape[0] - fc_pruned) / 10
            return
        code = self.codebook[name].view(self.codebook[name].shape[0], -1)
        pruned = int((torch.sum(code, dim=1) < 20).sum())
        nxt = names[i + 1]
        nxt_code = self.codebook[nxt].view(self.codebook[nxt].shape[0], -1)
        nxt_pruned = int((torch.sum(nxt_code, dim=1) < (50 if nxt == fc else 20)).sum())
        self.rate[name] += math.exp(-(epoch - 2 * self.c - 1) / 5) * (
            code.shape[0] - pruned) / max(nxt_code.shape[0] - nxt_pruned, 1)

    def epoch_end(self, epoch: int) -> None:
        """Ranges, clipping (epoch > C), regrowth and pruning (epoch > 2C)."""
        self.update_ranges()
        if epoch > self.c:
            self.clip()
        if epoch > 2 * self.c:
            self.regrow(epoch)
            self.prune(epoch)


def braincog_module_outputs(batch: int, steps: int, rate: float = 0.15,
                            seed: int = 0) -> list[torch.Tensor]:
    """Multi-step ``[T, B, ...]`` outputs of the BrainCog CIFAR net's recorded modules, in
    the reference's order: input, conv0, conv1, pool, conv3, conv4, pool, conv6, conv7,
    flatten, fc_prun. Spikes at ``rate``; pools are max-pools of the spikes before them."""
    gen = torch.Generator().manual_seed(seed)

    def spikes(*shape: int) -> torch.Tensor:
        return (torch.rand(steps, batch, *shape, generator=gen) < rate).float()

    x = torch.rand(steps, batch, 3, 32, 32, generator=gen)
    c0, c1 = spikes(128, 32, 32), spikes(128, 32, 32)
    p2 = F.max_pool2d(c1.flatten(0, 1), 2).unflatten(0, (steps, batch))
    c3, c4 = spikes(256, 16, 16), spikes(256, 16, 16)
    p5 = F.max_pool2d(c4.flatten(0, 1), 2).unflatten(0, (steps, batch))
    c6, c7 = spikes(512, 8, 8), spikes(512, 8, 8)
    flat = c7.flatten(2)
    fc = spikes(512)
    return [x, c0, c1, p2, c3, c4, p5, c6, c7, flat, fc]


# (pre, post) positions of the prunable layers in braincog_module_outputs
BRAINCOG_LAYERS = [(0, 1), (1, 2), (3, 4), (4, 5), (6, 7), (7, 8), (9, 10)]
