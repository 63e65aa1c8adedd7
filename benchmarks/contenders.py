"""What `bench_mix.py` times: fastmix (every mixer of `fastmix.mixers.MIXERS`, in both modes; in the mix part those
that mix the input batch), its peers (fastai 2.8,
timm, torchvision v2, kornia) and the memory floors, for the three parts of the benchmark.

A contender `C` is a name, a group (what it is compared with: the same method and mode), a kind (`floor`, `info`,
`fastmix`, `peer`) and `make(*args)`, which builds the function that is timed (outside the timed region).

- **mix** (`mix_contenders`; `make(x, y)`, the timed function gets a fresh clone of `x`): fastmix (and, with a
  baseline, another revision of fastmix: rows `before ...`) and fastai are
  driven through a real fastai `Learner` and the callback's own `before_batch` event (`callback_driver`); timm,
  torchvision and kornia are called as their docs show and also produce their mixed targets. Floors, on the same
  tensors: `copy` = `out.copy_(x)`; `lerp` = `torch.lerp(x, b, w, out=c)` with per-image weights; `box` = one in-place
  copy of a box of half the image area from another batch into `x`.
- **loss** (`loss_contenders`; `make(pred, y, idx, w)`): forward + backward of plain `F.cross_entropy`, fastmix's
  `mixed_loss` (K = 2 and 4, with the one gather of the (B, K) targets that `after_loss` does) and fastai's MixUp loss.
- **e2e** (`e2e_contenders`; `make()` returns the callback or None): the training phase of one epoch through
  `Learner.fit` (`make_learner`), without a mixer and with each fastai-callback mixer.
"""
from __future__ import annotations
import math, time
import torch, torch.nn.functional as F

N_CLS = 10
MODES = ('batch', 'sample')
# The memory floor each fastmix group is measured against (a group missing here: the copy floor)
FLOOR_OF = {'MixUp/batch': 'lerp floor', 'MixUp/sample': 'lerp floor', 'CutMix/batch': 'box floor',
            'CutMix/sample': 'copy floor', 'RICAP/batch': 'copy floor', 'RICAP/sample': 'copy floor',
            # ResizeMix pastes at most 0.8² of the image (one F.interpolate per box size); FMix gathers the partners and
            # blends them in with a 0/1 mask, as CutMix per sample; CutMix with box bounds is CutMix
            'ResizeMix/batch': 'box floor', 'ResizeMix/sample': 'copy floor', 'FMix/batch': 'copy floor',
            'FMix/sample': 'copy floor', 'CutMix minmax/batch': 'box floor', 'CutMix minmax/sample': 'copy floor'}
# Settings of a mixer timed besides its `MIXERS` defaults: label -> (MIXERS name, arguments)
VARIANTS_OF = {'CutMix minmax': ('cutmix', dict(minmax=(.2, .8)))}  # timm's `cutmix_minmax`

class C:
    "A contender: `make(*args)` returns the function that is timed"
    def __init__(self, name, group, kind, make, floor=None):
        self.name,self.group,self.kind,self.make,self.floor = name,group,kind,make,floor

def mixers():
    "(label, `Mixer`) of every fastmix mixer: the label is the class name, as in the tables"
    from fastmix.mixers import MIXERS
    return [(m.cls.__name__, m) for m in MIXERS.values()]

def mixer_groups()->list:
    "The groups of the fastmix mixers, in `MIXERS` order: the order of the tables"
    return [f'{label}/{mode}' for label in [l for l, _ in mixers()] + list(VARIANTS_OF) for mode in MODES]

def _box(h, w, area=.5):
    bh, bw = round(h * math.sqrt(area)), round(w * math.sqrt(area))
    y0, x0 = (h - bh) // 2, (w - bw) // 2
    return slice(y0, y0 + bh), slice(x0, x0 + bw)

def make_learner(cbs, n_train=16, n_valid=8, hw=8, bs=8, dev=None, typed=False):
    "A `Learner` of fastmix's small CNN on synthetic images whose class shifts their mean; `typed`: batches of fastai's `TensorImage`, `TensorCategory` (as `ImageDataLoaders` gives)"
    from fastai.basics import Learner, DataLoaders, CrossEntropyLossFlat
    from fastai.data.load import DataLoader as FDL
    from fastai.torch_core import TensorImage, TensorCategory
    from fastmix.demo import small_cnn
    g = torch.Generator().manual_seed(0)
    def ds(n):
        y = torch.randint(0, N_CLS, (n,), generator=g)
        x = torch.randn(n, 3, hw, hw, generator=g) * .5 + y.view(-1, 1, 1, 1) / N_CLS
        if typed: x, y = TensorImage(x), TensorCategory(y)  # (fastai's collate keeps the items' types)
        return list(zip(x, y))
    dls = DataLoaders(FDL(ds(n_train), bs=bs, shuffle=True, drop_last=True), FDL(ds(n_valid), bs=bs), device=dev)
    return Learner(dls, small_cnn(3, N_CLS), loss_func=CrossEntropyLossFlat(), cbs=cbs)

def callback_driver(cb, y, n_iter:int=1):
    """Drive `cb` through a real Learner's events: `before_fit`, `before_train` once, then `before_batch` per call;
    `n_iter`: the batches of the epoch, as a fit sets it (over 1, fastmix draws mixes ahead, as in a fit)"""
    learn = make_learner(cb)
    learn.training, learn.epoch, learn.n_epoch, learn.pct_train, learn.train_iter, learn.iter = True, 0, 1, 0., 0, 0
    learn.n_iter = n_iter
    cb('before_fit'); cb('before_train')
    def fn(x):
        learn.xb, learn.yb = (x,), (y,)
        cb('before_batch')
        learn.iter = min(learn.iter + 1, n_iter - 1)  # the next batch, as a fit counts them: each mix drawn ahead is for its own batch
        out = learn.xb, learn.yb
        learn.xb, learn.yb = (None,), (None,)  # so the batch is freed with `out`, outside the timed region
        return out
    return fn

def floors()->list:
    "The memory floors of the mix part"
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
    return [C(n, 'floor', 'floor', f) for n, f in (('copy floor', copy_floor), ('lerp floor', lerp_floor), ('box floor', box_floor))]

def _add(cs, name, group, kind, make): cs.append(C(name, group, kind, make, FLOOR_OF.get(group, 'copy floor')))

def fastmix_mix_contenders(baseline=None)->list:
    """Every fastmix mixer that mixes the input batch, in both modes: the callback's training path (in place), through
    `before_batch`; with `baseline` (another fastmix revision), its mixers too, as kind `baseline` (rows `before ...`)"""
    from fastmix.mixers import MIXERS
    cs = []
    runs = [('fastmix', 'fastmix', label, m, {}) for label, m in mixers()]
    runs += [('fastmix', 'fastmix', label, MIXERS[n], kw) for label, (n, kw) in VARIANTS_OF.items()]
    runs += [('before', 'baseline', label, m, {}) for label, m in (baseline_mixers(baseline) if baseline else [])]
    for pre, kind, label, m, kw in runs:
        # ManifoldMixUp mixes hidden activations: timed end to end only
        if getattr(getattr(m, 'cls', m), 'mixes_input', True) is not True: continue
        for mode in MODES:
            _add(cs, f'{pre} {label}({mode})', f'{label}/{mode}', kind,
                 lambda x, y, m=m, mode=mode, kw=kw: callback_driver(m(mode=mode, seed=0, **kw), y))
    return cs

def peer_mix_contenders()->list:
    "fastai 2.8, timm, torchvision v2 and kornia, each in the groups it has a mode for"
    import fastai.callback.mixup as fa
    from torchvision.transforms import v2
    try: from timm.data import Mixup as TimmMixup
    except ImportError: TimmMixup = None  # the `bench` extra: pip install -e '.[bench]'
    try: import kornia.augmentation as KA
    except ImportError: KA = None
    cs = []
    # fastai 2.8: MixUp draws one λ per image (per-sample); CutMix one box per batch
    _add(cs, 'fastai MixUp', 'MixUp/sample', 'peer', lambda x, y: callback_driver(fa.MixUp(.4), y))
    _add(cs, 'fastai CutMix', 'CutMix/batch', 'peer', lambda x, y: callback_driver(fa.CutMix(1.), y))
    # timm: mixup-only and cutmix-only configurations, per batch and per element
    for mode, grp in ((('batch', 'batch'), ('elem', 'sample')) if TimmMixup is not None else ()):
        for meth, kw in (('MixUp', dict(mixup_alpha=.4, cutmix_alpha=0.)), ('CutMix', dict(mixup_alpha=0., cutmix_alpha=1.))):
            def make(x, y, kw=kw, mode=mode):
                m = TimmMixup(**kw, prob=1., mode=mode, label_smoothing=0., num_classes=N_CLS)
                return lambda xin: m(xin, y)
            _add(cs, f'timm Mixup({mode}, {meth.lower()} only)', f'{meth}/{grp}', 'peer', make)
        def make(x, y, mode=mode):  # CutMix with box sides uniform in 0.2–0.8 of H and W
            m = TimmMixup(mixup_alpha=0., cutmix_alpha=1., cutmix_minmax=(.2, .8), prob=1., mode=mode,
                          label_smoothing=0., num_classes=N_CLS)
            return lambda xin: m(xin, y)
        _add(cs, f'timm Mixup({mode}, cutmix_minmax=(0.2, 0.8))', f'CutMix minmax/{grp}', 'peer', make)
    # torchvision: one λ per batch
    for meth, cls, a in (('MixUp', v2.MixUp, .4), ('CutMix', v2.CutMix, 1.)):
        def make(x, y, cls=cls, a=a):
            t = cls(alpha=a, num_classes=N_CLS)
            return lambda xin: t(xin, y)
        _add(cs, f'torchvision v2.{meth}', f'{meth}/batch', 'peer', make)
    # kornia: same_on_batch=True is one draw per batch, False one per image
    for same, grp in (((True, 'batch'), (False, 'sample')) if KA is not None else ()):
        def mk_mix(x, y, same=same):
            t = KA.RandomMixUpV2(p=1., same_on_batch=same, data_keys=['input', 'class'])
            return lambda xin: t(xin, y)
        def mk_cut(x, y, same=same):
            t = KA.RandomCutMixV2(p=1., beta=1., same_on_batch=same, use_correct_lambda=True, data_keys=['input', 'class'])
            return lambda xin: t(xin, y)
        _add(cs, f'kornia RandomMixUpV2(same_on_batch={same})', f'MixUp/{grp}', 'peer', mk_mix)
        _add(cs, f'kornia RandomCutMixV2(same_on_batch={same})', f'CutMix/{grp}', 'peer', mk_cut)
    return cs

def mix_contenders(baseline=None)->list:
    "Floors, fastmix (and `baseline`'s mixers) and the peers: the mix part"
    return floors() + fastmix_mix_contenders(baseline) + peer_mix_contenders()

def loss_contenders()->list:
    "Plain cross-entropy, fastmix's `mixed_loss` for K = 2 and 4, fastai's MixUp loss: forward + backward"
    import fastmix.all as fm
    import fastai.callback.mixup as fa
    from fastai.basics import CrossEntropyLossFlat
    from types import SimpleNamespace
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
    def fai(pred, y, idx, w):
        cb = fa.MixUp(.4)
        cb.learn = SimpleNamespace(training=True)
        cb.old_lf, cb.lam, cb.yb1 = CrossEntropyLossFlat(), w[2][:, 0].clone(), (y[idx[1]],)
        return lambda _: cb.lf(pred, y).backward()
    cs.append(C('fastai MixUp loss (K=2)', 'loss K=2', 'peer', fai, 'F.cross_entropy'))
    return cs

def e2e_contenders(baseline=None)->list:
    "No mixing (twice: two learners), every fastmix mixer in both modes (and `baseline`'s), fastai's MixUp and CutMix: `make()` returns the callback"
    import fastai.callback.mixup as fa
    # a second learner without mixing, the same in every way: what its ratio to the first differs from 1 is the
    # resolution of the e2e rows (memory placement, drift), against which a 3 % target is read
    cs = [C('no mixing', 'e2e', 'floor', lambda: None), C('no mixing, a second learner', 'e2e', 'info', lambda: None, 'no mixing')]
    for pre, kind, ms in [('fastmix', 'fastmix', mixers())] + ([('before', 'baseline', baseline_mixers(baseline))] if baseline else []):
        for label, m in ms:
            for mode in MODES:
                cs.append(C(f'{pre} {label}({mode})', f'e2e {label}/{mode}', kind,
                            lambda m=m, mode=mode: m(mode=mode, seed=0), 'no mixing'))
    cs.append(C('fastai MixUp', 'e2e MixUp/sample', 'peer', lambda: fa.MixUp(.4), 'no mixing'))
    cs.append(C('fastai CutMix', 'e2e CutMix/batch', 'peer', lambda: fa.CutMix(1.), 'no mixing'))
    return cs

# -- the event path (issue 13): host overhead of each callback's `before_batch` inside a real fit --------------------

def bracket_callbacks():
    """Two callbacks around every other callback's `before_batch` (orders −10⁶ and 10⁶): per batch, the wall ns between
    them (`ts`) and this thread's CPU ns (`cpu`, which leaves out the time the process waits for a core)"""
    from fastai.basics import Callback
    class Open(Callback):
        order,run_valid = -10**6,False  # training batches only: the mixers do nothing in validation
        def before_batch(self): self.learn.bracket_t0 = time.perf_counter_ns(), time.thread_time_ns()
    class Close(Callback):
        order,run_valid = 10**6,False
        def __init__(self): self.ts, self.cpu = [], []
        def before_batch(self):
            t, c = time.perf_counter_ns(), time.thread_time_ns()
            self.ts.append(t - self.learn.bracket_t0[0]); self.cpu.append(c - self.learn.bracket_t0[1])
    return Open(), Close()

def noop_callback():
    "A callback whose `before_batch` does nothing: what any callback costs in the bracket"
    from fastai.basics import Callback
    class NoOp(Callback):
        def before_batch(self): pass
    return NoOp()

def baseline_mixers(pkg)->list:
    "(label, `Mixer`) of every mixer of another fastmix revision `pkg` (a package module), for before/after rows"
    if hasattr(pkg, 'mixers'): return [(m.cls.__name__, m) for m in pkg.mixers.MIXERS.values()]
    # revisions before the `MIXERS` registry (issue 13's baseline, 5ad1cf7): the callbacks they had, with their defaults
    # (not CutMixUp: there, per sample, a batch where one of its mixers draws no image fails with 'NoneType' has no 'cuts')
    return [(n, getattr(pkg, n)) for n in ('MixUp', 'CutMix', 'RICAP') if hasattr(pkg, n)]

def event_contenders(baseline=None)->list:
    """The event part: `make()` returns the callback put between the brackets (None: the brackets alone). fastmix's
    mixers in both modes, fastai's MixUp and CutMix, a no-op callback; with `baseline` (another fastmix revision, see
    `runner.baseline_package`), its mixers too, as kind `baseline`. timm's batch `Mixup` is timed apart (called directly)."""
    import fastai.callback.mixup as fa
    from fastai.callback.schedule import SchedLin
    cs = [C('brackets alone', 'event', 'floor', lambda: None), C('no-op callback', 'event', 'floor', noop_callback)]
    for pre, kind, ms in [('fastmix', 'fastmix', mixers())] + ([('before', 'baseline', baseline_mixers(baseline))] if baseline else []):
        for label, m in ms:
            for mode in MODES:
                cs.append(C(f'{pre} {label}({mode})', f'event {label}/{mode}', kind, lambda m=m, mode=mode: m(mode=mode, seed=0), 'no-op callback'))
        # α a schedule, read at each batch's own progress (until 8073727 a fit that read one drew each batch alone)
        if (cut := dict(ms).get('CutMix')) is not None:
            cs.append(C(f'{pre} CutMix(batch), α schedule', 'event CutMix/batch', kind,
                        lambda m=cut: m(mode='batch', seed=0, alpha=SchedLin(.2, 1.)), 'no-op callback'))
    cs.append(C('fastai MixUp', 'event MixUp/sample', 'peer', lambda: fa.MixUp(.4), 'no-op callback'))
    cs.append(C('fastai CutMix', 'event CutMix/batch', 'peer', lambda: fa.CutMix(1.), 'no-op callback'))
    if _timm_mixup() is not None:
        cs.append(C(TIMM_IN_FIT, 'event timm', 'info', timm_callback, 'no-op callback'))
    return cs

TIMM_IN_FIT = 'timm Mixup(batch) in a callback'
TYPED = ', fastai types'  # the suffix of the rows whose batches are fastai's `TensorImage` and `TensorCategory`
TYPED_NAMES = ('no-op callback', 'fastai MixUp', 'fastai CutMix', TIMM_IN_FIT) + tuple(
    f'{pre} {m}(batch)' for pre in ('fastmix', 'before') for m in ('MixUp', 'CutMix', 'RICAP'))

def typed_contenders(cs)->list:
    "The contenders of `cs` timed again on batches of fastai's tensor types (`TYPED_NAMES`: the no-op, the peers, the per-batch MixUp, CutMix, RICAP)"
    return [C(c.name + TYPED, c.group, c.kind, c.make, c.floor and c.floor + TYPED) for c in cs if c.name in TYPED_NAMES]
DIRECT = ' called directly'  # the suffix of the contenders called directly on clones, outside a fit
TIMM_DIRECT = 'timm Mixup(batch)' + DIRECT

def direct_contenders()->list:
    """Called directly on clones of a batch, a call after the other (warm caches, no model step between): timm's batch
    `Mixup`, and each fastmix mixer per batch through its `before_batch` (`callback_driver` in a long epoch: mixes are
    drawn ahead as in a fit, so the median is a call without a draw and the mean carries the draws). `make(y)` returns
    `fn(x)`, or None without timm"""
    cs = [C(TIMM_DIRECT, 'event timm', 'peer', timm_batch_mixup, 'no-op callback')]
    for label, m in mixers():
        if label == 'ManifoldMixUp': continue  # mixes hidden activations in the forward pass: nothing to call here
        cs.append(C(f'fastmix {label}(batch)' + DIRECT, f'event {label}/batch', 'direct',
                    lambda y, m=m: callback_driver(m(mode='batch', seed=0), y, n_iter=10**6), 'no-op callback'))
    return cs

def timm_callback():
    """timm's batch `Mixup` called from a callback's `before_batch` on the fit's own batch: the same bracket and cache
    state as fastmix's events (its soft targets are made, as in its own use, but the fit's loss keeps the class indices)"""
    from fastai.basics import Callback
    m = _timm_mixup()
    class TimmMix(Callback):
        run_valid = False  # a training-time transform, as fastmix's and fastai's callbacks
        def before_batch(self):
            learn = self.learn
            x, _ = m(learn.xb[0], learn.yb[0])
            learn.xb = (x,)
    return TimmMix()

def _timm_mixup():
    "timm's batch `Mixup` (MixUp only, as its docs call it), as the event rows call it; None without timm"
    try: from timm.data import Mixup as TimmMixup
    except ImportError: return None
    return TimmMixup(mixup_alpha=.4, cutmix_alpha=0., prob=1., mode='batch', label_smoothing=0., num_classes=N_CLS)

def timm_batch_mixup(y):
    "timm's batch `Mixup` on the targets `y`: `fn(x)` mixes a batch; None without timm"
    m = _timm_mixup()
    return None if m is None else lambda x: m(x, y)
