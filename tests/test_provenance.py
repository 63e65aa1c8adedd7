"""Exact pixel provenance and label weights of every mixer and mode over random shapes (B 1–9, C 1–4, H, W 1–40),
probabilities and seeds (hypothesis): label weights in [0, 1] summing to 1, every pixel's source and share exact, images
left out untouched, soft labels blended with the weights, p = 0 the identity bit for bit, the same seed the same
mix; then what is particular to
each method (CutMix keeps pixels in place, RICAP tiles at one point, MixUp's dominant option). A failing example is
shrunk and printed, with the blob to reproduce it (`@reproduce_failure`)."""
import torch, pytest
import torch.nn.functional as F
from hypothesis import given, settings, note, strategies as st, HealthCheck
from fastmix.all import *
from fastmix.testing import provenance_batch, decode_provenance, check_provenance, check_resized, check_untouched_rows
from fastmix.mixers import MIXERS
from helpers import MODES

shapes = st.tuples(st.integers(1, 9), st.integers(1, 4), st.integers(1, 40), st.integers(1, 40))
methods, modes = st.sampled_from(list(MIXERS)), st.sampled_from(MODES)
probs = st.one_of(st.just(1.), st.floats(0., 1., allow_nan=False))
seeds = st.integers(0, 2**63 - 1)
SETTINGS = dict(deadline=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow])

def mix_once(method, mode, shape, p, seed, layout, inplace=False, **kw):
    "Mix a provenance batch with class-index and one-hot float targets"
    bs, c, h, w = shape
    x = provenance_batch(bs, c, h, w)
    if layout == 'channels_last': x = x.contiguous(memory_format=torch.channels_last)
    y = torch.arange(bs) % 5
    yf = F.one_hot(y, 5).double()
    cb = MIXERS[method](mode=mode, p=p, seed=seed, **kw)
    xin = x.clone(memory_format=torch.preserve_format)
    mix, (xm,), (ym, yfm) = cb.mix_batch((xin,), (y, yf), inplace=inplace)
    note(f"method={method} mode={mode} shape={shape} p={p} seed={seed} layout={layout} mixed={mix is not None}")
    if mix is not None: note(f"idx={mix.idx.tolist()} weights={mix.weights.tolist()}")
    return x, xin, y, yf, mix, xm, ym, yfm

@settings(max_examples=400, **SETTINGS)
@given(method=methods, mode=modes, shape=shapes, p=probs, seed=seeds, layout=st.sampled_from(['contiguous', 'channels_last']),
       inplace=st.booleans())
def test_weights_provenance_and_labels(method, mode, shape, p, seed, layout, inplace):
    x, xin, y, yf, mix, xm, ym, yfm = mix_once(method, mode, shape, p, seed, layout, inplace)
    if mix is None:  # not drawn (or a batch of one): everything is the caller's own objects, untouched
        assert xm is xin and ym is y and yfm is yf and torch.equal(xm, x)
        return
    assert shape[0] >= 2
    check_provenance(x, xm, mix)  # weights in [0, 1], rows sum to 1, every pixel's source and share exact
    check_untouched_rows(x, xm, mix)
    assert torch.equal(ym, y) and mix.in_loss == (True, False)  # class indices are left for the loss
    w = mix.weights.double()
    torch.testing.assert_close(yfm, sum(w[:, k, None] * yf[mix.idx[k]] for k in range(mix.K)))  # soft labels blended
    if layout == 'channels_last': assert xm.is_contiguous(memory_format=torch.channels_last)
    if mode == 'batch': assert (mix.weights == mix.weights[:1]).all()  # one draw for the whole batch

@settings(max_examples=100, **SETTINGS)
@given(method=methods, mode=modes, shape=shapes, seed=seeds, inplace=st.booleans(), n=st.integers(1, 4))
def test_p0_is_the_identity_bit_for_bit(method, mode, shape, seed, inplace, n):
    "p = 0, called again and again: the caller's own tensors come back, images and float targets untouched"
    bs, c, h, w = shape
    x = torch.randn(shape, generator=torch.Generator().manual_seed(seed % 2**32))
    y = torch.arange(bs); yf = F.one_hot(y % 3, 3).float()
    x0, yf0 = x.clone(), yf.clone()
    cb = MIXERS[method](mode=mode, p=0., seed=seed)
    for _ in range(n):
        mix, (xm,), (ym, yfm) = cb.mix_batch((x,), (y, yf), inplace=inplace)
        assert mix is None and xm is x and ym is y and yfm is yf
    assert torch.equal(x, x0) and torch.equal(yf, yf0)

@settings(max_examples=60, **SETTINGS)
@given(method=methods, mode=modes, shape=shapes, p=probs, seed=seeds)
def test_same_seed_same_mix(method, mode, shape, p, seed):
    a = mix_once(method, mode, shape, p, seed, 'contiguous')
    b = mix_once(method, mode, shape, p, seed, 'contiguous')
    assert (a[4] is None) == (b[4] is None) and torch.equal(a[5], b[5])
    if a[4] is not None: assert torch.equal(a[4].idx, b[4].idx) and torch.equal(a[4].weights, b[4].weights)

@pytest.mark.parametrize('method', MIXERS)
def test_partial_p_leaves_whole_images(method):
    "Per sample with p < 1: images left out are themselves, whole, with their own label at weight 1"
    x = torch.randn(16, 3, 8, 8)
    mix, (xm,), _ = MIXERS[method](p=.5, mode='sample', seed=1).mix_batch((x.clone(),), (torch.arange(16),))
    out = (mix.weights.max(1).values == 1) & (mix.weights[:, 0] == 1) & (mix.idx[0] == torch.arange(16))
    assert 0 < out.sum() < 16
    assert torch.equal(xm[out], x[out])

@pytest.mark.parametrize('method', MIXERS)
def test_inplace_only_in_training_path(method):
    "The pure `mix_batch` never writes into the caller's tensors"
    x = torch.randn(8, 3, 8, 8); x0 = x.clone()
    MIXERS[method](seed=0).mix_batch((x,), (torch.arange(8),))
    assert torch.equal(x, x0)

# -- what is particular to each method
@settings(max_examples=60, **SETTINGS)
@given(shape=shapes, mode=modes, seed=st.integers(0, 2**31), cl=st.booleans())
def test_cutmix_keeps_pixels_in_place_one_box(shape, mode, seed, cl):
    "Every pixel stays where it is; it comes from the image itself or, inside one box, from its partner"
    bs, c, h, w = shape
    x, _, _, _, mix, xm, _, _ = mix_once('cutmix', mode, shape, 1., seed, 'channels_last' if cl else 'contiguous')
    if bs == 1: assert mix is None and torch.equal(xm, x); return
    b, i, j = decode_provenance(xm, h, w)
    assert torch.equal(i, torch.arange(h).view(h, 1).expand_as(i)) and torch.equal(j, torch.arange(w).expand_as(j))
    own, partner = torch.arange(bs).view(-1, 1, 1, 1), mix.idx[1].view(-1, 1, 1, 1)
    assert ((b == own) | (b == partner)).all()
    assert torch.equal(mix.idx[0], torch.arange(bs))
    for n in range(bs):  # the partner's pixels form one box, and its label weight is exactly their share
        rect = mix.geom.rects[min(n, len(mix.geom.rects) - 1), 1]
        box = torch.zeros(h, w, dtype=torch.bool); box[rect[0]:rect[1], rect[2]:rect[3]] = True
        assert (b[n][:, box] == partner[n, 0, 0, 0]).all() and (b[n][:, ~box] == n).all()
        assert abs(mix.weights[n, 1].item() - box.double().mean().item()) < 1e-6

@settings(max_examples=60, **SETTINGS)
@given(shape=shapes, mode=modes, seed=st.integers(0, 2**31))
def test_ricap_tiles_split_at_one_point(shape, mode, seed):
    "The four tiles are the 2×2 grid split at one boundary point (bh, bw)"
    bs, c, h, w = shape
    x, _, _, _, mix, xm, _, _ = mix_once('ricap', mode, shape, 1., seed, 'contiguous')
    if bs == 1: assert mix is None and torch.equal(xm, x); return
    for n in range(bs):
        r = mix.geom.rects[min(n, len(mix.geom.rects) - 1)]
        bh, bw = r[0, 1], r[0, 3]
        assert r[:, :4].tolist() == [[0, bh, 0, bw], [0, bh, bw, w], [bh, h, 0, bw], [bh, h, bw, w]]

@settings(max_examples=60, **SETTINGS)
@given(shape=shapes, mode=modes, seed=st.integers(0, 2**31), dominant=st.booleans())
def test_mixup_blend(shape, mode, seed, dominant):
    "λ·x + (1−λ)·x[π] on any values; `keep_dominant` keeps the image's own weight at 0.5 or more"
    bs = shape[0]
    x = torch.randn(shape, dtype=torch.float64)
    mix, (xm,), _ = MixUp(mode=mode, seed=seed, keep_dominant=dominant).mix_batch((x,), (torch.randint(0, 5, (bs,)),))
    if bs == 1: assert mix is None and torch.equal(xm, x); return
    w = mix.weights.double()
    torch.testing.assert_close(xm, w[:, 0, None, None, None] * x + w[:, 1, None, None, None] * x[mix.idx[1]], rtol=1e-6, atol=1e-6)
    if dominant: assert (w[:, 0] >= .5).all()

class _HalfMask:
    "A mask geometry as the own-mixer guide describes one (`cuts`, `apply`, `owner`; no `rects`): the partner's lower triangle"
    cuts = True
    def __init__(self, idx, h, w, shift=0): self.idx,self.mask,self.shift = idx,torch.ones(h, w).tril().bool(),shift
    def apply(self, t, inplace=False, scratch=None): return torch.where(self.mask, t[self.idx[1]].roll(self.shift, -1), t)
    def owner(self, size, dev): return self.mask.to(dev, torch.uint8)[None]

def test_the_checks_fail_on_wrong_mixes():
    "`check_provenance` passes a right mix of every kind and names what is wrong in a wrong one"
    from fastmix.core import Mix
    x = provenance_batch(6, 3, 8, 10)
    mix = CutMix(seed=1).choose(x)
    check_provenance(x, mix.geom.apply(x), mix)
    with pytest.raises(AssertionError, match='its share of the positions'):
        check_provenance(x, mix.geom.apply(x), Mix(mix.idx, mix.weights.flip(1), mix.geom))
    # a geometry without `rects` moves nothing
    idx = torch.stack([torch.arange(6), torch.arange(6).roll(1)])
    share = torch.ones(8, 10).tril().mean().item()
    w = torch.tensor([[1 - share, share]] * 6)
    good, moved = _HalfMask(idx, 8, 10), _HalfMask(idx, 8, 10, shift=1)
    check_provenance(x, good.apply(x), Mix(idx, w, good))
    with pytest.raises(AssertionError, match='not moved by 0 along axis 1'): check_provenance(x, moved.apply(x), Mix(idx, w, moved))
    # ResizeMix: the image's own weight is checked too
    mix = ResizeMix(seed=0).choose(x)
    xm = mix.geom.apply(x)
    check_provenance(x, xm, mix)
    bad = Mix(mix.idx, torch.stack([mix.weights[:, 0] - .1, mix.weights[:, 1]], 1), mix.geom)
    with pytest.raises(AssertionError, match="the box's share"): check_resized(x, xm, bad)
    # a per-image choice: each image by the geometry it picked, and a wrong one fails
    mix = CutMixUp(mode='sample', seed=0).choose(x)
    assert len(set(mix.geom.pick.tolist())) == 2
    xm = mix.geom.apply(x)
    check_provenance(x, xm, mix)
    with pytest.raises(AssertionError): check_provenance(x, xm.flip(0), mix)

def test_a_cut_that_does_not_copy_its_values_fails():
    "Provenance values are whole numbers: a cut whose output leaks a little of the partner, or shifts a channel by less than half, would round to the right positions; it fails all the same"
    x = provenance_batch(6, 3, 8, 10)
    for mode in MODES:
        mix = CutMix(mode=mode, seed=1).choose(x)
        xm = mix.geom.apply(x)
        check_provenance(x, xm, mix)
        leak = .999 * xm + .001 * x[mix.idx[1]]  # (off by under 0.5: 480 positions)
        shift = xm.clone(); shift[:, 1] += .3
        for bad in (leak, shift):
            assert torch.equal(decode_provenance(bad, 8, 10)[0], decode_provenance(xm, 8, 10)[0])  # (rounds to the right sources)
            with pytest.raises(AssertionError, match='a cut copies values'): check_provenance(x, bad, mix)

@pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a GPU')
@pytest.mark.parametrize('method,mode', [(m, mode) for m in MIXERS if MIXERS[m].cls.mixes_input is True for mode in MODES])
def test_the_checks_take_mixes_made_on_the_gpu(method, mode):
    x = provenance_batch(6, 3, 8, 10).cuda()
    mix, (xm,), _ = MIXERS[method](mode=mode, seed=0).mix_batch((x.clone(),), (torch.arange(6, device='cuda'),))
    check_provenance(x, xm, mix)
