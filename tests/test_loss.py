"The mixed loss: equal to cross-entropy on soft labels (value and gradient), and Σ_k w_k·loss(y[π_k]) for any y_int loss"
import torch, pytest
import torch.nn.functional as F
from fastai.basics import *
from fastai.losses import LabelSmoothingCrossEntropyFlat, FocalLossFlat
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
