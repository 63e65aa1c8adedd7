"Bad input: a clear error naming the argument and the value, at construction or at the first batch"
import re, pytest, numpy as np, torch
from fastai.basics import *
from fastai.vision.all import *
from fastmix.all import *
from fastmix.core import *
from fastmix.geometry import *
from fastmix.testing import *
from fastmix.mixers import MIXERS
from helpers import batch, synth_learner

BAD_ARGS = [  # (class, kwargs, exception, regex the message must match)
    (MixUp,  dict(alpha=0),              ValueError, r"`alpha` must be in \(0, .*got 0$"),
    (CutMixUp, dict(mixup_alpha=0),      ValueError, r"`mixup_alpha` must be in \(0, .*got 0$"),
    (CutMixUp, dict(cutmix_alpha=-2),    ValueError, r"`cutmix_alpha` must be in \(0, .*got -2$"),
    (MixChoice, dict(mixers=None),       TypeError,  r"`mixers` must be a non-empty list of fastmix mixers \(MixHandler callbacks\), got None$"),
    (MixUp,  dict(alpha=-0.5),           ValueError, r"`alpha` must be in \(0, .*got -0\.5$"),
    (CutMix, dict(alpha=float('nan')),   ValueError, r"`alpha` must be a finite number.*got nan$"),
    (CutMix, dict(alpha=float('inf')),   ValueError, r"`alpha` must be a finite number.*got inf$"),
    (RICAP,  dict(beta=0.),              ValueError, r"`beta` must be in \(0, .*got 0\.0$"),
    (RICAP,  dict(beta=-1),              ValueError, r"`beta` must be in \(0, .*got -1$"),
    (RICAP,  dict(beta=float('nan')),    ValueError, r"`beta` must be a finite number.*got nan$"),
    (MixUp,  dict(alpha=float('-inf')),  ValueError, r"`alpha` must be a finite number.*got -inf$"),
    (CutMix, dict(p=1.5),                ValueError, r"`p` must be in \[0, 1\], got 1\.5$"),
    (RICAP,  dict(p=-0.1),               ValueError, r"`p` must be in \[0, 1\], got -0\.1$"),
    (MixUp,  dict(p=float('nan')),       ValueError, r"`p` must be a finite number.*got nan$"),
    (CutMix, dict(mode='pixel'),         ValueError, r"`mode` must be one of \('batch', 'sample'\), got 'pixel'$"),
    (MixUp,  dict(mode='Batch'),         ValueError, r"`mode` must be one of .*got 'Batch'$"),
    # wrong types a user could type
    (MixUp,  dict(alpha='0.4'),          (TypeError, ValueError), r"`alpha` must be a finite number.*got '0\.4'$"),
    (RICAP,  dict(beta=[0.3]),           (TypeError, ValueError), r"`beta` must be a finite number.*got \[0\.3\]$"),
    (CutMix, dict(alpha=True),           (TypeError, ValueError), r"`alpha` must be a finite number.*got True$"),
    (MixUp,  dict(p=None),               (TypeError, ValueError), r"`p` must be a finite number.*got None$"),
    (CutMix, dict(p='1'),                (TypeError, ValueError), r"`p` must be a finite number.*got '1'$"),
    (MixUp,  dict(mode=1),               (TypeError, ValueError), r"`mode` must be one of .*got 1$"),
    (RICAP,  dict(mode=None),            (TypeError, ValueError), r"`mode` must be one of .*got None$"),
    (MixUp,  dict(seed=1.5),             TypeError,  r"`seed` must be an int or None, got 1\.5$"),
    (CutMix, dict(seed='0'),             TypeError,  r"`seed` must be an int or None, got '0'$"),
    (RICAP,  dict(seed=True),            TypeError,  r"`seed` must be an int or None, got True$"),
    (MixUp,  dict(seed=-1),              ValueError, r"`seed`.*-1"),  # numpy's own error does not name `seed`
    (MixUp,  dict(keep_dominant='yes'),  TypeError,  r"`keep_dominant` must be a bool, got 'yes'$"),
    (MixUp,  dict(keep_dominant=1),      TypeError,  r"`keep_dominant` must be a bool, got 1$"),
    (CutMix, dict(off_epochs=-1),        ValueError, r"`off_epochs` must be an int >= 0, got -1$"),
    (RICAP,  dict(off_epochs=1.5),       (TypeError, ValueError), r"`off_epochs` must be an int >= 0, got 1\.5$"),
    (MixUp,  dict(off_pct=2),            ValueError, r"`off_pct` must be in \[0, 1\], got 2$"),
    (CutMix, dict(off_pct=-0.1),         ValueError, r"`off_pct` must be in \[0, 1\], got -0\.1$"),
    (RICAP,  dict(off_pct='0.1'),        (TypeError, ValueError), r"`off_pct` must be a finite number, got '0\.1'$"),
]

@pytest.mark.parametrize('cls,kw,exc,msg', BAD_ARGS,
                         ids=[f"{c.__name__}-{','.join(f'{k}={v!r}' for k, v in kw.items())}" for c, kw, _, _ in BAD_ARGS])
def test_bad_constructor_arg(cls, kw, exc, msg):
    with pytest.raises(exc, match=msg): cls(**kw)

PARAM = {'mixup': 'alpha', 'cutmix': 'alpha', 'ricap': 'beta'}  # the Beta parameter of each method's own draw

@pytest.mark.parametrize('method', PARAM)
def test_schedule_going_out_of_range_fails_at_first_batch(method):
    "A schedule can only be checked when it is evaluated: at the first batch, naming the hyper-parameter and value"
    x, y = batch()
    with pytest.raises(ValueError, match=rf"`{PARAM[method]}` must be in \(0, .*got -1\.0$"):
        MIXERS[method](**{PARAM[method]: lambda pct: -1.}, seed=0).mix_batch((x,), (y,))

@pytest.mark.parametrize('method', MIXERS)
def test_p_schedule_going_out_of_range_fails_at_first_batch(method):
    x, y = batch()
    with pytest.raises(ValueError, match=r"`p` must be in \[0, 1\], got 2\.0$"):
        MIXERS[method](p=lambda pct: 2., seed=0).mix_batch((x,), (y,))

IMAGE_ONLY = [m for m in MIXERS if MIXERS[m].cls.image_only]  # the cut methods (and choices among them)
SHAPES = {1: r'\(B, C, L\)', 2: r'\(B, C, H, W\)', 3: r'\(B, C, D, H, W\)'}
BAD_SHAPES = [(m, s) for m in IMAGE_ONLY for s in [(4, 8, 8), (4, 3), (4,), (4, 1, 3, 8, 8), (4, 1, 3, 8, 8, 2)]
              if len(s) - 2 not in MIXERS[m](seed=0).space_dims]

@pytest.mark.parametrize('method,shape', BAD_SHAPES)
def test_batch_without_the_spatial_axes_a_method_cuts(method, shape):
    "Image-only methods refuse signals and volumes; CutMix, RICAP (and CutMixUp) take them but refuse tables and 6-D"
    cb = MIXERS[method](seed=0)
    dims = sorted(cb.space_dims)
    expect = ('image batches of shape ' + SHAPES[2] if dims == [2] else
              'batches of shape ' + ', '.join(SHAPES[d] for d in dims[:-1]) + ' or ' + SHAPES[dims[-1]])
    with pytest.raises(ValueError, match=rf"{MIXERS[method].cls.__name__} mixes {expect}, got shape {re.escape(str(tuple(shape)))}$"):
        cb.mix_batch((torch.randn(shape),), (torch.arange(4),))

def test_which_methods_cut_signals_and_volumes():
    assert {m for m in IMAGE_ONLY if MIXERS[m](seed=0).space_dims == (1, 2, 3)} >= {'cutmix', 'ricap', 'cutmixup'}
    assert all(MIXERS[m](seed=0).space_dims == (2,) for m in ('fmix', 'resizemix') if m in MIXERS)

@pytest.mark.parametrize('method', MIXERS)
@pytest.mark.parametrize('dtype', [torch.uint8, torch.int64, torch.bool])
def test_integer_and_bool_images(method, dtype):
    x = torch.zeros(4, 3, 8, 8, dtype=dtype)
    with pytest.raises(TypeError, match=rf"must be a float tensor, got dtype {re.escape(str(dtype))}: convert images"):
        MIXERS[method](seed=0).mix_batch((x,), (torch.arange(4),))

def test_input_not_a_tensor():
    with pytest.raises(TypeError, match=r"the input batch must be a Tensor, got ndarray$"):
        CutMix(seed=0).mix_batch((np.zeros((4, 3, 8, 8), dtype=np.float32),), (torch.arange(4),))

@pytest.mark.parametrize('method', MIXERS)
def test_target_batch_size_differs(method):
    x, y = batch(bs=4)
    with pytest.raises(ValueError, match=r"target 0 has batch size 5 but the input batch has 4$"):
        MIXERS[method](seed=0).mix_batch((x,), (torch.arange(5),))
    with pytest.raises(ValueError, match=r"target 1 has batch size 3 but the input batch has 4$"):
        MIXERS[method](seed=0).mix_batch((x,), (y, torch.zeros(3, 2)))

@pytest.mark.parametrize('method', MIXERS)
def test_second_input_batch_size_differs(method):
    """A second input with another batch size is a broken batch: it must be a clear error. (CutMix and RICAP crash
    deep inside the geometry with an IndexError or a reshape error; MixUp silently leaves it unmixed.)"""
    x, y = batch(bs=4)
    with pytest.raises(ValueError, match=r"(?i)input 1 .*batch size 3.* 4"):
        MIXERS[method](seed=0).mix_batch((x, torch.randn(3, 3, 8, 8)), (y,))

class FloatTargets(Callback):
    "Turn the class indices into floats before the mixer sees them"
    order = -1
    def before_batch(self): self.learn.yb = (self.yb[0].float(),)

@pytest.mark.parametrize('method', MIXERS)
def test_y_int_loss_with_float_targets(method):
    learn = synth_learner(cbs=[MIXERS[method](seed=0), FloatTargets()], loss_func=CrossEntropyLossFlat())
    with pytest.raises(TypeError, match=r"takes class indices \(`y_int`\) but target 0 is torch\.float32"):
        learn.fit(1, 1e-2)


def test_a_loss_without_reduction_is_named_in_the_error():
    "With class-index targets the loss runs per sample: a plain function without `reduction` gets an error that says so"
    def my_ce(pred, targ): return F.cross_entropy(pred, targ)
    learn = synth_learner(cbs=MixUp(seed=0))
    learn.loss_func = my_ce
    with pytest.raises(TypeError, match=r"the targets are class indices, so the loss .*my_ce.* has no `reduction` argument"):
        learn.fit(1)
    assert learn.loss_func is my_ce

@pytest.mark.parametrize('method', MIXERS)
def test_target_without_batch_dimension(method):
    x, y = batch(bs=4)
    with pytest.raises(ValueError, match=r"target 0 has no batch dimension \(a 0-d tensor\) but the input batch has 4$"):
        MIXERS[method](seed=0).mix_batch((x,), (torch.tensor(3),))

@pytest.mark.parametrize('method', [m for m in MIXERS if MIXERS[m].cls.image_only])
@pytest.mark.parametrize('shape', [(4, 3, 0, 5), (4, 3, 6, 0)])
def test_empty_space(method, shape):
    "A cutting mixer's label weights are shares of the space: an empty one is an error, never NaN weights"
    with pytest.raises(ValueError, match=rf"{MIXERS[method].cls.__name__} cuts space: every spatial size must be at least 1, got shape {re.escape(str(shape))}$"):
        MIXERS[method](seed=0).mix_batch((torch.rand(shape),), (torch.arange(4),))

def test_mixchoice_refuses_manifold_mixup():
    "ManifoldMixUp mixes a layer through its own events, which `MixChoice` does not run: it would quietly mix the input"
    with pytest.raises(ValueError, match=r"`mixers` can't hold ManifoldMixUp: it mixes through its own events"):
        MixChoice([ManifoldMixUp(), CutMix()])

@pytest.mark.parametrize('make,attr,bad,msg', [
    (MixUp, 'alpha', 0., r"`alpha` must be in \(0, inf\), got 0.0"), (MixUp, 'p', 1.5, r"`p` must be in \[0, 1\], got 1.5"),
    (RICAP, 'beta', float('nan'), r"`beta` must be a finite number or a schedule function, got nan"),
    (FMix, 'alpha', float('inf'), r"`alpha` must be a finite number"), (FMix, 'decay', -1., r"`decay` must be in \[0, inf\)"),
    (CutMix, 'minmax', (.8, .2), r"`minmax` must satisfy"), (ResizeMix, 'scale', (0., .5), r"`scale` must satisfy"),
    (CutMixUp, 'off_pct', 2., r"`off_pct` must be in \[0, 1\]"), (ManifoldMixUp, 'alpha', -1, r"`alpha` must be in \(0, inf\)"),
    (MixUp, 'mode', 'elem', r"`mode` must be one of \('batch', 'sample'\), got 'elem'"), (CutMix, 'off_epochs', -1, r"`off_epochs` must be an int >= 0, got -1"),
    (MixUp, 'keep_dominant', 'yes', r"`keep_dominant` must be a bool, got 'yes'"), (ManifoldMixUp, 'include_input', 1, r"`include_input` must be a bool, got 1")])
def test_hyper_parameters_set_later_are_checked(make, attr, bad, msg):
    "A hyper-parameter assigned after construction (`cb.p = 0.`, as the docs show) gets the constructor's check, at once"
    cb = make(seed=0)
    old = getattr(cb, attr)
    with pytest.raises((ValueError, TypeError), match=msg): setattr(cb, attr, bad)
    assert getattr(cb, attr) == old  # not set
    setattr(cb, attr, old)

def test_categorical_codes_first_point_to_manifold():
    "fastai's tabular batches start with int64 category codes: MixUp says they can't be blended and what mixes them"
    with pytest.raises(TypeError, match=r"got dtype torch.int64: .*can't be blended: `ManifoldMixUp` mixes their embeddings"):
        MixUp(seed=0).mix_batch((torch.randint(0, 5, (8, 3)), torch.randn(8, 4)), (torch.arange(8),))

@pytest.mark.parametrize('method', ['cutmix', 'ricap', 'fmix', 'resizemix', 'cutmixup'])
def test_a_mask_at_another_resolution_cannot_be_cut(method):
    "Integer label maps with the images' aspect at another size (a model predicting at a stride) can't follow a cut: an error, not a loss on blended masks"
    x = torch.randn(4, 3, 16, 16)
    for y in (torch.randint(0, 3, (4, 8, 8)), torch.randint(0, 3, (4, 1, 8, 8))):
        with pytest.raises(ValueError, match=r"cuts the images \(16×16\), but target 0 is an integer map of another size"):
            MIXERS[method](seed=0).mix_batch((x,), (y,))
    MIXERS[method](seed=0).mix_batch((x,), (torch.randint(0, 3, (4, 4, 2)),))  # other integer targets: left to the loss
    mix, _, (ym,) = MixUp(seed=0).mix_batch((x,), (y,))  # a blend leaves masks of any size to the loss
    assert mix.in_loss == (True,) and ym is y

@pytest.mark.parametrize('method', ['cutmix', 'ricap', 'fmix', 'resizemix', 'cutmixup'])
def test_an_extra_image_at_another_resolution_cannot_be_cut(method):
    "An extra image input with the images' aspect at another size (a second view at half size) can't follow a cut: an error, not an input left unmixed while the labels are"
    x, y = torch.randn(4, 3, 16, 16), torch.arange(4)
    for xs in (torch.randn(4, 3, 8, 8), torch.randn(4, 8, 8)):
        with pytest.raises(ValueError, match=re.escape(f"cuts the images (16×16), but input 1 is a map of another size, shape {tuple(xs.shape)}")):
            MIXERS[method](seed=0).mix_batch((x, xs), (y,))
    feats = torch.randn(4, 8)
    mix, (_, fm), _ = MIXERS[method](seed=0).mix_batch((x, feats), (y,))  # features, not a map: left as they are by a cut
    assert fm is feats or mix.geom.cuts is False  # (`CutMixUp` may draw MixUp for the batch: a blend blends them)
    xs = torch.randn(4, 3, 8, 8)
    mix, (_, xsm), _ = MixUp(seed=0).mix_batch((x, xs), (y,))  # a blend blends an input of any size
    assert torch.allclose(xsm, mix.blend(xs))

def test_a_loss_that_ignores_reduction_is_named_in_the_error():
    class MeanCE(nn.Module):
        reduction = 'mean'
        def forward(self, pred, targ): return F.cross_entropy(pred, targ)  # whatever `reduction` says
    lf = MeanCE()
    with pytest.raises(ValueError, match=r"returned shape \(\) with reduction='none', not values per sample of the batch of 4"):
        mixed_loss(lf, torch.randn(4, 3), [(torch.arange(4) % 3,), (torch.arange(4) % 2,)], torch.full((4, 2), .5))

def test_manifold_mixup_refuses_dataparallel_on_several_gpus():
    "Each GPU's replica sees a slice of the batch, so a partner may be on another GPU"
    learn = synth_learner(cbs=ManifoldMixUp(seed=0))
    learn.model = nn.DataParallel(learn.model)
    learn.model.device_ids = [0, 1]  # as on two GPUs (without GPUs, `DataParallel` runs the model as it is)
    with pytest.raises(ValueError, match=r"can't mix inside `nn.DataParallel` on several GPUs.*distrib_ctx"): learn.fit(1)

@pytest.mark.parametrize('name', ['MixUp', 'CutMix', 'RICAP', 'ResizeMix', 'FMix', 'CutMixUp'])
def test_keypoints_and_boxes_are_refused(name):
    "fastai's `TensorPoint` and `TensorBBox` targets were averaged by the label weights: coordinates of neither image, silently"
    from fastai.vision.core import TensorPoint, TensorBBox, TensorImage
    from fastai.torch_core import TensorMultiCategory
    import fastmix.all as fm
    x = TensorImage(torch.rand(4, 3, 32, 32))
    pts = TensorPoint(torch.rand(4, 1, 2) * 2 - 1)
    with pytest.raises(TypeError, match="TensorPoint .fastai's PointBlock.: coordinates can't follow"):
        getattr(fm, name)(seed=0).mix_batch((x.clone(),), (pts,))
    boxes, lbl = TensorBBox(torch.rand(4, 1, 4)), TensorMultiCategory(torch.tensor([[1], [2], [3], [4]]))
    with pytest.raises(TypeError, match="TensorBBox .fastai's BBoxBlock."):
        getattr(fm, name)(seed=0).mix_batch((x.clone(),), (boxes, lbl))

def test_draw_ahead_and_mode_set_later_are_checked():
    "`draw_ahead` (a class default a user may set) must be an int >= 1, not an IndexError at the first batch; `mode` a string, not an array that compares element-wise"
    for bad in (0, -1, 2.5, True, '4'):
        with pytest.raises(ValueError, match=re.escape(f"`draw_ahead` must be an int >= 1, got {bad!r}")): MixUp().draw_ahead = bad
    with pytest.raises(ValueError, match=r"`mode` must be one of \('batch', 'sample'\), got array"): MixUp(mode=np.array(['sample']))
    cb = CutMix(seed=0); cb.draw_ahead = np.int64(1)
    learn = synth_learner(cbs=cb)
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)
    assert cb.draw_ahead == 1 and math.isfinite(learn.recorder.losses[-1])

# -- a new mixer written as `42_own_mixer` shows: what it may get wrong is named where it is wrong

class OwnSplit(MixHandler):
    "The tutorial's SplitMix, with hooks to get one thing wrong"
    checks = {**MixHandler.checks, 'lo': lambda v: None if callable(v) or 0 <= v < 1 else (_ for _ in ()).throw(ValueError(f"`lo` must be in [0, 1), got {v!r}"))}
    def __init__(self, lo=0., bad=None, **kw): super().__init__(**kw); self.lo,self.bad = lo,bad
    def draw(self, x, on):
        bs, (h, w) = x.shape[0], x.shape[-2:]
        c = np.maximum(self.randint(w + 1, 1), int(self.value(self.lo) * w))
        boxes = np.stack(np.broadcast_arrays(0, h, c, w), -1)
        lam = np.broadcast_to(c / w, bs)
        idx = to_device(self.pairs(bs), x.device)
        w8 = to_device(np.stack([lam, 1 - lam], 1).astype(np.float32), x.device)
        geom = BoxPaste(idx, boxes, (h, w))
        bad = self.bad
        if bad == 'weights (K, B)': w8 = w8.T.contiguous()
        if bad == 'idx (B, K)': idx = idx.T.contiguous()
        if bad == 'numpy weights': w8 = w8.numpy()
        if bad == 'a tuple': return idx, w8, geom
        if bad == 'a blend': geom = Blend(idx, w8)
        if bad == 'narrower': geom.apply = lambda t, inplace=False, scratch=None: t[..., :-1].clone()
        return Mix(idx, w8, geom)

@pytest.mark.parametrize('bad,exc,msg', [
    ('weights (K, B)', ValueError, r"OwnSplit\.draw: `Mix\.weights` must be a \(B, K\) = \(8, 2\) float tensor of label weights, got torch\.float32 of shape \(2, 8\)"),
    ('idx (B, K)', ValueError, r"OwnSplit\.draw: `Mix\.idx` must be a \(K, B\) = \(K, 8\) integer tensor of source indices, got torch\.int64 of shape \(8, 2\)"),
    ('numpy weights', ValueError, r"`Mix\.weights` must be .* got ndarray"),
    ('a tuple', TypeError, r"OwnSplit\.draw must return a `Mix` \(or `draws` a list of them\), got tuple"),
    ('a blend', TypeError, r"OwnSplit\.draw blends .* set `image_only = False` in the class, as MixUp does"),
    ('narrower', ValueError, r"(OwnSplit|MixChoice): its geometry \(BoxPaste\) made shape \(8, 3, (\d+), \d+\) of a tensor of shape \(8, 3, \2, \d+\): a mix keeps the shape"),
])
@pytest.mark.parametrize('how', ['mix_batch', 'fit', 'choice'])
def test_a_new_mixers_wrong_mix_is_named_at_its_first_draw(bad, exc, msg, how):
    "`check_mix` checks the first `Mix` a mixer draws (also under `MixChoice`), and the geometry's shape every batch: before, these failed far away (in the loss, or not at all)"
    if how == 'mix_batch':
        with pytest.raises(exc, match=msg): OwnSplit(bad=bad, seed=0).mix_batch(*map(lambda t: (t,), batch(8)))
    else:
        cb = OwnSplit(bad=bad, seed=0) if how == 'fit' else MixChoice([OwnSplit(bad=bad), CutMix()], probs=[1., 0.], seed=0)
        learn = synth_learner(cbs=cb)
        w0 = [p.detach().clone() for p in learn.model.parameters()]
        with pytest.raises(exc, match=msg), learn.no_bar(), learn.no_logging(): learn.fit(1)
        assert all(torch.equal(a, b) for a, b in zip(w0, learn.model.parameters()))  # before any step

def test_a_new_mixers_own_mistakes_in_its_class_are_named():
    "A check that returns nothing keeps the value as given; a schedule of a parameter is checked by that parameter's check, each value read; a subclass that skips `super().__init__` is told so at `before_fit`"
    m = OwnSplit(lo=.5, seed=0)
    assert m.lo == .5 and OwnSplit(seed=0).mix_batch((batch(8)[0],), (batch(8)[1],))[0] is not None
    m.lo = .25
    assert m.lo == .25  # (it was None: the check's return value)
    with pytest.raises(ValueError, match=r"`lo` must be in \[0, 1\), got 2"): m.lo = 2
    m = OwnSplit(lo=lambda pct: 2 * pct, seed=0)  # valid at the start, 2 at the end
    learn = synth_learner(cbs=m)
    with pytest.raises(ValueError, match=r"OwnSplit at training progress 0\.5.*`lo` must be in \[0, 1\), got 1\.0"), learn.no_bar(), learn.no_logging(): learn.fit(1)
    class NoInit(OwnSplit):
        def __init__(self, lo=0.): self.lo = lo  # forgot super().__init__()
    learn = synth_learner(cbs=NoInit())
    with pytest.raises(TypeError, match=r"NoInit\.__init__ must call `super\(\)\.__init__\(\.\.\.\)`"), learn.no_bar(), learn.no_logging(): learn.fit(1)

def test_a_schedule_shared_by_two_parameters_suits_both_and_draws_may_yield():
    "A schedule object held by `p` and `lo` is checked by both checks when read (before: by `p`'s only, the first in `checks`, which lets 1.0 through as `lo`); a `draws` that yields its mixes works, as before `check_mix`"
    one = lambda pct: 1.
    m = OwnSplit(lo=one, p=one, seed=0)
    learn = synth_learner(cbs=m)
    with pytest.raises(ValueError, match=r"OwnSplit at training progress 0: `lo` must be in \[0, 1\), got 1\.0"), learn.no_bar(), learn.no_logging(): learn.fit(1)
    half = lambda pct: .5
    m = OwnSplit(lo=half, p=half, seed=0)
    assert any(m.mix_batch(*map(lambda t: (t,), batch(8)))[0] is not None for _ in range(20))  # valid for both: mixes half of the batches
    class Yields(OwnSplit):
        def draws(self, x, n, on): yield from (OwnSplit.draw(self, x, None if on is None else on[i]) for i in range(n))
    x, y = batch(8)
    for cb in (Yields(seed=0), MixChoice([Yields(), CutMix()], probs=[1., 0.], seed=0)):
        mix, (xm,), _ = cb.mix_batch((x,), (y,))
        assert mix.K == 2 and xm.shape == x.shape
