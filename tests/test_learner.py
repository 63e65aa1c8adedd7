"Real fastai training with every method and mode; validation and inference never see mixing; every way a fit ends"
import pickle, tempfile, pathlib, torch, pytest
from fastai.basics import *
from fastai.callback.training import *
from fastmix.all import *
from fastmix.core import *
from fastmix.geometry import *
from fastmix.testing import *
from fastmix.mixers import MIXERS
from helpers import CASES, ENDINGS, Boom, RaiseAt, synth_learner

@pytest.mark.parametrize('method,mode', CASES)
def test_fit_validate_get_preds(method, mode):
    cb = MIXERS[method](mode=mode, seed=0)
    learn = synth_learner(cbs=cb)
    lf = learn.loss_func
    seen = []
    class Spy(Callback):
        order = 1  # after the mixer
        def before_batch(self):
            if self.training: seen.append((self.xb[0].clone(), cb.mix))
    learn.add_cb(Spy())
    learn.fit(2, 1e-2)
    assert learn.loss_func is lf
    assert all(np.isfinite(v) for v in learn.recorder.values[-1])
    assert all(m is not None for _, m in seen)  # every training batch was mixed (p = 1)
    # validation and predictions equal a learner without the callback on the same weights
    plain = synth_learner(); plain.model.load_state_dict(learn.model.state_dict())
    assert learn.validate() == plain.validate()
    p1, t1 = learn.get_preds(); p2, t2 = plain.get_preds()
    assert torch.equal(p1, p2) and torch.equal(t1, t2)

@pytest.mark.parametrize('method', MIXERS)
def test_training_loss_is_the_mixed_loss(method):
    "The loss fastai backpropagates is `mixed_loss` of the mix actually applied"
    cb = MIXERS[method](seed=1)
    got = []
    class Check(Callback):
        order = 5
        def after_loss(self):
            if not self.training: return
            mix = self.learn.mixed_with
            exp = mixed_loss(self.learn.loss_func, self.pred, [(self.yb[0][mix.idx[k]],) for k in range(mix.K)], mix.weights)
            got.append((self.loss_grad.item(), exp.item(), self.learn.loss_func(self.pred, *self.yb).item()))
    class Keep(Callback):
        order = -1
        def after_pred(self):
            if self.training: self.learn.mixed_with = cb.mix
    learn = synth_learner(cbs=[cb, Check(), Keep()])
    learn.fit(1, 1e-2)
    assert got and all(abs(a - b) < 1e-6 for a, b, _ in got)
    assert any(abs(a - c) > 1e-4 for a, _, c in got)  # and it is not the unmixed loss

@pytest.mark.parametrize('exc', ENDINGS, ids=lambda e: e.__name__)
@pytest.mark.parametrize('method', MIXERS)
def test_every_ending_restores_then_fits_again(exc, method):
    cb = MIXERS[method](seed=0)
    learn = synth_learner(cbs=cb)
    lf = learn.loss_func
    try: learn.fit(1, 1e-2, cbs=RaiseAt(exc()))
    except (Boom, KeyboardInterrupt): pass
    assert learn.loss_func is lf
    learn.fit(1, 1e-2)  # a second fit works and never wraps the loss twice
    assert learn.loss_func is lf
    plain = synth_learner(); plain.model.load_state_dict(learn.model.state_dict())
    assert learn.validate() == plain.validate()

@pytest.mark.parametrize('method', MIXERS)
def test_lr_find_export_load_predict(method, tmp_path):
    learn = synth_learner(cbs=MIXERS[method](seed=0), path=tmp_path)
    lf = learn.loss_func
    learn.lr_find(num_it=8, show_plot=False)
    assert learn.loss_func is lf
    learn.fit(1, 1e-2)
    learn.export('m.pkl')
    learn2 = load_learner(tmp_path/'m.pkl')
    assert any(isinstance(c, MIXERS[method].cls) for c in learn2.cbs)
    pred = learn2.predict(0)
    assert torch.allclose(pred[2], learn.predict(0)[2])

def test_seed_repeats_exactly():
    def run(seed):
        learn = synth_learner(cbs=RICAP(mode='sample', seed=seed))
        learn.fit(1, 1e-2)
        return learn.recorder.losses
    assert run(3) == run(3) and run(3) != run(4)

class _Ptr(Callback):
    "The training batch's memory at `before_batch`, before (order -1) or after (order 1) the mixer"
    def __init__(self, order): self.order, self.ptrs = order, []
    def before_batch(self):
        if self.learn.training: self.ptrs.append(self.learn.xb[0].data_ptr())

@pytest.mark.parametrize('method,mode', [c for c in CASES if c[0] != 'manifold'])
def test_batches_a_dataset_keeps_are_never_written(method, mode):
    "A DataLoader over stored batches (`batch_size=None`) yields the dataset's own tensors: mixed, they stay as they were"
    g = torch.Generator().manual_seed(0)
    stored = [(torch.rand(8, 3, 12, 12, generator=g), torch.randint(0, 3, (8,), generator=g)) for _ in range(3)]
    kept = [x.clone() for x, _ in stored]
    learn = synth_learner(cbs=[MIXERS[method](mode=mode, seed=0), _Ptr(-1), _Ptr(1)])
    learn.dls = DataLoaders(torch.utils.data.DataLoader(stored, batch_size=None), torch.utils.data.DataLoader(stored[:1], batch_size=None))
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)
    assert all(torch.equal(x, k) for (x, _), k in zip(stored, kept))
    before, after = (cb.ptrs for cb in learn.cbs if isinstance(cb, _Ptr))
    assert len(before) == 3 and all(a != b for a, b in zip(after, before))  # every batch mixed into other memory

@pytest.mark.parametrize('bs,in_place', [(40, True), (8, False)])  # 40×3×12×12 values: above the small batches'
def test_fresh_batches_are_mixed_in_place_unless_small(bs, in_place):
    "The batches a fastai DataLoader makes belong to the training step: MixUp blends them where they are, but for small ones (whose new memory costs less than checking that no view of them is kept)"
    learn = synth_learner(cbs=[MixUp(seed=0), _Ptr(-1), _Ptr(1)], bs=bs)
    with learn.no_bar(), learn.no_logging(): learn.fit(3, 1e-3)
    before, after = (cb.ptrs for cb in learn.cbs if isinstance(cb, _Ptr))
    assert len(before) >= 3 and [a == b for a, b in zip(before, after)] == [in_place] * len(before)

class _KeepXb(Callback):
    "Keeps the tuple `learn.xb` itself (not its tensor) before the mixer runs, and a copy of what it held"
    order = -1
    def before_batch(self):
        if self.learn.training: self.kept, self.copy = self.learn.xb, self.learn.xb[0].clone()
    def after_pred(self):
        if self.learn.training: self.same.append(torch.equal(self.kept[0], self.copy))

@pytest.mark.parametrize('make', [lambda: MixUp(seed=0), lambda: CutMix(seed=0), lambda: FMix(seed=0, mode='sample')])
def test_a_kept_xb_tuple_is_never_written(make):
    "A callback that keeps `learn.xb` holds the batch through the tuple: the mix goes into new memory, and the kept batch is the original"
    keep = _KeepXb(); keep.same = []
    learn = synth_learner(cbs=[make(), keep])
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)
    assert len(keep.same) > 2 and all(keep.same)

@pytest.mark.parametrize('kind', ['TensorImage', 'alias'])
def test_kept_fastai_typed_batches_are_never_written(kind):
    "Stored `TensorImage` batches (views of a whole tensor), or fresh `TensorImage` aliases of tensors a dataset keeps"
    g = torch.Generator().manual_seed(0)
    base = [torch.rand(8, 3, 12, 12, generator=g) for _ in range(3)]
    kept = [b.clone() for b in base]
    xs = [TensorImage(b) for b in base] if kind == 'TensorImage' else None
    class Aliases(torch.utils.data.Dataset):  # a new alias per call, as a transform that retains the type makes
        def __len__(self): return 3
        def __getitem__(self, i): return (xs[i] if xs else base[i].as_subclass(TensorImage)), torch.arange(8) % 3
    learn = synth_learner(cbs=[MixUp(seed=0)])
    learn.dls = DataLoaders(torch.utils.data.DataLoader(Aliases(), batch_size=None), torch.utils.data.DataLoader(Aliases(), batch_size=None))
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)
    assert all(torch.equal(b, k) for b, k in zip(base, kept))

@pytest.mark.parametrize('size,in_place', [(40, True), (12, False)])  # 8×3×40×40 values: above the small batches'
def test_fresh_typed_batches_are_mixed_in_place_unless_small(size, in_place):
    "A `TensorImage` batch fastai's collation makes (a view of the whole of a new tensor) is the step's own: blended where it is, unless small"
    g = torch.Generator().manual_seed(0)
    items = [(TensorImage(torch.rand(3, size, size, generator=g)), i % 3) for i in range(32)]
    learn = synth_learner(cbs=[MixUp(seed=0), _Ptr(-1), _Ptr(1)])
    learn.dls = DataLoaders(TfmdDL(items, bs=8, shuffle=True, drop_last=True), TfmdDL(items[:8], bs=8))
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)
    before, after = (cb.ptrs for cb in learn.cbs if isinstance(cb, _Ptr))
    assert len(before) == 4 and [a == b for a, b in zip(before, after)] == [in_place] * 4

class _KeepViews(Callback):
    "Keeps views of the training batch, made every way a callback might (none a reference to the batch tensor itself), before the mixer runs"
    order = -1
    def before_batch(self):
        if not self.learn.training: return
        x = self.learn.xb[0]
        self.kept = [x[:2], x.detach(), x.data, x.as_subclass(torch.Tensor), x.reshape(len(x), -1), x.detach().cpu()]
        self.copy = x.clone()
    def after_pred(self):
        if self.learn.training: self.same.append(all(torch.equal(k.reshape(-1), self.copy[:len(k)].reshape(-1)) for k in self.kept))

@pytest.mark.parametrize('size', [12, 48])  # small batches (new memory), large ones (written in place unless a view is kept)
@pytest.mark.parametrize('name,mode', [c for c in CASES if c[0] != 'manifold'])
def test_views_of_the_batch_another_callback_keeps_are_never_written(name, mode, size):
    "A callback that keeps a view of the input (a slice, `detach`, `.data`, a reshape) still holds the loader's images after the mixer ran"
    g = torch.Generator().manual_seed(0)
    items = [(TensorImage(torch.rand(3, size, size, generator=g)), i % 3) for i in range(24)]
    keep = _KeepViews(); keep.same = []
    learn = synth_learner(cbs=[keep, MIXERS[name](seed=0, mode=mode, p=1.)])
    learn.dls = DataLoaders(TfmdDL(items, bs=8, shuffle=True, drop_last=True), TfmdDL(items[:8], bs=8))
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)
    assert len(keep.same) == 3 and all(keep.same)

@pytest.mark.parametrize('make', [lambda: CutMix(seed=0), lambda: CutMixUp(mode='sample', seed=0)])
def test_lr_find_puts_the_draws_back(make):
    "`lr_find` trains mixed, as the fit will, and puts the model back: the mixer's generator goes back with it"
    cb = make()
    learn = synth_learner(cbs=cb)
    state = cb.rng.bit_generator.state
    with learn.no_bar(), learn.no_logging(): learn.lr_find(num_it=6, show_plot=False)
    assert cb.rng.bit_generator.state == state
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)
    assert cb.rng.bit_generator.state != state  # a fit draws on

@pytest.mark.parametrize('mode', ['batch', 'sample'])
@pytest.mark.parametrize('name', list(MIXERS))
def test_typed_batches_are_mixed_without_fastai_dispatch(name, mode, monkeypatch):
    "fastai's `TensorImage`, `TensorCategory` run every op and attribute read through `TensorBase.__torch_function__` (µs each): a mixer's `before_batch` runs it not once, and the batch keeps its types"
    calls, inside = [], [False]
    orig = TensorBase.__dict__['__torch_function__'].__func__
    def counted(cls, func, types, args=(), kwargs=None):
        if inside[0]: calls.append(getattr(func, '__name__', repr(func)))
        return orig(cls, func, types, args, kwargs)
    monkeypatch.setattr(TensorBase, '__torch_function__', classmethod(counted))
    cb, seen = MIXERS[name](seed=0, mode=mode), []
    event = cb.before_batch
    def before_batch():
        inside[0] = True
        try: event()
        finally: inside[0] = False
        seen.append((type(cb.learn.xb[0]), type(cb.learn.yb[0]), cb.mix is not None))
    object.__setattr__(cb, 'before_batch', before_batch)
    g = torch.Generator().manual_seed(0)
    items = [(TensorImage(torch.rand(3, 12, 12, generator=g)), TensorCategory(i % 3)) for i in range(32)]
    learn = synth_learner(cbs=cb)
    learn.dls = DataLoaders(TfmdDL(items, bs=8, shuffle=True, drop_last=True), TfmdDL(items[:8], bs=8))
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)
    assert calls == [] and len(seen) == 4 and any(m for *_, m in seen)
    assert all(tx is TensorImage and ty is TensorCategory for tx, ty, _ in seen)

@pytest.mark.parametrize('name,mode', CASES)
def test_a_mix_under_inference_mode_leaves_the_next_fit_working(name, mode):
    "A look at a mixed batch under `torch.inference_mode` (a preview) makes work buffers that can't be written outside it: the next calls and fits make their own"
    g = torch.Generator().manual_seed(0)
    items = [(torch.rand(3, 40, 40, generator=g), i % 3) for i in range(32)]  # batches of 8 over 16,384 values: mixed through work buffers
    cb, y = MIXERS[name](seed=0, mode=mode, p=1.), torch.arange(8) % 3
    with torch.inference_mode(): cb.mix_batch((torch.stack([x for x, _ in items[:8]]),), (y,), inplace=True)
    x = torch.stack([x for x, _ in items[8:16]])
    _, (xm,), _ = cb.mix_batch((x.clone(),), (y,), inplace=True)  # (in place: the buffers are read and adopted)
    fresh = MIXERS[name](seed=0, mode=mode, p=1.)
    fresh.mix_batch((torch.stack([x for x, _ in items[:8]]),), (y,))  # the same draws so far
    assert torch.equal(xm, fresh.mix_batch((x.clone(),), (y,))[1][0])
    learn = synth_learner(cbs=cb)
    learn.dls = DataLoaders(TfmdDL(items, bs=8, shuffle=True, drop_last=True), TfmdDL(items[:8], bs=8))
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)
    assert len(learn.recorder.values) == 1 and all(map(math.isfinite, learn.recorder.values[0]))

@pytest.mark.parametrize('method', MIXERS)
@pytest.mark.parametrize('order,first', [(0, True), (0, False), (-5, False), (5, True)], ids=['0-listed-first', '0-listed-after', 'before', 'after'])
def test_other_callbacks_see_the_targets_and_the_mixed_loss(method, order, first):
    "Wherever a callback sits, its `after_pred` sees the batch's targets and its `after_loss` the mixed loss, which a penalty it adds changes (as with fastai's `MixUp`)"
    cb, ys, seen, exp = MIXERS[method](seed=0), [], [], []
    class Penalty(Callback):
        def after_pred(self):
            if self.training: ys.append(len(self.learn.yb) == 1 and self.learn.yb[0].shape == (8,))
        def after_loss(self):
            if not self.training: return
            seen.append(self.learn.loss_grad.item()); self.learn.loss_grad = self.learn.loss_grad + 100.
    class Check(Callback):
        order = 90
        def after_loss(self):
            if not self.training: return
            mix = cb.mix
            mixed = mixed_loss(self.learn.loss_func, self.pred, [(self.yb[0][mix.idx[k]],) for k in range(mix.K)], mix.weights)
            exp.append((mixed.item(), self.learn.loss_grad.item()))
    pen = Penalty(); pen.order = order
    learn = synth_learner(cbs=[pen, cb, Check()] if first else [cb, pen, Check()])
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)
    assert len(ys) == len(seen) == len(exp) == 6 and all(ys)
    assert all(abs(s - m) < 1e-5 and abs(f - m - 100) < 1e-4 for s, (m, f) in zip(seen, exp))

class _MakeAndKeep(Callback):
    "Before the mixer: replaces the input by a tensor of its own making and keeps it (clean inputs for a consistency loss, a log)"
    order = -10
    def before_batch(self):
        if not self.learn.training: return
        self.learn.xb = (self.learn.xb[0] * 1.,)
        self.kept, self.copy = self.learn.xb[0], self.learn.xb[0].clone()
    def after_pred(self):
        if self.learn.training: self.same.append(torch.equal(self.kept, self.copy))

@pytest.mark.parametrize('name,mode', [c for c in CASES if c[0] != 'manifold'])
def test_a_batch_another_callback_made_and_keeps_is_never_written(name, mode):
    "A callback before the mixer that puts a tensor of its own in `learn.xb` and keeps it holds it unmixed; the loader's own large batches are still mixed in place"
    g = torch.Generator().manual_seed(0)
    items = [(TensorImage(torch.rand(3, 48, 48, generator=g)), i % 3) for i in range(24)]
    keep = _MakeAndKeep(); keep.same = []
    learn = synth_learner(cbs=[keep, MIXERS[name](seed=0, mode=mode, p=1.)])
    learn.dls = DataLoaders(TfmdDL(items, bs=8, shuffle=True, drop_last=True), TfmdDL(items[:8], bs=8))
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)
    assert len(keep.same) == 3 and all(keep.same)
    learn = synth_learner(cbs=[MIXERS[name](seed=0, mode=mode, p=1.), _Ptr(-1), _Ptr(1)])  # nothing keeps the loader's batch: in place
    learn.dls = DataLoaders(TfmdDL(items, bs=8, shuffle=True, drop_last=True), TfmdDL(items[:8], bs=8))
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)
    before, after = (cb.ptrs for cb in learn.cbs if isinstance(cb, _Ptr))
    if name != 'ricap': assert len(before) == 3 and after == before  # (RICAP builds its tiles in a buffer it then adopts)
