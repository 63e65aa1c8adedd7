#!/usr/bin/env python
"""Benchmark fastmix's batch mixing against fastai, timm, torchvision and kornia, and against memory floors (issue 4).

What is timed (every part in ONE worker process, contenders interleaved round-robin in a new random order every
repetition, so that drift and noise from other processes hit every contender alike):

- **mix**: one training-time mixing call per contender on a batch of class-index targets. Every contender gets a
  freshly cloned input batch made OUTSIDE the timed region (the clone is timed separately, for reference), and the
  output is kept alive until the timer has stopped, so that freeing memory is never in the timed region either.
  fastmix and fastai are driven through a real fastai `Learner` and the callback's own `before_batch` event
  (fastmix mixes in place there; fastai's `before_train` has run, so it leaves class-index targets to its loss, like
  fastmix). timm's `Mixup`, torchvision's `v2.MixUp`/`v2.CutMix` and kornia's `RandomMixUpV2`/`RandomCutMixV2` are
  called as their docs show, and also produce their mixed (one-hot, 10-class) targets or label parameters.
- **floors**, on the same tensors: `copy` = `out.copy_(x)`; `lerp` = `torch.lerp(x, b, w, out=c)` with per-image
  weights; `box` = one in-place copy of a box of half the image area from another batch into `x`.
- **loss**: forward + backward of plain `F.cross_entropy`, fastmix `mixed_loss` (with `CrossEntropyLossFlat`, K = 2
  and 4, including the one gather of the (B, K) targets that `after_loss` does) and fastai's `MixUp` loss.
- **e2e**: the training phase of one epoch of a tiny CNN on synthetic 32×32 images through `Learner.fit`,
  without a mixer and with each fastai-callback mixer (fastmix, fastai).

Peak extra memory of one call is the highest running total of the bytes torch allocates minus frees during the
call, read from `torch.profiler` (`profile_memory=True`) on CPU and from `torch.cuda.max_memory_allocated` on
CUDA; it counts tensors only (not page-table or allocator overhead), and the largest of 3 calls is reported.

The whole measurement runs twice: in this process with the environment as is, and in a worker subprocess with
glibc's mmap threshold disabled (`MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=4294967295`). With the default glibc
settings every tensor allocation over the mmap threshold (dynamic, at most 32 MB) is a fresh `mmap` whose pages fault
in (zeroed by the kernel) on first touch, so contenders that allocate pay that cost in every call; the second
column shows the same code without it.

Repetitions: 30 timed calls per contender after 3 warm-up calls, where the time limit allows. A contender whose
warm-up median is over `--slow-ms` (100 ms: kornia at 224x224, or anything when the machine is busy) gets 10; and a
shape and thread count stops after 10 rounds once its `--budget` is spent. The tables give `n` for every row.

    python benchmarks/bench_mix.py                 # full run (a few minutes), writes benchmarks/results/bench_cpu.{md,json}
    python benchmarks/bench_mix.py --quick --out /tmp/bench   # CI smoke test: tiny shapes, 3 repetitions, seconds
    python benchmarks/bench_mix.py --proposals --stem bench_cpu_proposals   # also time the proposed optimizations
"""
from __future__ import annotations
import argparse, contextlib, datetime, gc, json, math, os, platform, random, shlex, subprocess, sys, tempfile, time
import warnings
from pathlib import Path

NOMMAP_ENV = {'MALLOC_MMAP_MAX_': '0', 'MALLOC_TRIM_THRESHOLD_': '4294967295'}
VARIANTS = ('default', 'nommap')
N_CLS = 10
TARGET_SHAPE = (64, 3, 224, 224)
QUICK_SHAPE = (8, 3, 32, 32)
ROOT = Path(__file__).resolve().parent.parent

def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--quick', action='store_true', help='tiny shapes, 3 repetitions: a smoke test of a few seconds')
    p.add_argument('--out', default=None, help='output folder (default: benchmarks/results)')
    p.add_argument('--stem', default=None, help='output file stem (default: bench_cpu, bench_cpu_quick with --quick)')
    p.add_argument('--threads', default=None, help='comma-separated torch thread counts (default: 1,2; --quick: 1)')
    p.add_argument('--reps', type=int, default=None, help='timed calls per contender (default 30; --quick: 3)')
    p.add_argument('--warmup', type=int, default=None, help='untimed calls per contender first (default 3; --quick: 1)')
    p.add_argument('--device', default='cpu', help="'cpu' or 'cuda' (the cuda path syncs and reads torch.cuda memory)")
    p.add_argument('--parts', default='mix,loss,e2e', help='comma-separated subset of mix,loss,e2e')
    p.add_argument('--proposals', action='store_true', help='also time the prototyped optimizations (rows "proto ...")')
    p.add_argument('--variants', default=','.join(VARIANTS), help='which of default,nommap to run')
    p.add_argument('--budget', type=float, default=None,
                   help='seconds for the repetitions of one shape and thread count at 64x3x224x224 (a third for the '
                        'small shape); once spent, stop after at least 10 timed calls per contender (default 60)')
    p.add_argument('--slow-ms', type=float, default=100.,
                   help='contenders whose warm-up median is slower than this get 10 timed calls only (default 100)')
    p.add_argument('--strict', action='store_true', help='exit 1 when a target FAILs (the default only reports)')
    p.add_argument('--worker', default=None, help=argparse.SUPPRESS)  # internal: run one variant, write JSON here
    a = p.parse_args(argv)
    a.threads = [int(t) for t in (a.threads or ('1' if a.quick else '1,2')).split(',')]
    a.reps = a.reps or (3 if a.quick else 30)
    a.warmup = a.warmup if a.warmup is not None else (1 if a.quick else 3)
    a.budget = a.budget or (30. if a.quick else 60.)
    a.stem = a.stem or ('bench_cpu_quick' if a.quick else 'bench_cpu')
    a.out = Path(a.out) if a.out else ROOT / 'benchmarks' / 'results'
    a.parts = a.parts.split(',')
    a.variants = a.variants.split(',')
    return a

# ----------------------------------------------------------------------------------------------------------------
# worker: everything below runs inside one measurement process
# ----------------------------------------------------------------------------------------------------------------

def _imports():
    global np, torch, F, nn
    import numpy as np, torch, torch.nn.functional as F
    from torch import nn
    warnings.filterwarnings('ignore')

@contextlib.contextmanager
def _quiet_fd2():
    "Silence the C++ profiler's chatter on stderr"
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, 'w') as dn:
        os.dup2(dn.fileno(), 2)
        try: yield
        finally: os.dup2(saved, 2); os.close(saved)

class Timer:
    def __init__(self, dev): self.cuda = dev.type == 'cuda'
    def sync(self):
        if self.cuda: torch.cuda.synchronize()
    def __call__(self, fn, arg):
        self.sync(); t0 = time.perf_counter_ns()
        out = fn(arg)
        self.sync(); t1 = time.perf_counter_ns()
        return t1 - t0, out

def peak_extra_bytes(fn, arg, dev):
    "Highest running total of bytes allocated minus freed by torch during `fn(arg)`"
    if dev.type == 'cuda':
        torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        out = fn(arg); torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
        del out
        return peak
    from torch.profiler import profile, ProfilerActivity
    with _quiet_fd2():
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            out = fn(arg)
            del out
        evs = [(e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events() if e.name() == '[memory]']
    run = peak = 0
    for _, nb in sorted(evs):
        run += nb; peak = max(peak, run)
    return peak

class C:
    "A contender: `make(x, y)` returns the function timed on a fresh clone of `x`"
    def __init__(self, name, group, kind, make, floor=None):
        self.name,self.group,self.kind,self.make,self.floor = name,group,kind,make,floor

FLOOR_OF = {'MixUp/batch': 'lerp floor', 'MixUp/sample': 'lerp floor', 'CutMix/batch': 'box floor',
            'CutMix/sample': 'copy floor', 'RICAP/batch': 'copy floor', 'RICAP/sample': 'copy floor',
            # issue 15: ResizeMix pastes at most (0.8)² of the image per batch; FMix gathers the partners and blends
            # them in with a 0/1 mask (as CutMix per sample); CutMix with box bounds is CutMix
            'ResizeMix/batch': 'box floor', 'ResizeMix/sample': 'copy floor', 'FMix/batch': 'copy floor',
            'FMix/sample': 'copy floor', 'CutMix minmax/batch': 'box floor', 'CutMix minmax/sample': 'copy floor'}

def _box(h, w, area=.5):
    bh, bw = round(h * math.sqrt(area)), round(w * math.sqrt(area))
    y0, x0 = (h - bh) // 2, (w - bw) // 2
    return slice(y0, y0 + bh), slice(x0, x0 + bw)

def tiny_cnn():
    return nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                         nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
                         nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, N_CLS))

def make_learner(cbs, n_train=16, n_valid=8, hw=8, bs=8, dev=None):
    from fastai.basics import Learner, DataLoaders, CrossEntropyLossFlat
    from fastai.data.load import DataLoader as FDL
    g = torch.Generator().manual_seed(0)
    def ds(n):
        y = torch.randint(0, N_CLS, (n,), generator=g)
        x = torch.randn(n, 3, hw, hw, generator=g) * .5 + y.view(-1, 1, 1, 1) / N_CLS
        return list(zip(x, y))
    dls = DataLoaders(FDL(ds(n_train), bs=bs, shuffle=True, drop_last=True), FDL(ds(n_valid), bs=bs), device=dev)
    return Learner(dls, tiny_cnn(), loss_func=CrossEntropyLossFlat(), cbs=cbs)

def callback_driver(cb, y):
    "Drive `cb` through a real Learner's events: `before_fit`, `before_train` once, then `before_batch` per call"
    learn = make_learner(cb)
    learn.training, learn.epoch, learn.n_epoch, learn.pct_train, learn.train_iter, learn.iter = True, 0, 1, 0., 0, 0
    cb('before_fit'); cb('before_train')
    def fn(x):
        learn.xb, learn.yb = (x,), (y,)
        cb('before_batch')
        out = learn.xb, learn.yb
        learn.xb, learn.yb = (None,), (None,)  # so the batch is freed with `out`, outside the timed region
        return out
    return fn

# -- prototypes of the proposed optimizations (only with --proposals) -------------------------------------------

def proto_classes(loop_threads=1):
    """Subclasses of fastmix's geometry and callbacks with the proposed CPU fast paths (same results, see verify_protos).
    `loop_threads`: run the per-image loops with this many torch threads (None: as set; see the proposals)"""
    from fastmix.geometry import Blend, Paste
    from fastmix.all import MixUp, CutMix, RICAP, mixed_loss
    # per-image element count from which the per-image (Python loop) paths pay off: 3x224x224 = 150528, 3x32x32 = 3072
    MIN_NUMEL = int(os.environ.get('BENCH_PROTO_MIN_NUMEL', 1 << 15))

    # ---- proposed code (geometry.py) --------------------------------------------------------------------------
    def _cycles(perm:list)->list:
        "The cycles of the permutation `perm`, each as `[s, perm[s], perm[perm[s]], ...]`"
        seen, out = bytearray(len(perm)), []
        for s in range(len(perm)):
            if seen[s]: continue
            c, i = [], s
            while not seen[i]: seen[i] = 1; c.append(i); i = perm[i]
            out.append(c)
        return out

    def _per_image(t): return t.device.type == 'cpu' and t.shape[0] > 0 and t[0].numel() >= MIN_NUMEL

    @contextlib.contextmanager
    def _loop_threads():
        "Per-image ops are small: with `loop_threads` set, run them on that many threads (no barrier per image)"
        n = torch.get_num_threads()
        if loop_threads is None or loop_threads >= n: yield; return
        torch.set_num_threads(loop_threads)
        try: yield
        finally: torch.set_num_threads(n)

    class BlendP(Blend):
        def apply(self, t, inplace=False, scratch=None):
            if inplace and self.keep_base and self.idx.shape[0] == 2 and _per_image(t):
                # in place along the cycles of π: `t[i] ← lerp(t[i], t[π(i)], w_i)` reads `t[π(i)]` before it is
                # overwritten; only the first image of a cycle is saved, for the last one. No batch-sized temporary.
                w = self.weights[:, 1].to(t.dtype).tolist()
                with _loop_threads():
                    for c in _cycles(self.idx[1].tolist()):
                        if len(c) == 1: continue  # lerp(a, a, w) == a
                        first = t[c[0]].clone()
                        for i, j in zip(c, c[1:]): t[i].lerp_(t[j], w[i])
                        t[c[-1]].lerp_(first, w[c[-1]])
                return t
            return super().apply(t, inplace, scratch)

    class PasteP(Paste):
        def _per_batch(self, t, inplace, scratch=None):
            K = self.idx.shape[0]
            if self.keep_base and K == 2 and inplace and _per_image(t):  # CutMix: one box, in place along the cycles
                return self._cycle_paste(t, [self.rects[0, 1].tolist()] * t.shape[0])
            if not self.keep_base and t.device.type == 'cpu':
                # RICAP: each tile straight from the sources' crops into the output, no gathered temporary
                src, out = self._src_dst(t, inplace)
                with _loop_threads():  # index_select parallelises per index: one small parallel region per image
                    for k in range(K):
                        y0, y1, x0, x1, sy, sx = self.rects[0, k].tolist()
                        if y1 > y0 and x1 > x0:
                            torch.index_select(src[..., sy:sy+y1-y0, sx:sx+x1-x0], 0, self.idx[k], out=out[..., y0:y1, x0:x1])
                return out
            return super()._per_batch(t, inplace, scratch)

        def _per_sample(self, t, inplace, scratch=None):
            if _per_image(t):
                if self.keep_base and self.idx.shape[0] == 2 and (self.rects[:, 1, 4:] == self.rects[:, 1, [0, 2]]).all():
                    if inplace: return self._cycle_paste(t, self.rects[:, 1].tolist())
                elif not self.keep_base:  # RICAP: one slice copy per (image, tile)
                    (src, out), idx = self._src_dst(t, inplace), self.idx.tolist()
                    with _loop_threads():
                        for b, rb in enumerate(self.rects.tolist()):
                            for k, (y0, y1, x0, x1, sy, sx) in enumerate(rb):
                                if y1 > y0 and x1 > x0: out[b, ..., y0:y1, x0:x1] = src[idx[k][b], ..., sy:sy+y1-y0, sx:sx+x1-x0]
                    return out
            return super()._per_sample(t, inplace, scratch)

        scratch = None  # a dict: keep one private buffer per (shape, dtype, device) and paste in place from a copy
        def _src_dst(self, t, inplace):
            "(sources, output): `(t, new tensor)`, or with a scratch buffer in place `(copy of t in the scratch, t)`"
            if self.scratch is None or not inplace: return t, torch.empty_like(t)
            k = (tuple(t.shape), t.dtype, t.device)
            buf = self.scratch.get(k)
            if buf is None: self.scratch.clear(); buf = self.scratch[k] = torch.empty_like(t)
            return buf.copy_(t), t

        def _cycle_paste(self, t, rects):
            "`t[i][box_i] ← t[π(i)][source box_i]` in place, in cycle order, so every source is read before it is overwritten"
            def views(i):
                y0, y1, x0, x1, sy, sx = rects[i]
                return (..., slice(y0, y1), slice(x0, x1)), (..., slice(sy, sy + y1 - y0), slice(sx, sx + x1 - x0))
            with _loop_threads():
                for c in _cycles(self.idx[1].tolist()):
                    if len(c) == 1: continue  # an image pasted onto itself
                    last_dst, last_src = views(c[-1])
                    first = t[c[0]][last_src].clone()  # what the last image of the cycle reads, before it is overwritten
                    for i, j in zip(c, c[1:]):
                        d, s = views(i)
                        t[i][d] = t[j][s]
                    t[c[-1]][last_dst] = first
            return t

    # ---- proposed code (core.py) ------------------------------------------------------------------------------
    def _plain_ce(lf):
        "The `nn.CrossEntropyLoss` in `lf` if it is plain (no class weights, no smoothing), else None"
        f = getattr(lf, 'func', lf)
        return f if isinstance(f, nn.CrossEntropyLoss) and f.weight is None and f.label_smoothing == 0 else None

    def mixed_ce(lf, pred, Y, weights):
        "`mixed_loss` for a plain cross-entropy `lf` and (B, K) class targets `Y`: one cross-entropy with soft targets"
        ii = _plain_ce(lf).ignore_index  # an ignored target adds nothing to its sample's loss, as in `lf`
        soft = torch.zeros_like(pred).scatter_add_(1, Y.clamp(min=0), weights.to(pred.dtype) * (Y != ii))
        return F.cross_entropy(pred, soft, reduction=getattr(lf, 'reduction', 'mean'))

    def mixed_loss_p(lf, pred, ybs, weights):
        "`mixed_loss` with the fast path"
        if _plain_ce(lf) is not None and pred.ndim == 2 and all(len(yb) == 1 and isinstance(yb[0], torch.Tensor)
                                                                and yb[0].shape == pred.shape[:1] for yb in ybs):
            return mixed_ce(lf, pred, torch.stack([yb[0] for yb in ybs], 1), weights)
        return mixed_loss(lf, pred, ybs, weights)

    # ---- the callbacks with the proposed geometry and loss ---------------------------------------------------
    def with_geom(cls, geom_cls):
        class P(cls):
            def draw(self, x, on):
                m = super().draw(x, on)
                g = m.geom
                m.geom = BlendP(g.idx, g.weights, g.keep_base) if geom_cls is BlendP else PasteP(g.idx, g.rects, g.keep_base)
                return m
            def after_loss(self):
                mix = self.mix
                if mix is None or not any(mix.in_loss): return
                lf, y = self.learn.loss_func, self.yb[0]
                if len(self.yb) == 1 and _plain_ce(lf) is not None and self.pred.ndim == 2 and y.ndim == 1:
                    self.learn.loss_grad = mixed_ce(lf, self.pred, y[mix.idx].T, mix.weights)  # one gather of the K targets
                else:
                    ybs = [tuple(mix.sources(y, k) if l else y for l, y in zip(mix.in_loss, self.yb)) for k in range(mix.K)]
                    self.learn.loss_grad = mixed_loss_p(lf, self.pred, ybs, mix.weights)
                self.learn.loss = self.learn.loss_grad.clone()
        P.__name__ = cls.__name__ + 'P'
        return P
    def ricap_scratch():
        class RICAPS(with_geom(RICAP, PasteP)):
            def __init__(self, *args, **kw): super().__init__(*args, **kw); self._scratch = {}
            def draw(self, x, on):
                m = super().draw(x, on)
                m.geom.scratch = self._scratch
                return m
        return RICAPS
    return dict(MixUp=with_geom(MixUp, BlendP), CutMix=with_geom(CutMix, PasteP), RICAP=with_geom(RICAP, PasteP),
                RICAPS=ricap_scratch(), mixed_loss=mixed_loss_p, mixed_ce=mixed_ce, MIN_NUMEL=MIN_NUMEL)

def verify_protos(P, shape, dev):
    "The prototypes give bit-identical batches (and the same loss and gradient to 1e-6) as fastmix on the same draws"
    from fastmix.all import MixUp, CutMix, RICAP, mixed_loss
    from fastai.basics import CrossEntropyLossFlat
    bad = []
    g = torch.Generator().manual_seed(0)
    for shp in (shape, (shape[0], *shape[2:])):  # images, and (B, H, W) masks for the non-image paths
        x = torch.randn(*shp, generator=g).to(dev)
        y = torch.randint(0, N_CLS, (shape[0],), generator=g).to(dev)
        for name, cls in (('MixUp', MixUp), ('CutMix', CutMix), ('RICAP', RICAP), ('RICAPS', RICAP)):
            for mode in ('batch', 'sample'):
                for p in (1., .5):
                    for seed in range(4):
                        for inplace in (True, False):
                            c1, c2 = cls(mode=mode, seed=seed, p=p), P[name](mode=mode, seed=seed, p=p)
                            if len(shp) == 3: c1.image_only = c2.image_only = False
                            try:
                                m1, (o1,), _ = c1.mix_batch((x.clone(),), (y,), inplace=inplace)
                                m2, (o2,), _ = c2.mix_batch((x.clone(),), (y,), inplace=inplace)
                            except (ValueError, TypeError) as e:  # e.g. masks are not images for CutMix: same error
                                continue
                            if not torch.equal(o1, o2): bad.append(f'{name}/{mode}/p={p}/seed{seed}/{tuple(shp)}/inplace={inplace}')
    for bs, ncls in ((shape[0], N_CLS), (64, 1000)):
        pred = torch.randn(bs, ncls, generator=g).to(dev)
        y = torch.randint(0, ncls, (bs,), generator=g).to(dev)
        y[::7] = -100  # ignored targets
        for K in (2, 4):
            idx = torch.stack([torch.randperm(bs, generator=g) for _ in range(K)]).to(dev)
            w = torch.rand(bs, K, generator=g).to(dev); w /= w.sum(1, keepdim=True)
            for red in ('mean', 'sum', 'none'):
                lf = CrossEntropyLossFlat(reduction=red)
                p1, p2 = pred.clone().requires_grad_(), pred.clone().requires_grad_()
                ref = mixed_loss(lf, p1, [(y[idx[k]],) for k in range(K)], w)
                got = P['mixed_loss'](lf, p2, [(y[idx[k]],) for k in range(K)], w)
                p3 = pred.clone().requires_grad_()
                got3 = P['mixed_ce'](lf, p3, y[idx].T, w)
                ref.sum().backward(); got.sum().backward(); got3.sum().backward()
                if not (torch.allclose(ref, got, atol=1e-5) and torch.allclose(p1.grad, p2.grad, atol=1e-6)
                        and torch.allclose(ref, got3, atol=1e-5) and torch.allclose(p1.grad, p3.grad, atol=1e-6)):
                    bad.append(f'mixed_loss K={K} {red} ({bs}x{ncls})')
    return bad

# -- the contenders -------------------------------------------------------------------------------------------

def mix_contenders(proposals):
    import fastmix.all as fm
    import fastai.callback.mixup as fa
    from torchvision.transforms import v2
    try: from timm.data import Mixup as TimmMixup
    except ImportError: TimmMixup = None  # the `bench` extra: pip install -e '.[bench]'
    try: import kornia.augmentation as KA
    except ImportError: KA = None
    P = proto_classes() if proposals else None
    cs = []
    def floor(name, make): cs.append(C(name, 'floor', 'floor', make))
    def copy_floor(x, y):
        out = torch.empty_like(x)
        return lambda xin: out.copy_(xin)
    def lerp_floor(x, y):
        b, c = torch.rand_like(x), torch.empty_like(x)
        w = torch.rand(x.shape[0], 1, 1, 1, device=x.device)
        return lambda xin: torch.lerp(xin, b, w, out=c)
    def box_floor(x, y):
        b, (sy, sx) = torch.rand_like(x), _box(*x.shape[-2:])
        def fn(xin): xin[..., sy, sx] = b[..., sy, sx]; return xin
        return fn
    floor('copy floor', copy_floor); floor('lerp floor', lerp_floor); floor('box floor', box_floor)
    def add(name, group, kind, make): cs.append(C(name, group, kind, make, FLOOR_OF[group]))
    # fastmix: the callback's training path, in place
    for meth, cls, kw in (('MixUp', fm.MixUp, dict(alpha=.4)), ('CutMix', fm.CutMix, dict(alpha=1.)),
                          ('RICAP', fm.RICAP, dict(beta=.3))):
        for mode in ('batch', 'sample'):
            add(f'fastmix {meth}({mode})', f'{meth}/{mode}', 'fastmix',
                lambda x, y, cls=cls, kw=kw, mode=mode: callback_driver(cls(mode=mode, seed=0, **kw), y))
            if P is not None:
                add(f'proto {meth}({mode})', f'{meth}/{mode}', 'proto',
                    lambda x, y, meth=meth, kw=kw, mode=mode: callback_driver(P[meth](mode=mode, seed=0, **kw), y))
                if meth == 'RICAP':
                    add(f'proto RICAP({mode}) + scratch', f'{meth}/{mode}', 'proto',
                        lambda x, y, kw=kw, mode=mode: callback_driver(P['RICAPS'](mode=mode, seed=0, **kw), y))
    # issue 15: ResizeMix, FMix and CutMix with box bounds (timm's `cutmix_minmax`), per batch and per image
    for meth, cls, kw in (('ResizeMix', getattr(fm, 'ResizeMix', None), {}), ('FMix', getattr(fm, 'FMix', None), {}),
                          ('CutMix minmax', fm.CutMix, dict(minmax=(.2, .8)))):
        for mode in (('batch', 'sample') if cls is not None else ()):
            add(f'fastmix {meth}({mode})', f'{meth}/{mode}', 'fastmix',
                lambda x, y, cls=cls, kw=kw, mode=mode: callback_driver(cls(mode=mode, seed=0, **kw), y))
    for mode, grp in ((('batch', 'batch'), ('elem', 'sample')) if TimmMixup is not None else ()):
        def make(x, y, mode=mode):
            m = TimmMixup(mixup_alpha=0., cutmix_alpha=1., cutmix_minmax=(.2, .8), prob=1., mode=mode,
                          label_smoothing=0., num_classes=N_CLS)
            return lambda xin: m(xin, y)
        add(f'timm Mixup({mode}, cutmix_minmax=(0.2, 0.8))', f'CutMix minmax/{grp}', 'peer', make)
    # fastai 2.8: MixUp draws one λ per image (per-sample); CutMix one box per batch
    add('fastai MixUp', 'MixUp/sample', 'peer', lambda x, y: callback_driver(fa.MixUp(.4), y))
    add('fastai CutMix', 'CutMix/batch', 'peer', lambda x, y: callback_driver(fa.CutMix(1.), y))
    # timm: mixup-only and cutmix-only configurations, per batch and per element
    for mode, grp in ((('batch', 'batch'), ('elem', 'sample')) if TimmMixup is not None else ()):
        for meth, kw in (('MixUp', dict(mixup_alpha=.4, cutmix_alpha=0.)), ('CutMix', dict(mixup_alpha=0., cutmix_alpha=1.))):
            def make(x, y, kw=kw, mode=mode):
                m = TimmMixup(**kw, prob=1., mode=mode, label_smoothing=0., num_classes=N_CLS)
                return lambda xin: m(xin, y)
            add(f'timm Mixup({mode}, {meth.lower()} only)', f'{meth}/{grp}', 'peer', make)
    # torchvision: one λ per batch
    for meth, cls, a in (('MixUp', v2.MixUp, .4), ('CutMix', v2.CutMix, 1.)):
        def make(x, y, cls=cls, a=a):
            t = cls(alpha=a, num_classes=N_CLS)
            return lambda xin: t(xin, y)
        add(f'torchvision v2.{meth}', f'{meth}/batch', 'peer', make)
    # kornia: same_on_batch=True is one draw per batch, False one per image
    for same, grp in (((True, 'batch'), (False, 'sample')) if KA is not None else ()):
        def mk_mix(x, y, same=same):
            t = KA.RandomMixUpV2(p=1., same_on_batch=same, data_keys=['input', 'class'])
            return lambda xin: t(xin, y)
        def mk_cut(x, y, same=same):
            t = KA.RandomCutMixV2(p=1., beta=1., same_on_batch=same, use_correct_lambda=True, data_keys=['input', 'class'])
            return lambda xin: t(xin, y)
        add(f'kornia RandomMixUpV2(same_on_batch={same})', f'MixUp/{grp}', 'peer', mk_mix)
        add(f'kornia RandomCutMixV2(same_on_batch={same})', f'CutMix/{grp}', 'peer', mk_cut)
    return cs

def loss_contenders(proposals):
    import fastmix.all as fm
    import fastai.callback.mixup as fa
    from fastai.basics import CrossEntropyLossFlat
    from types import SimpleNamespace
    P = proto_classes() if proposals else None
    cs = []
    def plain(pred, y, idx, w): return lambda _: F.cross_entropy(pred, y).backward()
    cs.append(C('F.cross_entropy', 'loss', 'floor', plain))
    def flat(pred, y, idx, w):
        lf = CrossEntropyLossFlat()
        return lambda _: lf(pred, y).backward()
    cs.append(C('CrossEntropyLossFlat (unmixed)', 'loss', 'info', flat, 'F.cross_entropy'))
    for K in (2, 4):
        def fmx(pred, y, idx, w, K=K):
            lf, ik, wk = CrossEntropyLossFlat(), idx[:K], w[K]
            def fn(_): fm.mixed_loss(lf, pred, y[ik.T], wk).backward()  # what `after_loss` does: one gather of the K targets
            return fn
        cs.append(C(f'fastmix mixed_loss K={K}', f'loss K={K}', 'fastmix', fmx, 'F.cross_entropy'))
        if P is not None:
            def proto(pred, y, idx, w, K=K):
                lf, ik, wk = CrossEntropyLossFlat(), idx[:K], w[K]
                return lambda _: P['mixed_ce'](lf, pred, y[ik].T, wk).backward()  # what the proposed `after_loss` does
            cs.append(C(f'proto mixed_loss K={K}', f'loss K={K}', 'proto', proto, 'F.cross_entropy'))
    def fai(pred, y, idx, w):
        cb = fa.MixUp(.4)
        cb.learn = SimpleNamespace(training=True)
        cb.old_lf, cb.lam, cb.yb1 = CrossEntropyLossFlat(), w[2][:, 0].clone(), (y[idx[1]],)
        return lambda _: cb.lf(pred, y).backward()
    cs.append(C('fastai MixUp loss (K=2)', 'loss K=2', 'peer', fai, 'F.cross_entropy'))
    return cs

def run_interleaved(contenders, make_args, arg_fn, reps, warmup, timer, after=None, budget_s=None, min_reps=10,
                    slow_ms=None):
    """Round-robin: every repetition calls every contender once, in a new random order; returns `fns, {name: [ns]}`.
    After `min_reps` timed repetitions, stop when `budget_s` is spent; a contender whose warm-up median is over
    `slow_ms` stops after `min_reps` timed calls (it is far slower than the others: more calls would not change a
    verdict, and would not fit the time limit on a small machine)."""
    fns = {c.name: c.make(*make_args) for c in contenders}
    times = {c.name: [] for c in contenders}
    warm = {c.name: [] for c in contenders}
    order = list(fns)
    rng = random.Random(0)
    cap = {}
    t0 = time.time()
    gc.collect(); gc.disable()
    try:
        for r in range(warmup + reps):
            if r == warmup and slow_ms is not None:
                cap = {n: min_reps for n, w in warm.items() if w and sorted(w)[len(w) // 2] / 1e6 > slow_ms}
            if r >= warmup + min_reps and budget_s is not None and time.time() - t0 > budget_s: break
            rng.shuffle(order)
            for n in order:
                if n in cap and len(times[n]) >= cap[n]: continue
                a = arg_fn()
                dt, out = timer(fns[n], a)
                if after is not None: after(n)
                del out, a  # freed outside the timed region
                (times if r >= warmup else warm)[n].append(dt)
    finally: gc.enable(); gc.collect()
    return fns, times

def worker(a):
    _imports()
    dev = torch.device(a.device)
    torch.manual_seed(0); np.random.seed(0); random.seed(0)
    timer, rows = Timer(dev), []
    shapes = [QUICK_SHAPE] if a.quick else [(128, 3, 32, 32), TARGET_SHAPE]
    loss_sizes = [(16, N_CLS)] if a.quick else [(128, N_CLS), (64, 1000)]
    protos_ok = None
    if a.proposals: protos_ok = verify_protos(proto_classes(), shapes[-1], dev)
    def row(part, shape, thr, c, ts, peak=None):
        rows.append(dict(part=part, shape=list(shape), threads=thr, name=c.name, group=c.group, kind=c.kind,
                         floor=c.floor, times_ns=ts, peak_bytes=peak))
    t_start = time.time()
    if 'mix' in a.parts:
        cs = mix_contenders(a.proposals)
        clone_c = C('input clone (outside the timed region)', 'info', 'info', None)
        for shape in shapes:
            g = torch.Generator().manual_seed(0)
            base = torch.rand(*shape, generator=g).to(dev)
            y = torch.randint(0, N_CLS, (shape[0],), generator=g).to(dev)
            for i, thr in enumerate(a.threads):
                torch.set_num_threads(thr)
                clone_ts = []
                def fresh():
                    dt, x = timer(torch.clone, base); clone_ts.append(dt); return x
                big = math.prod(shape) >= math.prod(TARGET_SHAPE) // 2
                fns, times = run_interleaved(cs, (base, y), fresh, a.reps, a.warmup, timer,
                                             budget_s=a.budget if big else a.budget / 3, min_reps=min(10, a.reps),
                                             slow_ms=a.slow_ms)
                print(f'[{a.variant}] mix {tuple(shape)} threads={thr}: {len(times[cs[0].name])} rounds '
                      f'({time.time() - t_start:.0f}s)', flush=True)
                peaks = {}
                if i == 0:  # allocation is the same at any thread count
                    for c in cs: peaks[c.name] = max(peak_extra_bytes(fns[c.name], base.clone(), dev) for _ in range(1 if a.quick else 3))
                for c in cs: row('mix', shape, thr, c, times[c.name], peaks.get(c.name))
                row('mix', shape, thr, clone_c, clone_ts)
                del fns
                print(f'[{a.variant}] mix {tuple(shape)} threads={thr} done ({time.time() - t_start:.0f}s)', flush=True)
    if 'loss' in a.parts:
        cs = loss_contenders(a.proposals)
        for bs, ncls in loss_sizes:
            g = torch.Generator().manual_seed(1)
            pred = torch.randn(bs, ncls, generator=g).to(dev).requires_grad_()
            y = torch.randint(0, ncls, (bs,), generator=g).to(dev)
            idx = torch.stack([torch.randperm(bs, generator=g) for _ in range(4)]).to(dev)
            w = {K: (lambda r: r / r.sum(1, keepdim=True))(torch.rand(bs, K, generator=g)).to(dev) for K in (2, 4)}
            for thr in a.threads:
                torch.set_num_threads(thr)
                def clear(_=None): pred.grad = None
                _, times = run_interleaved(cs, (pred, y, idx, w), lambda: None, a.reps if a.quick else max(100, a.reps),
                                           a.warmup, timer, after=clear, budget_s=a.budget / 4, min_reps=min(30, a.reps))
                for c in cs: row('loss', (bs, ncls), thr, c, times[c.name])
                print(f'[{a.variant}] loss {(bs, ncls)} threads={thr} done ({time.time() - t_start:.0f}s)', flush=True)
    if 'e2e' in a.parts:
        run_e2e(a, dev, row, t_start)
    return dict(variant=a.variant, env={k: os.environ.get(k) for k in NOMMAP_ENV}, rows=rows,
                protos_verified=protos_ok, seconds=time.time() - t_start)

def run_e2e(a, dev, row, t_start):
    import fastmix.all as fm
    import fastai.callback.mixup as fa
    from fastai.basics import Callback
    P = proto_classes() if a.proposals else None
    n_train, bs = (64, 32) if a.quick else (256, 64)
    reps = 1 if a.quick else 5
    class EpochTimer(Callback):
        order = -50
        def before_train(self): self.t0 = time.perf_counter_ns()
        def after_train(self): self.dt = time.perf_counter_ns() - self.t0
    cands = [C('no mixing', 'e2e', 'floor', lambda: None)]
    for meth, cls in (('MixUp', fm.MixUp), ('CutMix', fm.CutMix), ('RICAP', fm.RICAP)):
        for mode in ('batch', 'sample'):
            cands.append(C(f'fastmix {meth}({mode})', f'e2e {meth}/{mode}', 'fastmix',
                           lambda cls=cls, mode=mode: cls(mode=mode, seed=0), 'no mixing'))
            if P is not None:
                cands.append(C(f'proto {meth}({mode})', f'e2e {meth}/{mode}', 'proto',
                               lambda meth=meth, mode=mode: P[meth](mode=mode, seed=0), 'no mixing'))
    cands.append(C('fastai MixUp', 'e2e MixUp/sample', 'peer', lambda: fa.MixUp(.4), 'no mixing'))
    cands.append(C('fastai CutMix', 'e2e CutMix/batch', 'peer', lambda: fa.CutMix(1.), 'no mixing'))
    for thr in a.threads:
        torch.set_num_threads(thr)
        learners = {}
        for c in cands:
            torch.manual_seed(0)
            cb, tm = c.make(), EpochTimer()
            learn = make_learner([tm] + ([cb] if cb is not None else []), n_train=n_train, n_valid=bs, hw=32, bs=bs, dev=dev)
            learners[c.name] = (learn, tm)
        times = {c.name: [] for c in cands}
        rng = random.Random(0)
        order = list(learners)
        t0 = time.time()
        for r in range(1 + reps):  # one untimed warm-up epoch each
            if r > 3 and time.time() - t0 > a.budget / 4: break  # at least 3 timed epochs each
            rng.shuffle(order)
            for n in order:
                learn, tm = learners[n]
                with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)
                if r: times[n].append(tm.dt)
        for c in cands: row('e2e', (n_train, 3, 32, 32), thr, c, times[c.name])
        print(f'[{a.variant}] e2e threads={thr} done ({time.time() - t_start:.0f}s)', flush=True)

# ----------------------------------------------------------------------------------------------------------------
# parent: run the variants, merge, print and write the table
# ----------------------------------------------------------------------------------------------------------------

def _version(mod):
    try: return __import__(mod).__version__
    except ImportError: return 'not installed (skipped)'

def machine():
    import torch, fastai, torchvision, numpy
    cpu = 'unknown'
    try:
        for l in open('/proc/cpuinfo'):
            if l.startswith('model name'): cpu = l.split(':', 1)[1].strip(); break
    except OSError: pass
    try: load = open('/proc/loadavg').read().split()[:3]
    except OSError: load = None
    import fastmix
    try:
        rev = subprocess.run(['git', 'describe', '--always', '--dirty'], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    except OSError: rev = ''
    d = dict(cpu=cpu, logical_cpus=os.cpu_count(),
             python=platform.python_version(), platform=platform.platform(), libc='-'.join(platform.libc_ver()),
             torch=torch.__version__, fastai=fastai.__version__, fastmix=fastmix.__version__, timm=_version('timm'),
             torchvision=torchvision.__version__, kornia=_version('kornia'), numpy=numpy.__version__,
             git=rev or 'unknown', loadavg_at_start=load, date=datetime.datetime.now().isoformat(timespec='seconds'))
    if torch.cuda.is_available(): d['gpu'] = torch.cuda.get_device_name()
    return d

def stats(ts):
    import numpy as np
    if not ts: return None
    a = np.asarray(ts, dtype=np.float64) / 1e6
    q = np.percentile(a, [10, 25, 50, 75, 90])
    return dict(n=len(a), median=q[2], p10=q[0], p25=q[1], p75=q[3], p90=q[4], min=a.min(), max=a.max())

def key(r): return (r['part'], tuple(r['shape']), r['threads'], r['name'])

def merge(results):
    "One record per (part, shape, threads, contender) with the stats of each variant and the ratios"
    recs, order = {}, []
    for res in results:
        for r in res['rows']:
            k = key(r)
            if k not in recs:
                recs[k] = {kk: r[kk] for kk in ('part', 'shape', 'threads', 'name', 'group', 'kind', 'floor')}
                recs[k]['peak_bytes'] = None; order.append(k)
            if r['peak_bytes'] is not None: recs[k]['peak_bytes'] = r['peak_bytes']
            recs[k][res['variant']] = stats(r['times_ns'])
    # ratio to the relevant floor and to fastmix (same part, shape, threads, group)
    for k in order:
        rec = recs[k]
        for v in VARIANTS:
            s = rec.get(v)
            if not s: continue
            fl = recs.get((rec['part'], tuple(rec['shape']), rec['threads'], rec['floor'])) if rec['floor'] else None
            s['x_floor'] = s['median'] / fl[v]['median'] if fl and fl.get(v) else None
            ref = next((recs[j] for j in order if recs[j]['kind'] == 'fastmix' and j[:3] == k[:3]
                        and recs[j]['group'] == rec['group']), None)
            s['x_fastmix'] = s['median'] / ref[v]['median'] if ref and ref.get(v) and rec['kind'] != 'floor' else None
    return [recs[k] for k in order]

GROUP_ORDER = ['floor', 'info', 'MixUp/batch', 'MixUp/sample', 'CutMix/batch', 'CutMix/sample', 'RICAP/batch',
               'RICAP/sample', 'ResizeMix/batch', 'ResizeMix/sample', 'FMix/batch', 'FMix/sample', 'CutMix minmax/batch',
               'CutMix minmax/sample', 'loss', 'loss K=2', 'loss K=4']

def sort_key(rec):
    g = rec['group']
    gi = GROUP_ORDER.index(g) if g in GROUP_ORDER else 100 + (0 if g == 'e2e' else 1)
    ki = {'floor': 0, 'info': 1, 'fastmix': 2, 'proto': 3, 'peer': 4}[rec['kind']]
    return (('mix', 'loss', 'e2e').index(rec['part']), math.prod(rec['shape']), rec['threads'], gi, ki)

def fmt(v, nd=3):
    if v is None: return '–'
    if v == 0: return '0'
    return f'{v:.{max(0, nd - 1 - int(math.floor(math.log10(abs(v)))))}f}' if abs(v) < 10 ** nd else f'{v:.0f}'

def table(recs, variants):
    hdr = ['part', 'shape', 'thr', 'group', 'contender']
    for v in variants: hdr += [f'{v}: median ms', 'p10–p90', 'n', '× floor', '× fastmix']
    hdr += ['peak extra MB']
    lines = ['| ' + ' | '.join(hdr) + ' |', '|' + '|'.join(['---'] * 5 + ['--:'] * (5 * len(variants) + 1)) + '|']
    for r in sorted(recs, key=sort_key):
        cells = [r['part'], '×'.join(map(str, r['shape'])), str(r['threads']), r['group'], r['name']]
        for v in variants:
            s = r.get(v)
            if not s: cells += ['–'] * 5; continue
            cells += [fmt(s['median']), f"{fmt(s['p10'])}–{fmt(s['p90'])}", str(s['n']),
                      'floor' if r['kind'] == 'floor' else fmt(s['x_floor']), fmt(s['x_fastmix'])]
        pb = r['peak_bytes']
        cells.append('–' if pb is None else fmt(pb / 2**20))
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)

def targets(recs, variants, target_shape, loss_size):
    "The issue's targets, checked at the target shape for every thread count and variant"
    out = []
    by = {key(r): r for r in recs}
    threads = sorted({r['threads'] for r in recs})
    def med(part, shape, thr, name, v):
        r = by.get((part, tuple(shape), thr, name))
        return r[v]['median'] if r and r.get(v) else None
    checks = [('MixUp(batch) ≤ 1.5× lerp floor', 'fastmix MixUp(batch)', 'lerp floor', 1.5),
              ('MixUp(sample) ≤ 1.5× lerp floor', 'fastmix MixUp(sample)', 'lerp floor', 1.5),
              ('CutMix(batch) ≤ 2.5× box floor', 'fastmix CutMix(batch)', 'box floor', 2.5),
              ('RICAP(batch) ≤ 2.5× copy floor', 'fastmix RICAP(batch)', 'copy floor', 2.5),
              ('CutMix(sample) ≤ 3× copy floor', 'fastmix CutMix(sample)', 'copy floor', 3.),
              ('RICAP(sample) ≤ 3× copy floor', 'fastmix RICAP(sample)', 'copy floor', 3.)]
    for thr in threads:
        for v in variants:
            cell = f'{thr} thread{"s" if thr > 1 else ""}, {v}'
            for label, name, fl, lim in checks:
                a, b = med('mix', target_shape, thr, name, v), med('mix', target_shape, thr, fl, v)
                if a is None or b is None: continue
                out.append(dict(target=label, where=cell, value=a / b, limit=lim, ok=a / b <= lim))
            for r in recs:  # every fastmix method (and prototype) faster than every peer doing the same thing
                if r['part'] != 'mix' or tuple(r['shape']) != tuple(target_shape) or r['threads'] != thr or r['kind'] not in ('fastmix', 'proto'): continue
                for p in recs:
                    if p['kind'] == 'peer' and p['group'] == r['group'] and p['part'] == 'mix' and \
                       tuple(p['shape']) == tuple(target_shape) and p['threads'] == thr and r.get(v) and p.get(v):
                        ratio = r[v]['median'] / p[v]['median']
                        pre = '[proposal] ' if r['kind'] == 'proto' else ''
                        out.append(dict(target=f"{pre}{r['name']} faster than {p['name']}", where=cell, value=ratio,
                                        limit=1., ok=ratio < 1.))
            for K, lim in ((2, 1.3), (4, 1.6)):
                a, b = med('loss', loss_size, thr, f'fastmix mixed_loss K={K}', v), med('loss', loss_size, thr, 'F.cross_entropy', v)
                if a is None or b is None: continue
                out.append(dict(target=f'mixed loss K={K} fwd+bwd ≤ {lim}× plain CE',
                                where=cell, value=a / b, limit=lim, ok=a / b <= lim))
            for r in recs:  # the prototypes against the same targets (informational)
                if r['kind'] != 'proto' or r['part'] not in ('mix', 'loss') or r['threads'] != thr or not r.get(v): continue
                lim = {'MixUp/batch': 1.5, 'MixUp/sample': 1.5, 'CutMix/batch': 2.5, 'RICAP/batch': 2.5,
                       'CutMix/sample': 3., 'RICAP/sample': 3., 'loss K=2': 1.3, 'loss K=4': 1.6}.get(r['group'])
                want = tuple(target_shape) if r['part'] == 'mix' else tuple(loss_size)
                if lim is None or tuple(r['shape']) != want or r[v].get('x_floor') is None: continue
                out.append(dict(target=f"[proposal] {r['name']} ≤ {lim}× {r['floor']}", where=cell,
                                value=r[v]['x_floor'], limit=lim, ok=r[v]['x_floor'] <= lim))
    return out

def main(argv=None):
    a = parse_args(argv)
    if a.worker:
        a.variant = os.environ.get('BENCH_VARIANT', 'default')
        res = worker(a)
        Path(a.worker).write_text(json.dumps(res))
        return 0
    if a.device == 'cuda': a.variants = ['default']  # glibc's malloc does not allocate CUDA memory
    cmd = ' '.join(['python benchmarks/bench_mix.py'] + [shlex.quote(s) for s in (argv if argv is not None else sys.argv[1:])])
    a.out.mkdir(parents=True, exist_ok=True)
    results, t0 = [], time.time()
    with tempfile.TemporaryDirectory() as td:
        for v in a.variants:
            env = {k: os.environ[k] for k in NOMMAP_ENV if k in os.environ}
            if v == 'default' and not env:  # the environment as is: measure in this process
                print('== variant default: environment as is, in this process', flush=True)
                a.variant = v
                results.append(worker(a)); gc.collect()
                continue
            env = dict(os.environ, BENCH_VARIANT=v)
            if v == 'nommap': env.update(NOMMAP_ENV)
            else:  # 'default' asked for while this process runs with the variables set: a clean subprocess
                for k in NOMMAP_ENV: env.pop(k, None)
            f = Path(td) / f'{v}.json'
            args = [sys.executable, str(Path(__file__).resolve()), '--worker', str(f)] + \
                   (argv if argv is not None else sys.argv[1:])
            print(f'== variant {v}: in a subprocess with ' +
                  (' '.join(f'{k}={env[k]}' for k in NOMMAP_ENV if k in env) or 'the mmap variables unset'), flush=True)
            subprocess.run(args, env=env, check=True)
            results.append(json.loads(f.read_text()))
    recs = merge(results)
    target_shape = QUICK_SHAPE if a.quick else TARGET_SHAPE
    loss_size = (64, 1000) if not a.quick else (16, N_CLS)
    checks = sorted(targets(recs, a.variants, target_shape, loss_size), key=lambda c: c['target'].startswith('[proposal]'))
    m = machine()
    m.update(threads=a.threads, device=a.device, reps=a.reps, warmup=a.warmup, wall_seconds=round(time.time() - t0, 1),
             loadavg_at_end=open('/proc/loadavg').read().split()[:3] if os.path.exists('/proc/loadavg') else None)
    tab = table(recs, a.variants)
    lines = [f'# fastmix mixing benchmark ({a.device})', '',
             f'Command: `{cmd}` (from the repository root; wall time {m["wall_seconds"]} s)', '',
             'Machine: ' + ', '.join(f'{k}={v}' for k, v in m.items() if k not in ('wall_seconds',)), '',
             'Columns: median and p10–p90 of the per-call times in ms over the timed calls (after warm-up); '
             '`default` = glibc malloc as is, `nommap` = `MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=4294967295`. '
             '`× floor`: ratio to the group\'s memory floor (mix), to `F.cross_entropy` (loss) or to the epoch '
             'without mixing (e2e); `× fastmix`: ratio to fastmix in the same group. Peak extra MB: torch '
             'allocations during one call (torch.profiler), largest of 3 calls; in-place contenders write into '
             'their input, which is not counted.', '']
    by = {key(r): r for r in recs}
    for v in a.variants:
        c1, c2 = (by.get(('mix', tuple(target_shape), t, 'copy floor')) for t in (1, 2))
        if c1 and c2 and c1.get(v) and c2.get(v):
            lines += [f"Contention check ({v}): the copy floor at {'×'.join(map(str, target_shape))} takes "
                      f"{fmt(c2[v]['median'])} ms with 2 threads and {fmt(c1[v]['median'])} ms with 1 thread"
                      + (' — 2-thread timings are dominated by waiting for the second core (other processes on it)'
                         if c2[v]['median'] > 1.5 * c1[v]['median'] else '') + '.', '']
    if any(r.get('protos_verified') is not None for r in results):
        bad = sorted({b for r in results for b in (r.get('protos_verified') or [])})
        lines += [f'Prototypes verified bit-identical to fastmix on the same draws: {"yes" if not bad else "NO: " + ", ".join(bad)}', '']
    lines += [tab, '', f'## Targets (at {"×".join(map(str, target_shape))}; losses at {loss_size[0]}×{loss_size[1]} logits)', '',
              'Each cell: the measured ratio (of medians) and PASS/FAIL against the limit.', '']
    wheres = list(dict.fromkeys(c['where'] for c in checks))
    lines += ['| target | limit | ' + ' | '.join(wheres) + ' |', '|---|--:|' + '--:|' * len(wheres)]
    for t in dict.fromkeys(c['target'] for c in checks):
        cs = {c['where']: c for c in checks if c['target'] == t}
        lim = next(iter(cs.values()))['limit']
        lines.append(f'| {t} | {lim} | ' + ' | '.join(
            f"{cs[w]['value']:.2f} {'PASS' if cs[w]['ok'] else '**FAIL**'}" if w in cs else '–' for w in wheres) + ' |')
    md = '\n'.join(lines) + '\n'
    (a.out / f'{a.stem}.md').write_text(md)
    (a.out / f'{a.stem}.json').write_text(json.dumps(dict(command=cmd, machine=m, rows=recs, targets=checks,
        variants={r['variant']: dict(env=r['env'], seconds=r['seconds'], protos_verified=r.get('protos_verified'))
                  for r in results}), indent=1, default=float))
    print(md)
    nfail = sum(not c['ok'] for c in checks if not c['target'].startswith('[proposal]'))
    print(f'{len(checks)} checks, {nfail} FAIL (not counting proposals); wrote {a.out / (a.stem + ".md")} and .json')
    return 1 if a.strict and nfail else 0

if __name__ == '__main__': sys.exit(main())
