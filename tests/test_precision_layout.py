"Precision and memory layout: bf16 and autocast, fp16 on CUDA, channels_last, non-contiguous inputs"
import math, pytest, torch
from torch import nn
import torch.nn.functional as F
from fastai.basics import *
from fastai.vision.all import *
from fastmix.all import *
from fastmix.core import *
from fastmix.geometry import *
from fastmix.testing import *
from fastmix.mixers import MIXERS
from helpers import CASES, INPUT_MIXERS, batch, synth_dls, synth_learner
from fastmix.demo import small_cnn

@pytest.mark.parametrize('method,mode', CASES)
@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16])
def test_cpu_autocast_bf16_keeps_batch_dtype(method, mode, dtype):
    x, y = batch(bs=8, dtype=dtype); yf = F.one_hot(y, 3).to(dtype)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        mix, (xm,), (ym, yfm) = MIXERS[method](mode=mode, seed=3).mix_batch((x,), (y, yf))
    assert xm.dtype == dtype and yfm.dtype == dtype and ym.dtype == torch.int64
    _, (xr,), (_, yfr) = MIXERS[method](mode=mode, seed=3).mix_batch((x,), (y, yf))  # the same without autocast
    assert torch.equal(xm, xr) and torch.equal(yfm, yfr)

@pytest.mark.parametrize('method,mode', CASES)
def test_bf16_images_mix_like_fp32(method, mode):
    "bf16 images stay bf16; cutting copies values exactly, blending is within bf16 rounding of the fp32 mix"
    x, y = batch(bs=8)
    xb16 = x.bfloat16()
    mix16, (xm16,), _ = MIXERS[method](mode=mode, seed=3).mix_batch((xb16,), (y,))
    mix32, (xm32,), _ = MIXERS[method](mode=mode, seed=3).mix_batch((xb16.float(),), (y,))
    assert xm16.dtype == torch.bfloat16 and torch.equal(mix16.idx, mix32.idx) and torch.equal(mix16.weights, mix32.weights)
    if mix16.geom.cuts and not getattr(mix16.geom, 'resized', False): assert torch.equal(xm16.float(), xm32)
    else: torch.testing.assert_close(xm16.float(), xm32, rtol=1e-2, atol=1e-2)  # blended or interpolated (ResizeMix)
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

@pytest.mark.parametrize('method', INPUT_MIXERS)
@pytest.mark.parametrize('order', [-1, 10], ids=['mix-inside-autocast', 'autocast-after-mix'])
def test_learner_bf16_autocast_loss_matches_fp32(method, order):
    cb = MIXERS[method](seed=0)
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

@pytest.mark.parametrize('method', MIXERS)
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
    learn = Learner(synth_dls(), nn.Sequential(small_cnn(3, 3).bfloat16(), ToFloat()), loss_func=CrossEntropyLossFlat(),
                    cbs=[MIXERS[method](seed=0), ToBf16(), Spy()])
    learn.fit(1, 1e-2)
    assert dtypes and all(d == torch.bfloat16 for d in dtypes)
    assert all(math.isfinite(float(l)) for l in learn.recorder.losses)

@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs CUDA')
@pytest.mark.parametrize('method,mode', CASES)
def test_cuda_fp16_autocast(method, mode):
    x, y = batch(bs=8)
    xh = x.cuda().half().contiguous(memory_format=torch.channels_last)
    model = small_cnn(3, 3).cuda()
    with torch.autocast('cuda', dtype=torch.float16):
        mix, (xm,), _ = MIXERS[method](mode=mode, seed=3).mix_batch((xh,), (y.cuda(),), inplace=True)
        assert xm.dtype == torch.float16 and xm.is_contiguous(memory_format=torch.channels_last)
        loss = mixed_loss(CrossEntropyLossFlat(), model(xm).float(), [(y.cuda()[mix.idx[k]],) for k in range(mix.K)], mix.weights)
    _, (xr,), _ = MIXERS[method](mode=mode, seed=3).mix_batch((x.half(),), (y,))
    assert torch.isfinite(loss) and torch.equal(xm.cpu(), xr)

@pytest.mark.parametrize('method,mode', CASES)
@pytest.mark.parametrize('inplace', [False, True])
@pytest.mark.parametrize('c', [1, 3])
def test_channels_last_stays_channels_last(method, mode, inplace, c):
    x = provenance_batch(7, c, 9, 8, dtype=torch.float32)
    xcl = x.contiguous(memory_format=torch.channels_last)
    mix, (xm,), _ = MIXERS[method](mode=mode, seed=1).mix_batch((xcl,), (torch.arange(7),), inplace=inplace)
    assert xm.is_contiguous(memory_format=torch.channels_last)
    _, (xr,), _ = MIXERS[method](mode=mode, seed=1).mix_batch((x,), (torch.arange(7),))
    assert torch.equal(xm, xr)

@pytest.mark.parametrize('method', MIXERS)
def test_learner_channels_last_batches_stay_channels_last(method):
    class ToCL(Callback):
        order = -1
        def before_batch(self): self.learn.xb = (self.xb[0].contiguous(memory_format=torch.channels_last),)
    layouts = []
    class Spy(Callback):
        order = 1
        def before_batch(self):
            if self.training: layouts.append(self.xb[0].is_contiguous(memory_format=torch.channels_last))
    learn = synth_learner(cbs=[MIXERS[method](mode='sample', seed=0), ToCL(), Spy()])
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
    mix, (xm,), _ = MIXERS[method](mode=mode, seed=2).mix_batch((v,), (torch.arange(6),), inplace=inplace)
    _, (xr,), _ = MIXERS[method](mode=mode, seed=2).mix_batch((ref,), (torch.arange(6),))
    assert torch.equal(xm, xr)
    if is_view or not inplace:  # a view is never written into: it may be a dataset's memory
        assert torch.equal(v, ref) and (not is_view or torch.equal(v._base, base))
