"Per-batch host work (issue 13): mixes drawn ahead, the learner's own loss skipped, label-map mixed loss"
import pickle, torch, pytest
from types import SimpleNamespace
from fastai.basics import *
from fastmix.all import *
from fastmix.core import *
import numpy as np
from torch.utils._python_dispatch import TorchDispatchMode
from fastmix.geometry import Scratch
from fastmix.testing import provenance_batch, check_provenance
from helpers import synth_learner

def mixes_of_a_fit(make, epochs=2, **kw):
    "The (idx, weights) of every training batch of a fit"
    cb, seen = make(), []
    for k, v in kw.items(): setattr(cb, k, v)
    class Spy(Callback):
        order = 1  # after the mixer
        def before_batch(self):
            if self.training: seen.append(None if cb.mix is None else (cb.mix.idx.clone(), cb.mix.weights.clone()))
    synth_learner(cbs=[cb, Spy()]).fit(epochs, 1e-3)
    return seen

@pytest.mark.parametrize('make', [lambda: MixUp(seed=3), lambda: CutMix(mode='sample', p=.5, seed=3), lambda: RICAP(mode='sample', seed=3),
                                  lambda: CutMixUp(p=.7, seed=3)])
def test_mixes_drawn_ahead_repeat_with_the_seed(make):
    "A window of mixes is drawn at once: a seeded fit repeats it exactly, and each batch gets a mix of its own"
    a, b = mixes_of_a_fit(make), mixes_of_a_fit(make)
    assert len(a) == len(b) == 12
    for u, v in zip(a, b):
        assert (u is None) == (v is None)
        if u is not None: assert torch.equal(u[0], v[0]) and torch.equal(u[1], v[1])
    assert len({None if u is None else u[0].tolist().__repr__() for u in a}) > 2  # and they do differ batch to batch

# a small batch (its gathers planned together), a larger one, and volumes for the mixers that cut them
WINDOW_CASES = [(cls, mode, shape) for cls in (MixUp, CutMix, RICAP, FMix, ResizeMix, CutMixUp) for mode in ('batch', 'sample')
                for shape in ((4, 3, 8, 8), (5, 2, 60, 60), (3, 2, 6, 5, 4)) if len(shape) == 4 or cls in (CutMix, RICAP)]
@pytest.mark.parametrize('cls,mode,shape', WINDOW_CASES)
def test_every_mix_of_a_window_is_exact(cls, mode, shape):
    "Mixes drawn together (small batches: their gathers planned in one computation) each move their own pixels by their own weights"
    x = provenance_batch(*shape)
    mixes = cls(mode=mode, p=.7, seed=0).choose_many(x, 12)
    for mix in mixes:
        if mix is not None: check_provenance(x, mix.geom.apply(x.clone()), mix)
    drawn = [(m.idx.tolist().__repr__(), m.weights.tolist().__repr__()) for m in mixes if m is not None]
    assert len(drawn) > 3 and len(set(drawn)) > len(drawn) // 2  # each its own draw (8×8 images have few box sizes: some alike)

def test_window_draws_are_distributed_as_one_at_a_time():
    "λ ~ Beta(α, α) and uniform partners, whether a mix comes first in its window or later"
    from scipy import stats
    cb, x = MixUp(alpha=.7, seed=0), torch.zeros(4, 1, 2, 2)
    mixes = [m for _ in range(150) for m in cb.choose_many(x, 20)]
    lam = np.array([m.weights[0, 0].item() for m in mixes])
    first = lam[::20]
    assert stats.kstest(lam, stats.beta(.7, .7).cdf).pvalue > 1e-3 and stats.kstest(first, stats.beta(.7, .7).cdf).pvalue > 1e-3
    perms = [tuple(m.idx[1].tolist()) for m in mixes]
    counts = np.array([perms.count(p) for p in set(perms)])
    assert len(counts) == 24 and stats.chisquare(counts).pvalue > 1e-3  # all 4! orders, equally often

@pytest.mark.parametrize('make', [lambda s: MixUp(p=s, seed=0), lambda s: CutMixUp(p=s, seed=0), lambda s: CutMixUp(p=s, mode='sample', seed=0),
                                  lambda s: CutMixUp(p=s, mixup_alpha=lambda pct: .1 + pct, switch_prob=0., seed=0)])
def test_schedules_are_read_at_each_batch_while_drawn_ahead(make):
    "A schedule sees its own batch's progress, also in a window of mixes drawn ahead"
    cb = make(lambda pct: float(pct >= .5))
    mixed, queued = [], []
    class Spy(Callback):
        order = 1
        def before_batch(self):
            if self.training: mixed.append((self.pct_train, cb.mix is not None)); queued.append(len(cb.ahead or []))
    synth_learner(cbs=[cb, Spy()]).fit(2, 1e-3)
    assert [m for _, m in mixed] == [pct >= .5 for pct, _ in mixed] and any(m for _, m in mixed)
    assert max(queued) > 0  # drawn ahead

SCHEDULED = {'MixUp': lambda s: MixUp(alpha=s, seed=0), 'CutMix/sample': lambda s: CutMix(alpha=s, mode='sample', seed=0),
             'RICAP': lambda s: RICAP(beta=s, seed=0), 'FMix': lambda s: FMix(alpha=s, seed=0),
             'CutMixUp': lambda s: CutMixUp(mixup_alpha=s, cutmix_alpha=s, seed=0),
             'CutMixUp/sample': lambda s: CutMixUp(mixup_alpha=s, cutmix_alpha=s, mode='sample', seed=0),
             'nested': lambda s: MixChoice([CutMixUp(cutmix_alpha=s, mixup_alpha=s), MixUp(alpha=s)], mode='sample', seed=0)}

@pytest.mark.parametrize('name', SCHEDULED)
def test_schedules_get_the_exact_progress_of_their_batch(name):
    "Every batch's mix reads its schedules at fastai's `pct_train` of that batch, to the last bit (fastai adds 1/(n_iter·n_epoch) a batch)"
    seen, at, queued = [], [], []
    def sched(pct): seen.append(pct); return .5 + pct
    cb = SCHEDULED[name](sched)
    class Spy(Callback):
        order = 1
        def before_batch(self):
            if self.training: at.append(self.pct_train); queued.append(len(cb.ahead or []))
    synth_learner(cbs=[cb, Spy()]).fit(3, 1e-3)  # (3 epochs of 6 batches: a step of 1/18 rounds, so sums drift from products)
    assert max(queued) > 0 and len(set(at)) == len(at) == 18
    assert set(seen) == set(at)  # every batch's own progress, and no other
    # one mixer reads each batch's value once, in batch order (RICAP once per axis); a choice per batch, once in all
    if name in ('MixUp', 'CutMix/sample', 'FMix'): assert seen == at
    if name == 'CutMixUp': assert sorted(seen) == at

def test_a_schedule_outside_a_fit_reads_the_progress_now():
    "Drawn outside a fit, one batch or several at once, a mixer reads its schedules at the learner's progress (0 without one)"
    seen = []
    cb, x = CutMix(alpha=lambda pct: seen.append(pct) or 1., seed=0), torch.rand(4, 3, 8, 8)
    cb.mix_batch((x,), (torch.arange(4),)); cb.choose_many(x, 3); cb.draw(x, None)
    assert seen == [0., 0., 0., 0., 0.] and cb.at is None

def test_constant_hyperparameters_are_drawn_ahead():
    cb, queued = CutMix(seed=0), []
    class Spy(Callback):
        order = 1
        def before_batch(self):
            if self.training: queued.append(len(cb.ahead))
    synth_learner(cbs=[cb, Spy()]).fit(1, 1e-3)
    assert queued == [5, 4, 3, 2, 1, 0]  # six batches in the epoch: drawn at its first, none past its end

class CountingLoss(LabelSmoothingCrossEntropyFlat):
    "A `y_int` loss that is not plain cross-entropy (so `mixed_loss` calls it), counting its calls"
    n = 0
    def __call__(self, *args, **kw): CountingLoss.n += 1; return super().__call__(*args, **kw)

@pytest.mark.parametrize('cls,K', [(MixUp, 2), (CutMix, 2), (RICAP, 4)])
def test_learner_skips_its_loss_on_unmixed_targets(cls, K):
    "Training computes only the mixed loss (K calls of the loss), not the learner's on unmixed targets first"
    learn = synth_learner(cbs=cls(seed=0), loss_func=CountingLoss())
    calls = []
    class Count(Callback):
        order = 100
        def before_batch(self): CountingLoss.n = 0
        def after_loss(self):
            if self.training: calls.append(CountingLoss.n)
    learn.add_cb(Count())
    learn.fit(1, 1e-3)
    assert calls == [K] * 6

@pytest.mark.parametrize('event', ['after_pred', 'after_loss'])
def test_cancelled_batch_gets_its_targets_back(event):
    "A batch cancelled between `after_pred` and `after_loss` still shows its targets to the callbacks after it"
    seen = []
    class Cancel(Callback):
        order = -5 if event == 'after_loss' else 5  # between the mixer's after_pred and after_loss
        def __init__(self): setattr(self, event, self.cancel)
        def cancel(self):
            if self.training: raise CancelBatchException
    class Look(Callback):
        order = 60
        def after_batch(self):
            if self.training: seen.append(len(self.learn.yb))
    learn = synth_learner(cbs=[MixUp(seed=0), Cancel(), Look()])
    learn.fit(1, 1e-3)
    assert seen == [1] * 6

def test_pickling_drops_the_mixes_drawn_ahead():
    cb = CutMix(seed=0)
    class Stop(Callback):
        order = 1
        def before_batch(self):
            if self.iter == 1: raise KeyboardInterrupt
    learn = synth_learner(cbs=[cb, Stop()])
    with pytest.raises(KeyboardInterrupt): learn.fit(1)
    assert len(cb.ahead) == 4  # left by the interrupted fit
    learn.remove_cb(Stop)
    cb2 = pickle.loads(pickle.dumps(cb))
    assert cb2.ahead is None and cb2.mix is None and cb2.hidden_yb is None
    learn.fit(1)  # the next fit draws afresh
    assert learn.loss_func is not None and isinstance(learn.loss_func, CrossEntropyLossFlat)

@pytest.mark.parametrize('ignore_index', [-100, 255])
@pytest.mark.parametrize('red', ['mean', 'sum', 'none'])
def test_label_map_mixed_loss_is_one_log_softmax_and_matches_the_definition(ignore_index, red):
    g = torch.Generator().manual_seed(0)
    pred = torch.randn(4, 5, 6, 7, generator=g, dtype=torch.float64, requires_grad=True)
    Y = torch.randint(0, 5, (4, 2, 6, 7), generator=g)
    Y[0, 1, :2] = Y[3, 0, 4:] = ignore_index  # ignored pixels, also beyond the number of classes
    w = torch.rand(4, 1, generator=g, dtype=torch.float64); w = torch.cat([w, 1 - w], 1)
    lf = CrossEntropyLossFlat(axis=1, ignore_index=ignore_index, reduction=red)
    got = mixed_loss(lf, pred, Y, w)
    terms = [w[:, k, None, None] * F.cross_entropy(pred, Y[:, k], reduction='none', ignore_index=ignore_index) for k in range(2)]
    per = sum(terms)
    exp = (sum(t.sum() / (Y[:, k] != ignore_index).sum() for k, t in enumerate(terms)) if red == 'mean' else
           per.sum() if red == 'sum' else per.view(-1))
    torch.testing.assert_close(got, exp)
    torch.testing.assert_close(torch.autograd.grad(got.sum(), pred)[0], torch.autograd.grad(exp.sum(), pred)[0])
    torch.testing.assert_close(mixed_loss(lf, pred, [(Y[:, 0],), (Y[:, 1],)], w), got)  # the per-source form agrees

class _Ops(TorchDispatchMode):
    "The aten ops run inside the `with` block, by name"
    def __init__(self): super().__init__(); self.names = []
    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.names.append(func.overloadpacket.__name__)
        return func(*args, **(kwargs or {}))

def _ops_of_apply(make, x, seed):
    "The ops applying a mix drawn for `x` runs on a fresh copy of `x`, in place, with its work buffers already made"
    cb = make(seed)
    while (mix := cb.choose(x)) is None: pass
    sc = Scratch()
    mix.geom.apply(x.clone(), inplace=True, scratch=sc)
    t = x.clone()
    with _Ops() as ops: mix.geom.apply(t, inplace=True, scratch=sc)
    return mix, ops.names

@pytest.mark.parametrize('seed', range(4))
@pytest.mark.parametrize('name,make,most', [
    ('MixUp', lambda s: MixUp(seed=s), ['index_select', 'lerp_']),
    ('MixUp sample', lambda s: MixUp(mode='sample', seed=s), ['index_select', 'lerp_']),
    ('FMix', lambda s: FMix(seed=s), ['index_select', 'lerp']),
    ('FMix sample', lambda s: FMix(mode='sample', seed=s), ['index_select', 'lerp']),
    ('ResizeMix', lambda s: ResizeMix(seed=s), ['grid_sampler_2d', 'as_strided', 'index_select'])])
def test_a_drawn_mix_is_applied_in_a_few_tensor_ops(name, make, most, seed):
    "After a training step each tensor op costs ~10 µs: what can be made when the mix is drawn (partner rows, weights, grids) is not made per batch"
    x = torch.randn(128, 3, 32, 32)  # above the small-batch gather: the general paths
    mix, names = _ops_of_apply(make, x, seed)
    assert names == most or (name == 'ResizeMix' and names == [] and 0 in np.diff(mix.geom.boxes[0])[::2]), names

def test_shapes_that_vary_keep_each_mix_for_its_batch():
    "Batches whose shape alternates (padded signals, several scales): each gets the mix drawn for it, at its own progress; the other shape draws its own"
    cb = CutMix(p=lambda pct: float(round(pct * 40) % 3 == 0), seed=0)  # mixed exactly at every third batch
    cb.learn, windows = SimpleNamespace(pct_train=0., n_iter=40, n_epoch=1), []
    choose_many = cb.choose_many
    cb.choose_many = lambda x, n: windows.append(n) or choose_many(x, n)
    for i in range(40):
        cb.learn.pct_train = i / 40  # (fastai's loop advances it)
        mix, _, _ = cb.mix_batch((torch.randn(8, 3, 16, 16 + i % 2),), (torch.arange(8),), ahead=40 - i)
        assert (mix is not None) == (i % 3 == 0), i
    assert sorted(windows) == [1] * 20 + [8, 32]  # one window of 32 (half of it for the other shape: dropped), then of 8

def test_a_batch_cancelled_before_the_mixer_leaves_its_mix_unused():
    "A callback that cancels a batch before the mixer sees it: the next batch still gets its own mix (a schedule reads its progress)"
    cb, seen = CutMix(p=lambda pct: float(round(pct * 12) % 3 == 0), seed=0), []  # 2 epochs of 6 batches: mixed at every third
    class Skip(Callback):
        order = -5
        def before_batch(self):
            if self.training and self.iter in (1, 4): raise CancelBatchException()
    class Spy(Callback):
        order = 1
        def before_batch(self):
            if self.training: seen.append((self.pct_train, cb.mix is not None))
    synth_learner(cbs=[cb, Skip(), Spy()]).fit(2, 1e-3)
    assert len(seen) == 8 and any(m for _, m in seen)
    assert [m for _, m in seen] == [round(pct * 12) % 3 == 0 for pct, _ in seen]

def test_value_is_for_one_batch_and_values_for_a_window():
    "In `draws`, `values` gives each batch its value; `value` (for `draw`) refuses a window rather than give one batch's value to all"
    cb = MixUp(alpha=lambda pct: 1 + pct, seed=0)
    cb.learn = SimpleNamespace(pct_train=.5, n_iter=4, n_epoch=1)
    with cb.drawing_at(np.arange(3)):
        assert cb.values(cb.alpha).tolist() == [1.5, 1.75, 2.]
        with pytest.raises(TypeError, match=r"MixUp reads a schedule with `value` while drawing 3 batches at once"): cb.value(cb.alpha)
    with cb.drawing_at(np.arange(1, 2)): assert cb.value(cb.alpha) == 1.75 and cb.values(.4) == .4

def test_a_mixer_saved_before_at_existed_still_draws():
    "A mixer pickled before `at` and `ahead_end` were attributes (an older export) draws: the class holds their defaults"
    cb = MixUp(seed=0)
    for k in ('at', 'ahead_end'): cb.__dict__.pop(k, None)
    assert cb.choose(torch.rand(4, 3, 8, 8)) is not None and cb.next_mix(torch.rand(4, 3, 8, 8), 5) is not None

def test_a_subclass_that_overrides_draw_is_drawn_by_it():
    "A subclass of a built-in method that draws its own way (`draw`) is used batch by batch: outside a fit, in a window, through its parent's draw"
    calls = []
    class LoggedCutMix(CutMix):
        def draw(self, x, on): calls.append(on is None); return super().draw(x, on)
    x = provenance_batch(8, 3, 6, 9)
    mix, (xm,), _ = LoggedCutMix(seed=0).mix_batch((x,), (torch.arange(8),))
    check_provenance(x, xm, mix)
    assert calls == [True]
    mixes = LoggedCutMix(mode='sample', seed=0).choose_many(x, 10)
    assert len(calls) == 11 and not any(calls[1:])
    for m in mixes: check_provenance(x, m.geom.apply(x.clone()), m)
    class Neither(MixHandler): pass
    with pytest.raises(NotImplementedError, match='Neither defines neither'): Neither(seed=0).mix_batch((x,), (torch.arange(8),))
    assert CutMix(seed=0).draw(x, [True, False] * 4).weights[1::2, 0].eq(1).all()  # `on` may be a list

@pytest.mark.parametrize('cls,name', [(MixUp, 'alpha'), (CutMix, 'alpha'), (RICAP, 'beta'), (FMix, 'alpha')])
@pytest.mark.parametrize('mode', ['batch', 'sample'])
def test_a_window_draws_each_batch_at_its_own_schedule_value(cls, name, mode):
    "In one window, each batch's draws use its own value of the schedule: Beta(.02, .02) puts the weights at the extremes, Beta(200, 200) at the middle"
    n = 24
    cb, x = cls(**{name: lambda pct: .02 if round(pct * n) % 2 == 0 else 200.}, mode=mode, seed=0), torch.rand(64, 1, 16, 16)
    cb.learn = SimpleNamespace(pct_train=0., n_iter=n, n_epoch=1)  # a fit's progress: batch k of the window at k/24
    with cb.drawing_at(np.arange(n)): mixes = cb.draws(x, n, None if mode == 'batch' else np.ones((n, 64), bool))
    if cls is CutMix:  # (a box clipped at the border shares less than 1 − λ): λ near 1 leaves no box at all, λ near 1/2 always one
        empty = [(m.weights[:, 0] == 1).float().mean().item() for m in mixes]
        assert np.mean(empty[::2]) > .15 and max(empty[1::2]) == 0, empty
        return
    top = [m.weights.max(1).values.median().item() for m in mixes]  # the dominant source's share in a typical image
    extreme, middle = top[::2], top[1::2]
    assert min(extreme) > .8 and max(middle) < (.45 if cls is RICAP else .65), (extreme, middle)

def test_a_schedule_out_of_range_says_at_what_progress():
    "A window reads a schedule ahead of its batches: the error names the hyper-parameter, the value and the progress where it went wrong"
    cb = CutMix(p=lambda pct: 2. if pct > .6 else .5, seed=0)
    cb.learn = SimpleNamespace(pct_train=.5, n_iter=4, n_epoch=1)  # the window's batches at .5, .75, 1
    with pytest.raises(ValueError, match=r"^CutMix at training progress 0\.75: `p` must be in \[0, 1\], got 2\.0$"): cb.choose_many(torch.rand(4, 3, 8, 8), 3)
    assert cb.at is None
