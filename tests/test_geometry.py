"Exact pixel provenance and label weights of every method, over many random shapes (hypothesis)"
import numpy as np, torch, pytest
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st, HealthCheck
from fastmix.all import *
from fastmix.core import *
from fastmix.geometry import *
from fastmix.testing import *
from helpers import METHODS

shapes = st.tuples(st.integers(1, 9), st.integers(1, 4), st.integers(1, 40), st.integers(1, 40))

def run(method, mode, shape, seed, p=1., channels_last=False):
    bs, c, h, w = shape
    x = provenance_batch(bs, c, h, w)
    if channels_last: x = x.contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 5, (bs,), generator=torch.Generator().manual_seed(seed))
    yf = F.one_hot(y, 5).double()
    cb = METHODS[method](mode=mode, seed=seed, p=p)
    mix, (xm,), (ym, yfm) = cb.mix_batch((x,), (y, yf))
    return x, y, yf, mix, xm, ym, yfm

def check_labels(mix, y, yf, ym, yfm):
    "Class indices are left for the loss; float targets are mixed with exactly the label weights"
    assert torch.equal(ym, y)
    w = mix.weights.double()
    torch.testing.assert_close(w.sum(1), torch.ones(len(y), dtype=torch.float64))
    assert ((w >= 0) & (w <= 1)).all()
    exp = sum(w[:, k, None] * yf[mix.idx[k]] for k in range(mix.K))
    torch.testing.assert_close(yfm, exp)

@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shape=shapes, mode=st.sampled_from(['batch', 'sample']), seed=st.integers(0, 2**31), cl=st.booleans())
def test_cutmix_provenance(shape, mode, seed, cl):
    bs, c, h, w = shape
    x, y, yf, mix, xm, ym, yfm = run('cutmix', mode, shape, seed, channels_last=cl)
    if bs == 1: assert mix is None and torch.equal(xm, x); return
    b, i, j = decode_provenance(xm, h, w)
    assert torch.equal(i, torch.arange(h).view(h, 1).expand_as(i)) and torch.equal(j, torch.arange(w).expand_as(j))
    own, partner = torch.arange(bs).view(-1, 1, 1, 1), mix.idx[1].view(-1, 1, 1, 1)
    assert ((b == own) | (b == partner)).all()
    assert torch.equal(mix.idx[0], torch.arange(bs))
    # the partner's pixels form one box, and its label weight is exactly their share
    for n in range(bs):
        rect = mix.geom.rects[min(n, len(mix.geom.rects) - 1), 1]
        box = torch.zeros(h, w, dtype=torch.bool); box[rect[0]:rect[1], rect[2]:rect[3]] = True
        assert (b[n][:, box] == partner[n, 0, 0, 0]).all() and (b[n][:, ~box] == n).all()
        assert abs(mix.weights[n, 1].item() - box.double().mean().item()) < 1e-6
    check_labels(mix, y, yf, ym, yfm)

@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shape=shapes, mode=st.sampled_from(['batch', 'sample']), seed=st.integers(0, 2**31), cl=st.booleans())
def test_ricap_provenance(shape, mode, seed, cl):
    bs, c, h, w = shape
    x, y, yf, mix, xm, ym, yfm = run('ricap', mode, shape, seed, channels_last=cl)
    if bs == 1: assert mix is None and torch.equal(xm, x); return
    assert xm.shape == x.shape
    b, i, j = decode_provenance(xm, h, w)
    assert (b == b[:, :1]).all()  # every channel from the same source pixel
    rows, cols = torch.arange(h).view(h, 1).expand(h, w), torch.arange(w).expand(h, w)
    for n in range(bs):
        r = mix.geom.rects[min(n, len(mix.geom.rects) - 1)]
        bh, bw = r[0, 1], r[0, 3]
        # a 2×2 grid split at (bh, bw)
        assert r[:, :4].tolist() == [[0, bh, 0, bw], [0, bh, bw, w], [bh, h, 0, bw], [bh, h, bw, w]]
        for k in range(4):
            m = torch.zeros(h, w, dtype=torch.bool); m[r[k, 0]:r[k, 1], r[k, 2]:r[k, 3]] = True
            if not m.any(): assert mix.weights[n, k] == 0; continue
            # a rigid crop of source k: one source image, one constant shift, inside the source
            assert (b[n, 0][m] == mix.idx[k, n]).all()
            assert ((i[n, 0] - rows)[m] == r[k, 4] - r[k, 0]).all() and ((j[n, 0] - cols)[m] == r[k, 5] - r[k, 2]).all()
            assert abs(mix.weights[n, k].item() - m.double().mean().item()) < 1e-6
    check_labels(mix, y, yf, ym, yfm)

@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shape=shapes, mode=st.sampled_from(['batch', 'sample']), seed=st.integers(0, 2**31),
       dominant=st.booleans())
def test_mixup_blend(shape, mode, seed, dominant):
    bs = shape[0]
    x = torch.randn(shape, dtype=torch.float64)
    y = torch.randint(0, 5, (bs,)); yf = F.one_hot(y, 5).double()
    cb = MixUp(mode=mode, seed=seed, keep_dominant=dominant)
    mix, (xm,), (ym, yfm) = cb.mix_batch((x,), (y, yf))
    if bs == 1: assert mix is None and torch.equal(xm, x); return
    w = mix.weights.double()
    torch.testing.assert_close(xm, w[:, 0, None, None, None] * x + w[:, 1, None, None, None] * x[mix.idx[1]], rtol=1e-6, atol=1e-6)
    if dominant: assert (w[:, 0] >= .5).all()
    if mode == 'batch': assert (w[:, 0] == w[0, 0]).all()
    check_labels(mix, y, yf, ym, yfm)

@pytest.mark.parametrize('method', METHODS)
@pytest.mark.parametrize('mode', ['batch', 'sample'])
def test_p0_identity_and_partial_p(method, mode):
    x = torch.randn(16, 3, 8, 8)
    mix, (xm,), _ = METHODS[method](p=0., mode=mode, seed=0).mix_batch((x.clone(),), (torch.arange(16),))
    assert mix is None and torch.equal(xm, x)
    if mode == 'sample':  # images left out are themselves, whole, with their own label at weight 1
        mix, (xm,), _ = METHODS[method](p=.5, mode=mode, seed=1).mix_batch((x.clone(),), (torch.arange(16),))
        out = (mix.weights.max(1).values == 1) & (mix.weights[:, 0] == 1) & (mix.idx[0] == torch.arange(16))
        assert 0 < out.sum() < 16
        assert torch.equal(xm[out], x[out])

def test_inplace_only_in_training_path():
    "The pure `mix_batch` never writes into the caller's tensors"
    for cls in METHODS.values():
        x = torch.randn(8, 3, 8, 8); x0 = x.clone()
        cls(seed=0).mix_batch((x,), (torch.arange(8),))
        assert torch.equal(x, x0)

def test_extra_image_input_and_mask_share_geometry():
    "Every spatial tensor gets exactly the same geometry: a second image input and a segmentation mask"
    bs, h, w = 6, 10, 13
    x = provenance_batch(bs, 3, h, w, dtype=torch.float32)
    x2 = provenance_batch(bs, 1, h, w, dtype=torch.float32) + .25
    mask = provenance_batch(bs, 1, h, w, dtype=torch.float64)[:, 0].long()
    tab = torch.randn(bs, 4)
    for cls in (CutMix, RICAP):
        for mode in ('batch', 'sample'):
            mix, (xm, x2m, tabm), (mm,) = cls(mode=mode, seed=5).mix_batch((x, x2, tab), (mask,))
            assert torch.equal(xm[:, 0], x2m[:, 0] - .25) and torch.equal(xm[:, 0].long(), mm)
            assert torch.equal(tabm, tab)  # non-image inputs are left alone
            assert mix.in_loss == (False,)  # the cut mask is the target: the original loss applies
