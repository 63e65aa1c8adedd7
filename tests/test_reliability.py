"""Reliability (issue 5): clear errors for bad input, edge cases that are not errors, precision and memory layout,
several inputs, repeatability and RNG isolation, and long runs without leaks or NaNs"""
import gc, os, re, math, random, types, warnings, pytest, numpy as np, torch
import torch.nn.functional as F
from torch import nn
from fastai.basics import *
from fastai.vision.all import *
from fastmix.all import *
from fastmix.core import *
from fastmix.geometry import *
from fastmix.testing import *
from helpers import *
from mixcheck import check_weights, check_provenance, check_untouched_rows

MODES = ('batch', 'sample')
CASES = [(m, mode) for m in METHODS for mode in MODES]
CUTS = {'cutmix': CutMix, 'ricap': RICAP}
PARAM = {'mixup': 'alpha', 'cutmix': 'alpha', 'ricap': 'beta'}

@pytest.fixture(autouse=True, scope='module')
def one_thread():
    "2 shared cores: one intra-op thread is faster than two contending ones for these tiny tensors"
    n = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)

def batch(bs=6, c=3, h=8, w=8, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(bs, c, h, w, generator=g).to(dtype), torch.randint(0, 3, (bs,), generator=g)

# ---------------------------------------------------------------------------------------------------------------------
# 1. Bad input: a clear error naming the argument and the value
# ---------------------------------------------------------------------------------------------------------------------
BAD_ARGS = [  # (class, kwargs, exception, regex the message must match)
    (MixUp,  dict(alpha=0),              ValueError, r"`alpha` must be in \(0, .*got 0$"),
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

@pytest.mark.parametrize('method', METHODS)
def test_schedule_going_out_of_range_fails_at_first_batch(method):
    "A schedule can only be checked when it is evaluated: at the first batch, naming the hyper-parameter and value"
    x, y = batch()
    with pytest.raises(ValueError, match=rf"`{PARAM[method]}` must be in \(0, .*got -1\.0$"):
        METHODS[method](**{PARAM[method]: lambda pct: -1.}, seed=0).mix_batch((x,), (y,))
    with pytest.raises(ValueError, match=r"`p` must be in \[0, 1\], got 2\.0$"):
        METHODS[method](p=lambda pct: 2., seed=0).mix_batch((x,), (y,))

@pytest.mark.parametrize('method,shape', [('cutmix', (4, 8, 8)), ('cutmix', (4, 3)), ('ricap', (4, 1, 3, 8, 8)),
                                          ('ricap', (4, 8, 8))])
def test_non_4d_batch_for_cut_methods(method, shape):
    x = torch.randn(shape)
    name = CUTS[method].__name__
    with pytest.raises(ValueError, match=rf"{name} mixes image batches of shape \(B, C, H, W\), got shape {re.escape(str(tuple(shape)))}$"):
        CUTS[method](seed=0).mix_batch((x,), (torch.arange(4),))

@pytest.mark.parametrize('method', METHODS)
@pytest.mark.parametrize('dtype', [torch.uint8, torch.int64, torch.bool])
def test_integer_and_bool_images(method, dtype):
    x = torch.zeros(4, 3, 8, 8, dtype=dtype)
    with pytest.raises(TypeError, match=rf"must be a float tensor, got dtype {re.escape(str(dtype))}: convert images"):
        METHODS[method](seed=0).mix_batch((x,), (torch.arange(4),))

def test_input_not_a_tensor():
    with pytest.raises(TypeError, match=r"the input batch must be a Tensor, got ndarray$"):
        CutMix(seed=0).mix_batch((np.zeros((4, 3, 8, 8), dtype=np.float32),), (torch.arange(4),))

@pytest.mark.parametrize('method', METHODS)
def test_target_batch_size_differs(method):
    x, y = batch(bs=4)
    with pytest.raises(ValueError, match=r"target 0 has batch size 5 but the input batch has 4$"):
        METHODS[method](seed=0).mix_batch((x,), (torch.arange(5),))
    with pytest.raises(ValueError, match=r"target 1 has batch size 3 but the input batch has 4$"):
        METHODS[method](seed=0).mix_batch((x,), (y, torch.zeros(3, 2)))

@pytest.mark.parametrize('method', METHODS)
def test_second_input_batch_size_differs(method):
    """A second input with another batch size is a broken batch: it must be a clear error. (CutMix and RICAP crash
    deep inside the geometry with an IndexError or a reshape error; MixUp silently leaves it unmixed.)"""
    x, y = batch(bs=4)
    with pytest.raises(ValueError, match=r"(?i)input 1 .*batch size 3.* 4"):
        METHODS[method](seed=0).mix_batch((x, torch.randn(3, 3, 8, 8)), (y,))

class FloatTargets(Callback):
    "Turn the class indices into floats before the mixer sees them"
    order = -1
    def before_batch(self): self.learn.yb = (self.yb[0].float(),)

@pytest.mark.parametrize('method', METHODS)
def test_y_int_loss_with_float_targets(method):
    learn = synth_learner(cbs=[METHODS[method](seed=0), FloatTargets()], loss_func=CrossEntropyLossFlat())
    with pytest.raises(TypeError, match=r"takes class indices \(`y_int`\) but target 0 is torch\.float32"):
        learn.fit(1, 1e-2)

# ---------------------------------------------------------------------------------------------------------------------
# Edge cases that are not errors
# ---------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('method,mode', CASES)
def test_batch_size_one_is_left_alone(method, mode):
    x, y = batch(bs=1); x0 = x.clone()
    mix, (xm,), (ym,) = METHODS[method](mode=mode, seed=0).mix_batch((x,), (y,), inplace=True)
    assert mix is None and xm is x and ym is y and torch.equal(x, x0)

@pytest.mark.parametrize('method,mode', CASES)
@pytest.mark.parametrize('bs', [2, 3, 5, 7])
def test_small_and_odd_batch_sizes(method, mode, bs):
    x = provenance_batch(bs, 3, 9, 7)
    cb = METHODS[method](mode=mode, seed=bs)
    for _ in range(4):  # several draws
        mix, (xm,), _ = cb.mix_batch((x,), (torch.arange(bs),))
        assert mix is not None
        check_provenance(x, xm, mix)
        check_untouched_rows(x, xm, mix)

@pytest.mark.parametrize('method,mode', CASES)
@pytest.mark.parametrize('hw', [(1, 1), (1, 9), (9, 1), (2, 1)])
def test_tiny_images(method, mode, hw):
    "1×1 and 1×N images: a box or tile has zero or whole rows, and the weights are still the exact pixel shares"
    x = provenance_batch(6, 2, *hw)
    cb = METHODS[method](mode=mode, seed=sum(hw))
    for _ in range(6):
        mix, (xm,), _ = cb.mix_batch((x,), (torch.arange(6),))
        check_provenance(x, xm, mix)
        if hw == (1, 1) and mix.geom.cuts: assert set(mix.weights.flatten().tolist()) <= {0., 1.}

def fixed_beta(lam):
    return lambda name, a, n: np.full(n, float(lam))

@pytest.mark.parametrize('mode', MODES)
@pytest.mark.parametrize('lam', [0., 1.])
@pytest.mark.parametrize('dominant', [False, True])
def test_mixup_lambda_exactly_0_or_1(monkeypatch, mode, lam, dominant):
    x, y = batch(bs=7)
    cb = MixUp(mode=mode, seed=0, keep_dominant=dominant)
    monkeypatch.setattr(cb, 'sample_beta', fixed_beta(lam))
    mix, (xm,), _ = cb.mix_batch((x,), (y,))
    own = 1. if dominant else lam  # keep_dominant: λ ← max(λ, 1−λ) = 1
    assert (mix.weights == torch.tensor([own, 1 - own])).all()
    assert torch.equal(xm, x if own == 1 else x[mix.idx[1]])  # exactly one image, no rounding

@pytest.mark.parametrize('mode', MODES)
@pytest.mark.parametrize('lam', [0., 1.])
def test_cutmix_lambda_exactly_0_or_1(monkeypatch, mode, lam):
    x = provenance_batch(7, 3, 9, 8)
    cb = CutMix(mode=mode, seed=0)
    monkeypatch.setattr(cb, 'sample_beta', fixed_beta(lam))
    monkeypatch.setattr(cb, 'randint', lambda hi, n: np.full(n, hi // 2))  # centred: a λ = 0 box is the whole image
    mix, (xm,), _ = cb.mix_batch((x,), (torch.arange(7),))
    check_provenance(x, xm, mix)
    assert (mix.weights == torch.tensor([lam, 1 - lam])).all()
    assert torch.equal(xm, x if lam == 1 else x[mix.idx[1]])

@pytest.mark.parametrize('mode', MODES)
@pytest.mark.parametrize('lam', [0., 1.])
def test_ricap_boundary_at_the_corner(monkeypatch, mode, lam):
    "β draws of 0 or 1 put the boundary in a corner: one tile is the whole image"
    x = provenance_batch(7, 3, 9, 8)
    cb = RICAP(mode=mode, seed=0)
    monkeypatch.setattr(cb, 'sample_beta', fixed_beta(lam))
    mix, (xm,), _ = cb.mix_batch((x,), (torch.arange(7),))
    check_provenance(x, xm, mix)
    k = 0 if lam == 1 else 3
    assert (mix.weights == F.one_hot(torch.tensor(k), 4).float()).all()
    assert torch.equal(xm, x[mix.idx[k]])

H, W = 9, 8
BORDER_CENTRES = [(0, 0), (0, W - 1), (H - 1, 0), (H - 1, W - 1), (0, W // 2), (H - 1, W // 2), (H // 2, 0), (H // 2, W - 1)]

@pytest.mark.parametrize('lam', [0., .3, .75, .99])
def test_cutmix_boxes_clipped_at_every_border(lam):
    cy, cx = map(np.array, zip(*BORDER_CENTRES))
    boxes, lam2 = cutmix_boxes(np.full(len(cy), lam), cy, cx, H, W)
    bh, bw = math.floor(H * math.sqrt(1 - lam) + .5), math.floor(W * math.sqrt(1 - lam) + .5)
    for (y0, y1, x0, x1), c_y, c_x, l in zip(boxes.tolist(), cy, cx, lam2):
        # the unclipped box cut to the image
        assert (y0, y1) == (max(c_y - bh // 2, 0), min(c_y - bh // 2 + bh, H))
        assert (x0, x1) == (max(c_x - bw // 2, 0), min(c_x - bw // 2 + bw, W))
        assert 0 <= y0 <= y1 <= H and 0 <= x0 <= x1 <= W
        assert l == pytest.approx(1 - (y1 - y0) * (x1 - x0) / (H * W), abs=1e-12)
    assert (boxes[:, 0] == 0).any() and (boxes[:, 1] == H).any() and (boxes[:, 2] == 0).any() and (boxes[:, 3] == W).any()

@pytest.mark.parametrize('centre', BORDER_CENTRES)
@pytest.mark.parametrize('mode', MODES)
def test_cutmix_clipped_box_pixels_and_weights(monkeypatch, centre, mode):
    x = provenance_batch(5, 2, H, W)
    cb = CutMix(mode=mode, seed=0)
    monkeypatch.setattr(cb, 'sample_beta', fixed_beta(.3))
    vals = iter(centre)
    monkeypatch.setattr(cb, 'randint', lambda hi, n: np.full(n, next(vals)))
    mix, (xm,), _ = cb.mix_batch((x,), (torch.arange(5),))
    check_provenance(x, xm, mix)
    y0, y1, x0, x1 = mix.geom.rects[0, 1, :4].tolist()
    assert y0 == 0 or y1 == H or x0 == 0 or x1 == W  # the box was clipped at a border
    assert (mix.weights[:, 1] < 1 - .3).all()  # so the partner's share is below 1−λ

@pytest.mark.parametrize('method,mode', CASES)
@pytest.mark.parametrize('inplace', [False, True])
def test_p0_is_bit_for_bit_untouched(method, mode, inplace):
    x, y = batch(bs=8); yf = F.one_hot(y, 3).float(); x0, yf0 = x.clone(), yf.clone()
    cb = METHODS[method](p=0., mode=mode, seed=0)
    for _ in range(20):
        mix, (xm,), (ym, yfm) = cb.mix_batch((x,), (y, yf), inplace=inplace)
        assert mix is None and xm is x and ym is y and yfm is yf
    assert torch.equal(x, x0) and torch.equal(yf, yf0)

@pytest.mark.parametrize('method,mode', CASES)
def test_p1_mixes_every_batch_and_image(monkeypatch, method, mode):
    x = provenance_batch(8, 3, 8, 8)
    cb = METHODS[method](p=1., mode=mode, seed=0)
    monkeypatch.setattr(cb, 'sample_beta', fixed_beta(.5))  # λ = 0.5: a mixed image has no weight of 1
    for _ in range(20):
        mix, (xm,), _ = cb.mix_batch((x,), (torch.arange(8),))
        assert mix is not None
        assert (mix.weights.max(1).values < 1).all()  # no image was left out
        check_provenance(x, xm, mix)

# ---------------------------------------------------------------------------------------------------------------------
# 2. Precision and memory layout
# ---------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('method,mode', CASES)
@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16])
def test_cpu_autocast_bf16_keeps_batch_dtype(method, mode, dtype):
    x, y = batch(bs=8, dtype=dtype); yf = F.one_hot(y, 3).to(dtype)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        mix, (xm,), (ym, yfm) = METHODS[method](mode=mode, seed=3).mix_batch((x,), (y, yf))
    assert xm.dtype == dtype and yfm.dtype == dtype and ym.dtype == torch.int64
    _, (xr,), (_, yfr) = METHODS[method](mode=mode, seed=3).mix_batch((x,), (y, yf))  # the same without autocast
    assert torch.equal(xm, xr) and torch.equal(yfm, yfr)

@pytest.mark.parametrize('method,mode', CASES)
def test_bf16_images_mix_like_fp32(method, mode):
    "bf16 images stay bf16; cutting copies values exactly, blending is within bf16 rounding of the fp32 mix"
    x, y = batch(bs=8)
    xb16 = x.bfloat16()
    mix16, (xm16,), _ = METHODS[method](mode=mode, seed=3).mix_batch((xb16,), (y,))
    mix32, (xm32,), _ = METHODS[method](mode=mode, seed=3).mix_batch((xb16.float(),), (y,))
    assert xm16.dtype == torch.bfloat16 and torch.equal(mix16.idx, mix32.idx) and torch.equal(mix16.weights, mix32.weights)
    if mix16.geom.cuts: assert torch.equal(xm16.float(), xm32)
    else: torch.testing.assert_close(xm16.float(), xm32, rtol=1e-2, atol=1e-2)
    # the mixed loss on a bf16 prediction is finite and close to the fp32 one
    pred = torch.randn(8, 3, generator=torch.Generator().manual_seed(1))
    ybs = [(y[mix32.idx[k]],) for k in range(mix32.K)]
    l16 = mixed_loss(CrossEntropyLossFlat(), pred.bfloat16(), ybs, mix16.weights)
    l32 = mixed_loss(CrossEntropyLossFlat(), pred, ybs, mix32.weights)
    assert torch.isfinite(l16) and l16.item() == pytest.approx(l32.item(), rel=2e-2)

class CpuAutocast(Callback):
    "What fastai's `MixedPrecision` does, on the CPU: in fastai 2.8 `to_bf16` opens `autocast('cuda')`, a no-op here"
    def __init__(self, order): self.order,self.pred_dtypes = order,[]
    def before_batch(self): self.ac = torch.autocast('cpu', dtype=torch.bfloat16); self.ac.__enter__()
    def after_pred(self): self.pred_dtypes.append(self.pred.dtype); self.learn.pred = to_float(self.pred)
    def after_loss(self): self.ac.__exit__(None, None, None)
    def after_cancel_batch(self): self.ac.__exit__(None, None, None)

@pytest.mark.parametrize('method', METHODS)
@pytest.mark.parametrize('order', [-1, 10], ids=['mix-inside-autocast', 'autocast-after-mix'])
def test_learner_bf16_autocast_loss_matches_fp32(method, order):
    cb = METHODS[method](seed=0)
    ac = CpuAutocast(order)
    got = []
    class Check(Callback):
        order = 20
        def before_batch(self):
            if self.training: got.append({'x': self.xb[0].dtype})
        def after_loss(self):
            if not self.training: return
            mix = cb.mix
            with torch.autocast('cpu', enabled=False), torch.no_grad():
                pred32 = self.model(self.xb[0].float())
                exp = mixed_loss(self.learn.loss_func, pred32, [(self.yb[0][mix.idx[k]],) for k in range(mix.K)], mix.weights)
            got[-1].update(loss=self.loss_grad.item(), exp=exp.item(), dtype=self.loss_grad.dtype)
    learn = synth_learner(cbs=[cb, ac, Check()])
    lf = learn.loss_func
    learn.fit(1, 1e-2)
    assert learn.loss_func is lf and got
    assert all(g['x'] == torch.float32 for g in got)  # the mixer did not change the batch's dtype
    assert torch.bfloat16 in ac.pred_dtypes  # the model really ran in bf16
    for g in got:
        assert math.isfinite(g['loss']) and g['loss'] == pytest.approx(g['exp'], rel=3e-2, abs=1e-2)

@pytest.mark.parametrize('method', METHODS)
def test_learner_bf16_images_and_model(method):
    "A bf16 model fed bf16 images: the mixed batch stays bf16 and the loss is finite"
    class ToBf16(Callback):
        order = -1
        def before_batch(self): self.learn.xb = (self.xb[0].bfloat16(),)
    dtypes = []
    class Spy(Callback):
        order = 1
        def before_batch(self):
            if self.training: dtypes.append(self.xb[0].dtype)
    class ToFloat(nn.Module):  # fastai's loss smoothing wants a float loss
        def forward(self, p): return p.float()
    set_seed(0, reproducible=True)
    learn = Learner(synth_dls(), nn.Sequential(tiny_cnn().bfloat16(), ToFloat()), loss_func=CrossEntropyLossFlat(),
                    cbs=[METHODS[method](seed=0), ToBf16(), Spy()])
    learn.fit(1, 1e-2)
    assert dtypes and all(d == torch.bfloat16 for d in dtypes)
    assert all(math.isfinite(float(l)) for l in learn.recorder.losses)

@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
@pytest.mark.parametrize('method,mode', CASES)
def test_cuda_fp16_autocast(method, mode):
    x, y = batch(bs=8)
    xh = x.cuda().half().contiguous(memory_format=torch.channels_last)
    model = tiny_cnn().cuda()
    with torch.autocast('cuda', dtype=torch.float16):
        mix, (xm,), _ = METHODS[method](mode=mode, seed=3).mix_batch((xh,), (y.cuda(),), inplace=True)
        assert xm.dtype == torch.float16 and xm.is_contiguous(memory_format=torch.channels_last)
        loss = mixed_loss(CrossEntropyLossFlat(), model(xm).float(), [(y.cuda()[mix.idx[k]],) for k in range(mix.K)], mix.weights)
    _, (xr,), _ = METHODS[method](mode=mode, seed=3).mix_batch((x.half(),), (y,))
    assert torch.isfinite(loss) and torch.equal(xm.cpu(), xr)

@pytest.mark.parametrize('method,mode', CASES)
@pytest.mark.parametrize('inplace', [False, True])
@pytest.mark.parametrize('c', [1, 3])
def test_channels_last_stays_channels_last(method, mode, inplace, c):
    x = provenance_batch(7, c, 9, 8, dtype=torch.float32)
    xcl = x.contiguous(memory_format=torch.channels_last)
    mix, (xm,), _ = METHODS[method](mode=mode, seed=1).mix_batch((xcl,), (torch.arange(7),), inplace=inplace)
    assert xm.is_contiguous(memory_format=torch.channels_last)
    _, (xr,), _ = METHODS[method](mode=mode, seed=1).mix_batch((x,), (torch.arange(7),))
    assert torch.equal(xm, xr)

@pytest.mark.parametrize('method', METHODS)
def test_learner_channels_last_batches_stay_channels_last(method):
    class ToCL(Callback):
        order = -1
        def before_batch(self): self.learn.xb = (self.xb[0].contiguous(memory_format=torch.channels_last),)
    layouts = []
    class Spy(Callback):
        order = 1
        def before_batch(self):
            if self.training: layouts.append(self.xb[0].is_contiguous(memory_format=torch.channels_last))
    learn = synth_learner(cbs=[METHODS[method](mode='sample', seed=0), ToCL(), Spy()])
    learn.model = learn.model.to(memory_format=torch.channels_last)
    learn.fit(1, 1e-2)
    assert layouts and all(layouts)

def non_contiguous(x):
    "Views of `x`'s values that are not contiguous"
    bs, c, h, w = x.shape
    big = torch.zeros(2 * bs, c + 1, h + 2, w + 3)
    big[::2, 1:, 1:h+1, 2:w+2] = x
    return {'transposed': x.transpose(2, 3).contiguous().transpose(2, 3),
            'sliced': big[::2, 1:, 1:h+1, 2:w+2],
            'expanded': x[:1].expand(bs, c, h, w),
            'channel-permuted': x.permute(1, 0, 2, 3).contiguous().permute(1, 0, 2, 3),
            'strided-copy': x.transpose(2, 3).contiguous().transpose(2, 3).clone()}  # not a view, not contiguous

@pytest.mark.parametrize('method,mode', CASES)
@pytest.mark.parametrize('kind', ['transposed', 'sliced', 'expanded', 'channel-permuted', 'strided-copy'])
@pytest.mark.parametrize('inplace', [False, True])
def test_non_contiguous_inputs_same_values(method, mode, kind, inplace):
    x = provenance_batch(6, 3, 9, 8, dtype=torch.float32)
    v = non_contiguous(x)[kind]
    assert not v.is_contiguous() and torch.equal(v, x if kind != 'expanded' else x[:1].expand_as(x))
    ref, is_view = v.contiguous(), v._base is not None
    base = v._base.clone() if is_view else None
    mix, (xm,), _ = METHODS[method](mode=mode, seed=2).mix_batch((v,), (torch.arange(6),), inplace=inplace)
    _, (xr,), _ = METHODS[method](mode=mode, seed=2).mix_batch((ref,), (torch.arange(6),))
    assert torch.equal(xm, xr)
    if is_view or not inplace:  # a view is never written into: it may be a dataset's memory
        assert torch.equal(v, ref) and (not is_view or torch.equal(v._base, base))

# ---------------------------------------------------------------------------------------------------------------------
# 3. Several inputs
# ---------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('method,mode', CASES)
@pytest.mark.parametrize('c2', [3, 1], ids=['same-channels', 'other-channels'])
def test_two_image_inputs_share_geometry_and_weights(method, mode, c2):
    "A second image of the same H×W gets exactly the geometry and the weights of the first"
    bs, h, w = 6, 10, 13
    x = provenance_batch(bs, 3, h, w)
    x2 = x[:, :c2] * 2 + 1  # another image with the same pixels' provenance
    mix, (xm, x2m), _ = METHODS[method](mode=mode, seed=5).mix_batch((x, x2), (torch.arange(bs),))
    check_provenance(x, xm, mix)
    assert x2m.shape == x2.shape
    assert not torch.equal(x2m, x2), "the second image input was left unmixed while the first was mixed"
    if mix.geom.cuts: assert torch.equal(x2m, xm[:, :c2] * 2 + 1)
    else: torch.testing.assert_close(x2m, xm[:, :c2] * 2 + 1)  # a blend of affine images is the affine blend

@pytest.mark.parametrize('method,mode', CASES)
def test_tabular_input_is_left_alone(method, mode):
    bs = 6
    x = provenance_batch(bs, 3, 8, 8)
    tab, tab_int = torch.randn(bs, 5, dtype=torch.float64), torch.randint(0, 9, (bs, 4))
    tab0 = tab.clone()
    mix, (xm, tabm, tabim), _ = METHODS[method](mode=mode, seed=5).mix_batch((x.clone(), tab, tab_int), (torch.arange(bs),), inplace=True)
    assert mix is not None and tabm is tab and tabim is tab_int and torch.equal(tab, tab0)
    check_provenance(x, xm, mix)

def get_x2(i): return X[i] * 2 + 1
def get_tab(i): return X[i].mean((1, 2))

class TwoInputNet(nn.Module):
    "An image, a second image of the same size and a tabular input"
    def __init__(self, n_cls=3):
        super().__init__()
        self.a, self.b = tiny_cnn(n_cls), tiny_cnn(n_cls)
        self.t = nn.Linear(3, n_cls)
    def forward(self, x, x2, t): return self.a(x) + self.b(x2) + self.t(t)

@pytest.mark.parametrize('method', METHODS)
def test_learner_with_two_image_inputs_and_a_tabular_one_fits(method):
    db = DataBlock(blocks=(TransformBlock, TransformBlock, TransformBlock, CategoryBlock), n_inp=3,
                   getters=[get_x, get_x2, get_tab, get_y], splitter=IndexSplitter(list(range(48, 64))))
    dls = db.dataloaders(list(range(64)), bs=8, shuffle=True, seed=0)
    before, checks = [], []
    class Before(Callback):
        order = -1
        def before_batch(self):
            if self.training: before.append([t.clone() for t in self.xb])
    class After(Callback):
        order = 1
        def before_batch(self):
            if not self.training: return
            (x, x2, t), (x0, x20, t0) = self.xb, before[-1]
            checks.append((torch.allclose(x2, x * 2 + 1, atol=1e-5), torch.equal(t, t0), not torch.equal(x, x0)))
    cb = METHODS[method](seed=0)
    set_seed(0, reproducible=True)
    learn = Learner(dls, TwoInputNet(), loss_func=CrossEntropyLossFlat(), cbs=[cb, Before(), After()])
    lf = learn.loss_func
    learn.fit(2, 1e-2)
    assert learn.loss_func is lf
    assert len(checks) == 12 and all(all(c) for c in checks), checks
    assert all(math.isfinite(float(l)) for l in learn.recorder.losses)
    assert all(math.isfinite(v) for v in learn.validate())

# ---------------------------------------------------------------------------------------------------------------------
# 5. Repeatability and RNG isolation
# ---------------------------------------------------------------------------------------------------------------------
def run_batches(method, mode, seed, n=6, p=.8):
    cb = METHODS[method](mode=mode, seed=seed, p=p)
    out = []
    for i in range(n):
        x, y = batch(bs=7, seed=i)
        mix, (xm,), (yfm,) = cb.mix_batch((x,), (F.one_hot(y, 3).float(),))
        out.append((xm, yfm) if mix is None else (xm, yfm, mix.idx, mix.weights, getattr(mix.geom, 'rects', None)))
    return out

def same(a, b):
    if len(a) != len(b): return False
    for u, v in zip(a, b):
        if len(u) != len(v): return False
        for s, t in zip(u, v):
            if isinstance(s, np.ndarray) or isinstance(t, np.ndarray):
                if not np.array_equal(s, t): return False
            elif s is None or t is None:
                if s is not t: return False
            elif not torch.equal(s, t): return False
    return True

@pytest.mark.parametrize('method,mode', CASES)
def test_same_seed_bit_identical(method, mode):
    torch.manual_seed(1); np.random.seed(1); random.seed(1)
    a = run_batches(method, mode, seed=11)
    torch.manual_seed(2); np.random.seed(2); random.seed(2)  # global seeds play no part
    b = run_batches(method, mode, seed=11)
    assert same(a, b)

@pytest.mark.parametrize('method,mode', CASES)
def test_different_seeds_differ(method, mode):
    a, b = run_batches(method, mode, seed=11), run_batches(method, mode, seed=12)
    assert not same(a, b)
    assert any(len(u) > 2 and len(v) > 2 and not torch.equal(u[3], v[3]) for u, v in zip(a, b))  # weights differ

@pytest.mark.parametrize('method,mode', CASES)
def test_global_rngs_untouched(method, mode):
    "Neither creating a mixer with a seed nor mixing consumes or reseeds torch's, numpy's or Python's global RNG"
    x, y = batch(bs=8)
    torch.manual_seed(123); np.random.seed(123); random.seed(123)
    t0, n0, r0 = torch.get_rng_state(), np.random.get_state(), random.getstate()
    cb = METHODS[method](mode=mode, seed=0, p=.7)
    for _ in range(5): cb.mix_batch((x,), (y,)); cb.mix_batch((x.clone(),), (y,), inplace=True)
    t1, n1, r1 = torch.get_rng_state(), np.random.get_state(), random.getstate()
    assert torch.equal(t0, t1)
    assert n0[0] == n1[0] and np.array_equal(n0[1], n1[1]) and n0[2:] == n1[2:]
    assert r0 == r1

# ---------------------------------------------------------------------------------------------------------------------
# 6. Long runs: no memory growth, no NaN
# ---------------------------------------------------------------------------------------------------------------------
def rss_bytes(): return int(open('/proc/self/statm').read().split()[1]) * os.sysconf('SC_PAGE_SIZE')
def n_tensors():
    with warnings.catch_warnings():  # some module-level proxies warn when `isinstance` looks at them
        warnings.simplefilter('ignore')
        return sum(1 for o in gc.get_objects() if isinstance(o, torch.Tensor))

@pytest.mark.skipif(not os.path.exists('/proc/self/statm'), reason='RSS from /proc (Linux)')
@pytest.mark.parametrize('method', METHODS)
def test_long_run_no_memory_growth_no_nan(method):
    """1,000 training steps through the callback's own events (batch and sample mode alternating, p < 1 in sample mode,
    in-place mixing as in training), a tiny CNN trained on the mixed loss: the resident memory and the number of live
    tensors after step 1,000 are those after step 100, and no output or loss is ever NaN"""
    torch.manual_seed(0)
    model, lf = tiny_cnn(), CrossEntropyLossFlat()
    opt = torch.optim.SGD(model.parameters(), lr=1e-2)
    learn = types.SimpleNamespace(loss_func=lf, training=True, epoch=0)  # what the callback reads from its Learner
    cbs = [METHODS[method](mode='batch', seed=0), METHODS[method](mode='sample', p=.7, seed=1)]
    for cb in cbs: cb.learn = learn
    n_tensors()  # the list of all objects it makes takes memory once: make it before the first measure
    levels, n_mixed = [], 0
    for i in range(1000):
        cb = cbs[i % 2]
        learn.xb, learn.yb = (torch.randn(8, 3, 8, 8),), (torch.randint(0, 3, (8,)),)
        cb.before_batch()
        n_mixed += cb.mix is not None
        assert torch.isfinite(learn.xb[0]).all()
        learn.pred = model(*learn.xb)
        learn.loss_grad = lf(learn.pred, *learn.yb)
        cb.after_loss()
        assert torch.isfinite(learn.loss_grad), i
        opt.zero_grad(); learn.loss_grad.backward(); opt.step()
        cb.after_batch()
        if i in (99, 999): gc.collect(); levels.append((rss_bytes(), n_tensors()))
    (rss0, nt0), (rss1, nt1) = levels
    assert nt1 == nt0, f"{nt1 - nt0} more live tensors"
    assert rss1 - rss0 < 2 * 2**20, f"resident memory grew by {(rss1 - rss0) / 2**20:.1f} MiB"
    assert n_mixed > 800 and all(cb.mix is None for cb in cbs)
    assert all(torch.isfinite(p).all() for p in model.parameters())
