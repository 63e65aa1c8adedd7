"The mixed loss: equal to cross-entropy on soft labels (value and gradient), and Σ_k w_k·loss(y[π_k]) for any y_int loss"
import torch, pytest
import torch.nn.functional as F
from fastai.basics import *
from fastai.losses import LabelSmoothingCrossEntropy, LabelSmoothingCrossEntropyFlat, FocalLossFlat
from fastmix.all import *
from fastmix.core import *
from fastmix.geometry import *
from fastmix.testing import *

def _case(K, bs=7, n_cls=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    pred = torch.randn(bs, n_cls, generator=g, dtype=torch.float64)
    y = torch.randint(0, n_cls, (bs,), generator=g)
    idx = torch.stack([torch.randperm(bs, generator=g) for _ in range(K)])
    w = torch.rand(bs, K, generator=g, dtype=torch.float64); w = w / w.sum(1, keepdim=True)
    return pred, y, idx, w

@pytest.mark.parametrize('K', [2, 4])
def test_mixed_ce_equals_soft_ce_value_and_grad(K):
    pred, y, idx, w = _case(K)
    p1, p2 = pred.clone().requires_grad_(), pred.clone().requires_grad_()
    ours = mixed_loss(CrossEntropyLossFlat(), p1, [(y[idx[k]],) for k in range(K)], w)
    soft = sum(w[:, k, None] * F.one_hot(y[idx[k]], 5) for k in range(K))
    ref = F.cross_entropy(p2, soft)
    ours.backward(); ref.backward()
    torch.testing.assert_close(ours, ref); torch.testing.assert_close(p1.grad, p2.grad)

@pytest.mark.parametrize('lf', [LabelSmoothingCrossEntropyFlat(eps=.1), FocalLossFlat(gamma=2.),
                                CrossEntropyLossFlat(reduction='sum'), LabelSmoothingCrossEntropyFlat(reduction='sum')])
@pytest.mark.parametrize('K', [2, 4])
def test_y_int_losses_weighted_sum(lf, K):
    pred, y, idx, w = _case(K, seed=K)
    ours = mixed_loss(lf, pred, [(y[idx[k]],) for k in range(K)], w)
    red = getattr(lf, 'reduction', 'mean')
    per = [torch.stack([lf.__class__(**({'eps': lf.eps} if hasattr(lf, 'eps') else {'gamma': lf.func.gamma} if hasattr(lf.func, 'gamma') else {}),
                                   reduction='sum')(pred[b:b+1], y[idx[k, b]:idx[k, b]+1]) for b in range(len(y))]) for k in range(K)]
    exp = sum(w[:, k] * per[k] for k in range(K))
    torch.testing.assert_close(ours, exp.mean() if red == 'mean' else exp.sum())
    assert getattr(lf, 'reduction', 'mean') == red  # NoneReduce restored the loss's own reduction

def test_reduction_none_keeps_per_item():
    pred, y, idx, w = _case(2)
    out = mixed_loss(CrossEntropyLossFlat(reduction='none'), pred, [(y[idx[k]],) for k in range(2)], w)
    assert out.shape == (7,)

def _ce_case(name, seg):
    "Cross-entropy and NLL losses whose mean is over the targets' weights: class weights, ignored targets, both, with smoothing"
    cw, ax = torch.tensor([1., 2., 5., .5, 3.]), dict(axis=1) if seg else {}
    return {'ignored': lambda: CrossEntropyLossFlat(ignore_index=255, **ax), 'class weights': lambda: CrossEntropyLossFlat(weight=cw, **ax),
            'both': lambda: CrossEntropyLossFlat(weight=cw, ignore_index=255, **ax),
            'both, smoothed': lambda: CrossEntropyLossFlat(weight=cw, ignore_index=255, label_smoothing=.1, **ax),
            'torch CE': lambda: nn.CrossEntropyLoss(weight=cw, ignore_index=255), 'torch NLL': lambda: nn.NLLLoss(weight=cw, ignore_index=255)}[name]()

@pytest.mark.parametrize('name', ['ignored', 'class weights', 'both', 'both, smoothed', 'torch CE', 'torch NLL'])
@pytest.mark.parametrize('seg', [False, True])
def test_weighted_and_ignored_targets_reduce_as_the_loss_does(name, seg):
    "Unmixed (weights 1, 0) it is the loss itself; per batch it is λ·lf(y_a) + (1−λ)·lf(y_b), each source reduced by `lf`"
    lf, g = _ce_case(name, seg), torch.Generator().manual_seed(3)
    shape = (6, 5, 4, 3) if seg else (6, 5)
    pred = torch.randn(*shape, generator=g)
    if isinstance(lf, nn.NLLLoss): pred = pred.log_softmax(1)
    ya, yb = (torch.randint(0, 5, (shape[0], *shape[2:]), generator=g) for _ in range(2))
    f = getattr(lf, 'func', lf)
    ign = f.ignore_index == 255  # else no target may be 255
    if ign: ya.view(-1)[::3] = 255; yb.view(-1)[1::4] = 255
    one = torch.tensor([[1., 0.]]).expand(shape[0], 2)
    torch.testing.assert_close(mixed_loss(lf, pred, [(ya,), (yb,)], one), lf(pred, ya))
    lam = torch.tensor([[.3, .7]]).expand(shape[0], 2)
    torch.testing.assert_close(mixed_loss(lf, pred, [(ya,), (yb,)], lam), .3 * lf(pred, ya) + .7 * lf(pred, yb))
    torch.testing.assert_close(mixed_loss(lf, pred, torch.stack([ya, yb], 1), lam), .3 * lf(pred, ya) + .7 * lf(pred, yb))
    # per sample: each source's weighted terms over its targets' weight in the mean; unmixed rows count as the loss counts
    # them, and a source whose targets are all ignored adds 0, not NaN
    w = torch.rand(shape[0], 1, generator=g); w = torch.cat([w, 1 - w], 1)
    w[:2] = torch.tensor([1., 0.])
    ys = [ya, torch.full_like(yb, 255) if ign else yb]
    smooth = {'label_smoothing': f.label_smoothing} if isinstance(f, nn.CrossEntropyLoss) else {}
    none = lambda y: (F.cross_entropy if smooth else F.nll_loss)(pred, y, reduction='none', weight=f.weight, ignore_index=f.ignore_index, **smooth)
    count = lambda y: ((y != f.ignore_index) * (1. if f.weight is None else f.weight[y * (y != f.ignore_index)])).sum()
    exp = sum((none(y).reshape(shape[0], -1) * w[:, k, None]).sum() / count(y).clamp_min(1e-30) for k, y in enumerate(ys))
    torch.testing.assert_close(mixed_loss(lf, pred, [(y,) for y in ys], w), exp)
    if ign: assert torch.isfinite(mixed_loss(lf, pred, [(torch.full_like(ya, 255),)] * 2, w))

@pytest.mark.parametrize('seg', [False, True])
@pytest.mark.parametrize('flat', [True, False])
def test_label_smoothing_with_class_weights_reduces_as_the_loss_does(seg, flat):
    "fastai's label-smoothing cross-entropy with class weights divides its smoothing term by the count and its NLL by the targets' weight: mixed, value and gradient as `lf` per source"
    w_cls = torch.tensor([1., 4., 4., 2., .5])
    if flat: lf = LabelSmoothingCrossEntropyFlat(eps=.2, weight=w_cls, axis=1 if seg else -1)
    else: lf = LabelSmoothingCrossEntropy(eps=.2, weight=w_cls)
    g = torch.Generator().manual_seed(5)
    shape = (6, 5, 4, 3) if seg else (6, 5)
    pred = torch.randn(*shape, generator=g)
    ya, yb = (torch.randint(0, 5, (shape[0], *shape[2:]), generator=g) for _ in range(2))
    one = torch.tensor([[1., 0.]]).expand(shape[0], 2)
    torch.testing.assert_close(mixed_loss(lf, pred, [(ya,), (yb,)], one), lf(pred, ya))
    p1, p2 = pred.clone().requires_grad_(), pred.clone().requires_grad_()
    lam = torch.tensor([[.3, .7]]).expand(shape[0], 2)
    ours, ref = mixed_loss(lf, p1, torch.stack([ya, yb], 1), lam), .3 * lf(p2, ya) + .7 * lf(p2, yb)
    ours.backward(); ref.backward()
    torch.testing.assert_close(ours, ref); torch.testing.assert_close(p1.grad, p2.grad)
    # per sample: the smoothing term is the same for every source; the NLL mixed per source, over its targets' class weights
    w = torch.rand(shape[0], 1, generator=g); w = torch.cat([w, 1 - w], 1)
    lp = pred.log_softmax(1)
    nll = sum((F.nll_loss(lp, y, weight=w_cls, reduction='none').reshape(shape[0], -1) * w[:, k, None]).sum() / w_cls[y].sum()
              for k, y in enumerate((ya, yb)))
    torch.testing.assert_close(mixed_loss(lf, pred, [(ya,), (yb,)], w), -lp.sum(1).mean() * .2 / 5 + .8 * nll)

def test_fastai_tensor_types_without_cast_to_tensor():
    "Without fastai's `CastToTensor` the prediction and targets keep their fastai types: the mixed loss is the same"
    pred, y, idx, w = _case(2)
    lf = CrossEntropyLossFlat()
    plain = mixed_loss(lf, pred, y[idx.T], w)
    typed = mixed_loss(lf, pred.as_subclass(TensorImage), y.as_subclass(TensorCategory)[idx.T], w)
    assert type(typed) is Tensor and torch.equal(typed, plain)

def test_several_outputs():
    "A model with a main and an auxiliary head: `lf` takes the tuple as it is, and the mixed loss is Σ_k w_k·lf(pred, y_k)"
    def aux(preds, y, reduction='mean'): return F.cross_entropy(preds[0], y, reduction=reduction) + .4 * F.cross_entropy(preds[1], y, reduction=reduction)
    pred, y, idx, w = _case(2)
    preds = (pred, pred.flip(1))
    exp = sum(w[:, k] * aux(preds, y[idx[k]], reduction='none') for k in range(2)).mean()
    torch.testing.assert_close(mixed_loss(aux, preds, [(y[idx[k]],) for k in range(2)], w), exp)

def test_half_predictions_count_in_float32():
    "float16 logits over more than 65,504 targets per source (a 4×128×128 mask): the targets are counted in float32, not to inf"
    g = torch.Generator().manual_seed(0)
    pred, y = torch.randn(4, 3, 128, 128, generator=g), torch.randint(0, 3, (4, 128, 128), generator=g)
    idx, w = torch.stack([torch.arange(4), torch.tensor([1, 2, 3, 0])]), torch.tensor([[.7, .3]] * 4)
    ybs, lf = [(y[idx[k]],) for k in range(2)], CrossEntropyLossFlat(axis=1)
    ref = mixed_loss(lf, pred.double(), ybs, w.double())
    torch.testing.assert_close(mixed_loss(lf, pred.half(), ybs, w).double(), ref, atol=2e-3, rtol=2e-3)

@pytest.mark.parametrize('kw', [dict(reduction='sum'), dict(weight='cw'), dict(weight='cw', reduction='sum'), dict(ignore_index=2),
                                dict(weight='cw', ignore_index=2), dict(label_smoothing=.1, weight='cw'), dict(reduction='none')])
@pytest.mark.parametrize('f', [F.cross_entropy, F.nll_loss])
def test_a_partial_loss_reduces_as_its_keywords_say(f, kw):
    "`partial(F.cross_entropy, reduction='sum')` or with class weights: the mixed loss is Σ_k w_k·lf(pred, y[π_k]), as the partial reduces"
    if f is F.nll_loss and 'label_smoothing' in kw: return
    g = torch.Generator().manual_seed(0)
    kw = {k: (torch.rand(5, generator=g) + .2 if v == 'cw' else v) for k, v in kw.items()}
    lf = partial(f, **kw)
    pred = torch.randn(8, 5, generator=g).log_softmax(1)
    ya, yb = (torch.randint(0, 5, (8,), generator=g) for _ in range(2))
    lam = torch.tensor([[.7, .3]]).expand(8, 2)
    for ys in ([(ya,), (yb,)], torch.stack([ya, yb], 1)):
        torch.testing.assert_close(mixed_loss(lf, pred, ys, lam), .7 * lf(pred, ya) + .3 * lf(pred, yb))
    torch.testing.assert_close(mixed_loss(lf, pred, [(ya,), (yb,)], torch.tensor([[1., 0.]]).expand(8, 2)), lf(pred, ya))
