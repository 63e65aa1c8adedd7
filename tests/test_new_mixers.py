"ResizeMix, FMix, CutMix box bounds and the one-mixer-per-Learner rule: exact provenance, weights, masks, errors"
import numpy as np, torch, pytest
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st, HealthCheck
from fastai.basics import *
from fastai.callback.mixup import MixUp as FastaiMixUp
from fastmix.all import *
from fastmix.core import *
from fastmix.geometry import *
from fastmix.fmix import fourier_noise, top_mask
from fastmix.testing import *
from helpers import synth_learner

shapes = st.tuples(st.integers(1, 9), st.integers(1, 4), st.integers(1, 33), st.integers(1, 33))
MODES = ('batch', 'sample')
hyp = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

def _mix(cb, x, *ys):
    return cb.mix_batch((x,), ys or (torch.arange(len(x)),))

def _mix_with_masks(cls, x, mode, seed, cl, p):
    "Mix `x` (channels last if `cl`) and a random segmentation target with `cls`; left alone both, when nothing was mixed"
    bs, c, h, w = x.shape
    if cl: x = x.contiguous(memory_format=torch.channels_last)
    seg = torch.randint(0, 7, (bs, h, w), generator=torch.Generator().manual_seed(seed % 1000))
    mix, (xm,), (segm,) = _mix(cls(mode=mode, seed=seed, p=p), x.clone(), seg)
    if mix is None: assert torch.equal(xm, x) and torch.equal(segm, seg)
    return x, seg, mix, xm, segm

def _box(geom, n):
    b = geom.boxes
    return b[min(n, len(b) - 1)].tolist()

def _inside(box, h, w):
    y0, y1, x0, x1 = box
    m = torch.zeros(h, w, dtype=torch.bool); m[y0:y1, x0:x1] = True
    return m

def _interp(t, size, integer=False):
    "F.interpolate of one image (C, H, W) or one mask (H, W), as the test's reference"
    u = t.float() if integer else t  # the image's own dtype: F.interpolate of exactly what the mixer saw
    u = u[None] if t.ndim == 3 else u[None, None]
    r = F.interpolate(u, size=size, mode='nearest-exact') if integer else F.interpolate(u, size=size, mode='bilinear', align_corners=False)
    r = r[0] if t.ndim == 3 else r[0, 0]
    return r.to(t.dtype)

# ---------------------------------------------------------------------------------------------------- FMix
def check_fmix(x, xm, mix, mask_in=None, mask_out=None):
    "Every pixel is its own or its partner's at the same place, the partner's exactly where the mask is set; weights = shares"
    bs, c, h, w = x.shape
    check_provenance(x, xm, mix)  # rigid layers with zero offset, weights = owner shares
    b, i, j = decode_provenance(xm, h, w)
    assert torch.equal(i, torch.arange(h).view(h, 1).expand_as(i)) and torch.equal(j, torch.arange(w).expand_as(j))
    m = torch.as_tensor(mix.geom.mask).view(-1, 1, h, w).expand(bs, c, h, w)
    own, partner = mix.idx[0].view(-1, 1, 1, 1).expand_as(b), mix.idx[1].view(-1, 1, 1, 1).expand_as(b)
    assert torch.equal(mix.idx[0], torch.arange(bs))
    assert torch.equal(b, torch.where(m, partner, own))
    share = m[:, 0].double().mean((1, 2))
    torch.testing.assert_close(mix.weights[:, 1].double(), share, rtol=0, atol=1e-6)
    if mask_in is not None:  # an integer mask cut with the same mask
        assert torch.equal(mask_out, torch.where(m[:, 0], mask_in[mix.idx[1]], mask_in))

@hyp
@given(shape=shapes, mode=st.sampled_from(MODES), seed=st.integers(0, 2**31), cl=st.booleans(), p=st.sampled_from([1., .5]))
def test_fmix_provenance(shape, mode, seed, cl, p):
    x, seg, mix, xm, segm = _mix_with_masks(FMix, provenance_batch(*shape), mode, seed, cl, p)
    if mix is None: return
    check_fmix(x, xm, mix, seg, segm)
    check_untouched_rows(x, xm, mix)

@pytest.mark.parametrize('mode', MODES)
def test_fmix_share_is_rounded_one_minus_lambda(mode):
    "The partner's pixel count is exactly round((1−λ)·H·W), λ the Beta draw (replayed from the same seed)"
    cb = FMix(mode=mode, seed=5, alpha=.7)
    x = torch.rand(6, 3, 10, 13)
    rng = np.random.default_rng(5)
    mix, _, _ = _mix(cb, x)
    n = 1 if mode == 'batch' else 6
    if mode == 'sample': rng.random(6)  # the per-image `p` draw comes first
    else: rng.random()
    lam = rng.beta(.7, .7, size=n)
    k = np.floor((1 - lam) * 130 + .5)
    assert np.array_equal(mix.geom.mask.reshape(n, -1).sum(1), k)
    torch.testing.assert_close(mix.weights[:, 1], torch.tensor(np.broadcast_to(k / 130, (6,)), dtype=torch.float32))

def test_top_mask_exact_counts_and_highest():
    v = fourier_noise(np.random.default_rng(0), 4, 9, 11, 3.)
    assert v.shape == (4, 9, 11) and v.dtype == np.float32
    k = np.array([0, 1, 50, 99])
    m = top_mask(v, k)
    assert np.array_equal(m.sum((1, 2)), k)
    for n in (1, 2): assert v[n][m[n]].min() > v[n][~m[n]].max()
    assert np.array_equal(top_mask(np.ones((3, 2, 2)), [0, 3, 4]).sum((1, 2)), [0, 3, 4])  # all tied

def _by_argsort(v, k):
    f = v.reshape(len(v), -1); m = np.zeros(f.shape, bool)
    for n in range(len(v)): m[n, np.argsort(-f[n], kind='stable')[:k[n]]] = True
    return m.reshape(v.shape)

@hyp
@given(n=st.integers(1, 6), h=st.integers(1, 40), w=st.integers(1, 40), seed=st.integers(0, 2**31),
       levels=st.sampled_from([0, 2, 16, None]))
def test_top_mask_is_the_k_highest(n, h, w, seed, levels):
    "Exactly the k highest pixels, ties broken by position (the stable-argsort definition), with and without ties"
    rng = np.random.default_rng(seed)
    v = fourier_noise(rng, n, h, w)
    if levels is not None: v = np.round(v / (np.abs(v).max() + 1e-12) * levels)  # ties (levels 0: all equal)
    k = rng.integers(0, h * w + 1, n)
    assert np.array_equal(top_mask(v, k), _by_argsort(v, k))

@pytest.mark.parametrize('levels', [0, 2, 16, None])
def test_top_mask_large_images_select_per_image(levels):
    "Over 4,096 pixels the threshold comes from a selection per image, not one sort of the batch: the same k highest"
    rng = np.random.default_rng(levels or 7)
    v = fourier_noise(rng, 5, 70, 81)
    if levels is not None: v = np.round(v / (np.abs(v).max() + 1e-12) * levels)
    k = np.array([0, 1, 2835, 5669, 5670])
    assert np.array_equal(top_mask(v, k), _by_argsort(v, k))

def test_fmix_decay_smooths():
    "Larger δ: lower frequencies, so fewer mask boundaries between neighbouring pixels"
    rng = np.random.default_rng(0)
    def edges(d):
        m = top_mask(fourier_noise(rng, 16, 32, 32, d), np.full(16, 512))
        return (m[:, 1:] != m[:, :-1]).mean() + (m[:, :, 1:] != m[:, :, :-1]).mean()
    e0, e1, e3 = edges(0.), edges(1.), edges(3.)
    assert e0 > e1 > e3

def test_fmix_same_seed_same_mix():
    x = torch.rand(5, 2, 8, 8)
    a, (xa,), _ = _mix(FMix(mode='sample', seed=11), x.clone())
    b, (xb,), _ = _mix(FMix(mode='sample', seed=11), x.clone())
    assert torch.equal(xa, xb) and np.array_equal(a.geom.mask, b.geom.mask)

# ---------------------------------------------------------------------------------------------------- ResizeMix
def check_resizemix(x, xm, mix, seg=None, segm=None):
    "Inside the box exactly F.interpolate of the partner at the box size; outside untouched; weight = box share; masks nearest"
    check_provenance(x, xm, mix)  # `ResizePaste.resized`: dispatches to `check_resized`
    for n in range(len(x)):
        box = _box(mix.geom, n)
        y0, y1, x0, x1 = box
        ins = _inside(box, *x.shape[-2:])
        if seg is None: continue
        assert torch.equal(segm[n][~ins], seg[n][~ins])
        if ins.any(): assert torch.equal(segm[n][y0:y1, x0:x1], _interp(seg[mix.idx[1, n]], (y1 - y0, x1 - x0), integer=True))

@hyp
@given(shape=shapes, mode=st.sampled_from(MODES), seed=st.integers(0, 2**31), cl=st.booleans(), p=st.sampled_from([1., .5]))
def test_resizemix_exact(shape, mode, seed, cl, p):
    x = torch.rand(*shape, generator=torch.Generator().manual_seed(seed % 1000))
    x, seg, mix, xm, segm = _mix_with_masks(ResizeMix, x, mode, seed, cl, p)
    if mix is None: return
    check_resizemix(x, xm, mix, seg, segm)
    check_untouched_rows(x, xm, mix)

@pytest.mark.parametrize('mode', MODES)
@pytest.mark.parametrize('scale', [(.1, .8), (.5, .5), (.3, 1.)])
def test_resizemix_box_sides(mode, scale):
    "Sides round(τ·H) × round(τ·W), the same τ for both, τ in the range; the box inside the image"
    h, w = 20, 31
    for seed in range(20):
        mix, _, _ = _mix(ResizeMix(scale=scale, mode=mode, seed=seed), torch.rand(6, 1, h, w))
        y0, y1, x0, x1 = mix.geom.boxes.T
        assert (y0 >= 0).all() and (y1 <= h).all() and (x0 >= 0).all() and (x1 <= w).all()
        bh, bw = y1 - y0, x1 - x0
        assert ((bh >= np.floor(scale[0] * h + .5)) & (bh <= np.floor(scale[1] * h + .5))).all()
        # one τ: both sides are round(τ·side) for a common τ, so their implied ranges of τ overlap
        assert (np.maximum((bh - .5) / h, (bw - .5) / w) <= np.minimum((bh + .5) / h, (bw + .5) / w) + 1e-12).all()

def test_resizemix_inplace_equals_copy():
    x = torch.rand(7, 3, 15, 12)
    for mode in MODES:
        mix, _, _ = _mix(ResizeMix(mode=mode, seed=3), x.clone())
        a = mix.geom.apply(x.clone())
        b = x.clone(); out = mix.geom.apply(b, inplace=True)
        assert out is b and torch.equal(a, b)

@pytest.mark.parametrize('cl', [False, True])
@pytest.mark.parametrize('dtype', [torch.float32, torch.bfloat16])
def test_resizemix_per_sample_on_large_images(cl, dtype):
    "Images of 2^16 values and more: each partner resampled at its own box only (`ResizePaste.per_image`), as F.interpolate would"
    x = torch.rand(5, 2, 181, 183, generator=torch.Generator().manual_seed(0)).to(dtype)
    x, seg, mix, xm, segm = _mix_with_masks(ResizeMix, x, 'sample', 4, cl, .6)
    pasted = (mix.geom.boxes[:, 1] > mix.geom.boxes[:, 0]).sum()
    assert x[0].numel() >= 1 << 16 and 0 < pasted < len(x)  # large images, some of them left out
    check_resizemix(x, xm, mix, seg, segm)
    b = x.clone(); assert mix.geom.apply(b, inplace=True) is b and torch.equal(b, xm)

@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16, torch.float64])
def test_resizemix_low_precision(dtype):
    x = torch.rand(6, 3, 16, 16).to(dtype)
    mix, (xm,), _ = _mix(ResizeMix(mode='sample', seed=0), x.clone())
    assert xm.dtype == dtype
    check_resizemix(x, xm, mix)

@pytest.mark.parametrize('n', [1, 2, 7, 32, 224, 700])  # 700: longer than `_table_max`, its sizes computed as drawn
def test_box_samples_are_interpolates_points(n):
    "`box_samples`: inside `[lo, hi)`, position `lo + i` reads where F.interpolate's output `i` of size `hi − lo` reads; the flags mark the box"
    rng = np.random.default_rng(n)
    lo = rng.integers(0, n, 20); hi = lo + rng.integers(0, n - lo + 1)  # empty boxes included
    g, inside = box_samples(n, lo, hi, True, np.float64)
    pick, inside_nn = box_samples(n, lo, hi, False)
    ramp = torch.arange(n, dtype=torch.float64).view(1, 1, 1, n)  # its value is its coordinate: interpolating reads the point
    assert (inside == inside_nn).all() and (inside.sum(1) == hi - lo).all()
    for k in np.flatnonzero(hi > lo):
        o, box = hi[k] - lo[k], slice(lo[k], hi[k])
        assert inside[k, box].all()
        src = F.interpolate(ramp, size=(1, o), mode='bilinear', align_corners=False)[0, 0, 0].numpy()
        np.testing.assert_allclose(((g[k, box] + 1) * n - 1) / 2, src, rtol=0, atol=1e-9)  # grid_sample's unnormalising
        assert (pick[k, box] == F.interpolate(ramp.float(), size=(1, o), mode='nearest-exact')[0, 0, 0].long().numpy()).all()

def test_long_axes_keep_no_table(monkeypatch):
    "An axis longer than `_table_max` gets the sample points of the sizes drawn, the numbers the table would hold, without a table of n² entries"
    import tracemalloc, fastmix.geometry as G
    n, lo, hi = 300, np.array([0, 5, 100, 3, 299]), np.array([300, 9, 250, 3, 300])
    for bil in (True, False):
        with_table = box_samples(n, lo, hi, bil), sample_points(n, hi - lo, bil)
        monkeypatch.setattr(G, '_table_max', n - 1)
        without = box_samples(n, lo, hi, bil), sample_points(n, hi - lo, bil)
        monkeypatch.undo()
        for a, b in zip([*with_table[0], *with_table[1]], [*without[0], *without[1]]): assert (a is None and b is None) or np.array_equal(a, b)
    x = torch.rand(2, 1, 1, 8000, generator=torch.Generator().manual_seed(0))
    tracemalloc.start()
    mix, (xm,), _ = ResizeMix(mode='sample', scale=(.5, .9), seed=1).mix_batch((x.clone(),), (torch.arange(2),))
    peak = tracemalloc.get_traced_memory()[1]; tracemalloc.stop()
    assert peak < 20e6, peak  # a table for 8,000 would take gigabytes
    check_resizemix(x, xm, mix)

# ---------------------------------------------------------------------------------------------------- CutMix box bounds
@hyp
@given(shape=shapes, mode=st.sampled_from(MODES), seed=st.integers(0, 2**31),
       mm=st.tuples(st.floats(.01, 1.), st.floats(.01, 1.)).map(sorted))
def test_cutmix_minmax(shape, mode, seed, mm):
    bs, c, h, w = shape
    x = provenance_batch(bs, c, h, w)
    mix, (xm,), _ = _mix(CutMix(minmax=tuple(mm), mode=mode, seed=seed), x.clone())
    if mix is None: assert bs == 1 and torch.equal(xm, x); return
    check_provenance(x, xm, mix)
    r = mix.geom.rects[:, 1]
    bh, bw = r[:, 1] - r[:, 0], r[:, 3] - r[:, 2]
    lo, hi = mm
    # sides uniform in [lo, hi] of the side, rounded to whole pixels; the box lies inside the image (no clipping)
    assert ((bh >= np.floor(lo * h + .5)) & (bh <= np.floor(hi * h + .5))).all(), (bh, mm, h)
    assert ((bw >= np.floor(lo * w + .5)) & (bw <= np.floor(hi * w + .5))).all(), (bw, mm, w)
    assert (r[:, 0] >= 0).all() and (r[:, 1] <= h).all() and (r[:, 2] >= 0).all() and (r[:, 3] <= w).all()
    torch.testing.assert_close(mix.weights[:, 1].double(), torch.tensor(np.broadcast_to(bh * bw / (h * w), (bs,))), rtol=0, atol=1e-6)

def test_cutmix_minmax_covers_the_range():
    "Both ends of the range are drawn (uniform sides), and sides vary independently in H and W"
    cb = CutMix(minmax=(.2, .8), mode='sample', seed=0)
    r = np.concatenate([_mix(cb, torch.rand(64, 1, 50, 40))[0].geom.rects[:, 1] for _ in range(10)])
    bh, bw = r[:, 1] - r[:, 0], r[:, 3] - r[:, 2]
    assert bh.min() == 10 and bh.max() == 40 and bw.min() == 8 and bw.max() == 32
    assert abs(np.corrcoef(bh, bw)[0, 1]) < .2

# ---------------------------------------------------------------------------------------------------- edge cases
NEW = [ResizeMix, FMix, lambda **kw: CutMix(minmax=(.2, .8), **kw)]

@pytest.mark.parametrize('cls', NEW)
@pytest.mark.parametrize('mode', MODES)
def test_batch_of_one_passes_through(cls, mode):
    x = torch.rand(1, 3, 5, 5)
    mix, (xm,), (y,) = _mix(cls(mode=mode, seed=0), x)
    assert mix is None and xm is x

@pytest.mark.parametrize('cls', NEW)
@pytest.mark.parametrize('mode', MODES)
@pytest.mark.parametrize('hw', [(1, 1), (1, 7), (6, 1), (3, 17)])
def test_tiny_and_non_square(cls, mode, hw):
    x = provenance_batch(5, 2, *hw)
    for seed in range(5):
        mix, (xm,), _ = _mix(cls(mode=mode, seed=seed), x.clone())
        if isinstance(mix.geom, ResizePaste): check_resizemix(x, xm, mix)
        else: check_provenance(x, xm, mix)

@pytest.mark.parametrize('make, err, msg', [
    (lambda: ResizeMix(scale=(.8, .1)), ValueError, r"`scale` must satisfy 0.0 < low <= high <= 1.0, got \(0.8, 0.1\)"),
    (lambda: ResizeMix(scale=(0, .5)), ValueError, r"`scale` must satisfy 0.0 < low <= high <= 1.0, got \(0, 0.5\)"),
    (lambda: ResizeMix(scale=(.1, 1.2)), ValueError, r"`scale` must satisfy .* got \(0.1, 1.2\)"),
    (lambda: ResizeMix(scale=.5), ValueError, r"`scale` must be a pair \(low, high\) of finite numbers, got 0.5"),
    (lambda: ResizeMix(scale=(.1, float('nan'))), ValueError, r"`scale` must be a pair .* got \(0.1, nan\)"),
    (lambda: ResizeMix(scale=(.1, .5, .9)), ValueError, r"`scale` must be a pair"),
    (lambda: FMix(alpha=0.), ValueError, r"`alpha` must be in \(0, inf\), got 0.0"),
    (lambda: FMix(decay=-1.), ValueError, r"`decay` must be in \[0, inf\), got -1.0"),
    (lambda: FMix(decay='3'), ValueError, r"`decay` must be a finite number, got '3'"),
    (lambda: CutMix(minmax=(.5, .2)), ValueError, r"`minmax` must satisfy 0.0 < low <= high <= 1.0, got \(0.5, 0.2\)"),
    (lambda: CutMix(minmax=(0., .2)), ValueError, r"`minmax` must satisfy .* got \(0.0, 0.2\)"),
    (lambda: CutMix(minmax=.3), ValueError, r"`minmax` must be a pair \(low, high\) of finite numbers, got 0.3"),
    (lambda: CutMix(minmax=(True, .5)), ValueError, r"`minmax` must be a pair"),
])
def test_bad_arguments(make, err, msg):
    with pytest.raises(err, match=msg): make()

@pytest.mark.parametrize('cls', NEW)
def test_bad_batches(cls):
    with pytest.raises(TypeError, match='dtype torch.uint8'): _mix(cls(seed=0), torch.zeros(4, 3, 5, 5, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r'batches of shape .*\(B, C, H, W\).*, got shape \(4, 5\)$'): _mix(cls(seed=0), torch.rand(4, 5))
    if cls in (ResizeMix, FMix):  # images only; CutMix (with box bounds too) also cuts signals (B, C, L)
        with pytest.raises(ValueError, match=r'image batches of shape \(B, C, H, W\), got shape \(4, 5, 5\)$'): _mix(cls(seed=0), torch.rand(4, 5, 5))
    with pytest.raises(ValueError, match='target 0 has batch size 3'): cls(seed=0).mix_batch((torch.rand(4, 3, 5, 5),), (torch.arange(3),))

# ---------------------------------------------------------------------------------------------------- in a Learner
@pytest.mark.parametrize('mode', MODES)
def test_mixchoice_over_new_mixers_trains(mode):
    chosen = []
    class Spy(Callback):
        order = 1
        def before_batch(self):
            mix = self.learn.cbs.filter(lambda c: isinstance(c, MixChoice))[0].mix
            if self.training and mix is not None: chosen.append(mix.geom)
    mc = MixChoice([CutMix(), FMix(), ResizeMix()], mode=mode, seed=0)
    learn = synth_learner(cbs=[mc, Spy()])
    lf = learn.loss_func
    learn.fit(3, 1e-2)
    assert learn.loss_func is lf and all(np.isfinite(v) for v in learn.recorder.values[-1][:2])
    if mode == 'batch':  # each batch one of the three geometries, all three used
        assert {type(g).__name__ for g in chosen} == {'BoxPaste', 'MaskPaste', 'ResizePaste'}
    else:  # per image: each batch holds all three, picked per image
        assert all(type(g).__name__ == 'Select' for g in chosen)
        assert {len(np.unique(g.pick.numpy())) for g in chosen} >= {3}

def test_mixchoice_new_mixers_masks_follow():
    "Per-sample MixChoice over cutting mixers cuts a (B, H, W) mask with each image's own geometry"
    x = provenance_batch(12, 1, 9, 10)
    seg = x[:, 0].long()  # the mask records provenance too
    mix, (xm,), (segm,) = MixChoice([CutMix(), FMix()], mode='sample', seed=0).mix_batch((x.clone(),), (seg,))
    assert mix.geom.cuts and torch.equal(segm, xm[:, 0].round().long())

@pytest.mark.parametrize('make', [lambda: CutMixUp(mode='sample', seed=0), lambda: MixChoice([MixUp(), FMix()], mode='sample', seed=0)])
def test_per_sample_blend_or_cut_float_maps_follow(make):
    "A float map target (depth, heat map) under a per-image choice of blending and cutting: it gets each image's own mix"
    x = provenance_batch(8, 1, 24, 24)
    mix, (xm,), (ym,) = make().mix_batch((x.clone(),), (x.clone(),))
    assert mix.geom.cuts is None  # both kinds picked (was: an error about segmentation masks)
    assert torch.equal(ym, xm)  # the same tensor as input and as target: the same values

_INPUT = ['mixup', 'cutmix', 'ricap', 'cutmixup', 'resizemix', 'fmix']
@pytest.mark.parametrize('a,b', [(a, b) for i, a in enumerate(_INPUT) for b in _INPUT[i:]])
@pytest.mark.parametrize('inplace', [False, True])
def test_mixchoice_per_sample_any_two_children(a, b, inplace):
    """Per image, every pair of mixers, two of one kind too (which share work-buffer names), on a batch above the
    small-batch gather: each image is exactly what its own mixer makes of it, and its label weights are its shares"""
    from fastmix.mixers import MIXERS
    x = provenance_batch(16, 3, 32, 32)
    mc = MixChoice([MIXERS[a].cls(), MIXERS[b].cls()], mode='sample', seed=0)
    mix, (xm,), _ = mc.mix_batch((x.clone(),), (torch.arange(16),), inplace=inplace)
    assert len(set(mix.geom.pick.tolist())) == 2  # both children picked: each checked on its images
    check_provenance(x, xm, mix)

def _n_params(learn): return [p.detach().clone() for p in learn.model.parameters()]

@pytest.mark.parametrize('cbs', [lambda: [MixUp(), CutMix()], lambda: [FMix(), ResizeMix()],
                                 lambda: [CutMixUp(), RICAP()], lambda: [CutMix(), FastaiMixUp()]])
def test_two_mixers_is_an_error_before_training(cbs):
    cbs = cbs()
    learn = synth_learner(cbs=cbs)
    lf, before = learn.loss_func, _n_params(learn)
    names = [('fastai ' if isinstance(c, FastaiMixUp) else 'fastmix ') + type(c).__name__ for c in cbs]  # (fastai's MixUp shares a name)
    with pytest.raises(ValueError) as e: learn.fit(1, 1e-2)
    msg = str(e.value)
    assert all(n in msg for n in names) and 'two mixers in one Learner' in msg
    assert 'MixChoice' in msg and 'CutMixUp' in msg
    assert learn.loss_func is lf  # the loss untouched
    assert all(torch.equal(a, b) for a, b in zip(before, _n_params(learn)))  # not one step taken
    # usable: drop one mixer and train
    learn.remove_cb(cbs[1])
    learn.fit(1, 1e-2)
    assert learn.loss_func is lf and np.isfinite(learn.recorder.values[-1][0])

def test_second_mixer_passed_to_fit_is_an_error_and_is_removed():
    learn = synth_learner(cbs=MixUp())
    with pytest.raises(ValueError, match=r'two mixers in one Learner \((fastmix MixUp, fastmix CutMix|fastmix CutMix, fastmix MixUp)\)'):
        learn.fit(1, 1e-2, cbs=CutMix())
    assert not any(isinstance(c, CutMix) for c in learn.cbs)  # fit's own callbacks are removed again
    learn.fit(1, 1e-2)

def test_mixchoice_submixers_are_not_two_mixers():
    learn = synth_learner(cbs=MixChoice([MixUp(), CutMix()], seed=0))
    learn.fit(1, 1e-2)
    assert np.isfinite(learn.recorder.values[-1][0])

@pytest.mark.parametrize('mode', MODES)
def test_nested_choices_repeat_with_one_seed_and_follow_the_fit(mode):
    "A choice among choices: one `seed` repeats every draw, and the inner mixers' schedules read the fit's progress"
    seen = []
    def alpha(pct): seen.append(pct); return 1.
    def make(): return MixChoice([CutMixUp(cutmix_alpha=alpha, switch_prob=1.), RICAP()], probs=[1., 0.], mode=mode, seed=0)
    x, on = torch.rand(6, 3, 8, 8), (np.ones(6, bool) if mode == 'sample' else None)
    a, b = make(), make()
    for _ in range(4):
        ma, mb = a.draw(x, on), b.draw(x, on)
        assert torch.equal(ma.idx, mb.idx) and torch.equal(ma.weights, mb.weights)
    seen.clear()
    learn = synth_learner(cbs=make())
    with learn.no_bar(), learn.no_logging(): learn.fit(2, 1e-3)
    assert len(seen) > 4 and max(seen) > .5  # the inner CutMix's α was read along the fit (not stuck at 0)

def test_fmix_large_decay_stays_noise():
    "A large δ (accepted: any finite δ ≥ 0) overflowed float32 in 1/f^δ: the noise went inf/NaN and the mask a fixed top band"
    noise = fourier_noise(np.random.default_rng(0), 4, 224, 224, decay=20.)
    assert np.isfinite(noise).all()
    m = top_mask(noise, np.full(4, 224 * 224 // 2))
    assert not all((mi == m[0]).all() for mi in m[1:])  # each image its own mask, not one band

@pytest.mark.parametrize('mode', ['batch', 'sample'])
@pytest.mark.parametrize('hw', [(32, 32), (29, 23)])
def test_resizemix_masks_line_up_with_their_pixels(mode, hw):
    "Each image is the one-hot of its mask: after the paste, every pixel's mask class weighs at least ¼ in it (bilinear reads 2×2 around the pixel centre nearest-exact picks)"
    # (torch's 'nearest' reads ⌊i·n/o⌋, up to a pixel off the bilinear centre: 8 % of pasted mask pixels held a class absent from their pixel)
    y = torch.randint(0, 3, (8, *hw), generator=torch.Generator().manual_seed(0))
    x = F.one_hot(y, 3).permute(0, 3, 1, 2).float()
    for seed in range(10):
        mix, (xm,), (ym,) = ResizeMix(seed=seed, mode=mode).mix_batch((x.clone(),), (y.clone(),))
        assert (xm.gather(1, ym[:, None]) >= .25 - 1e-4).all()

@pytest.mark.parametrize('how', ['learner and fit', 'listed twice'])
def test_one_mixer_given_twice_is_an_error_before_training(how):
    "The same mixer object twice in a Learner (`Learner(cbs=cb)` then `fit(cbs=cb)`, or `cbs=[cb, cb]`) would mix every batch twice: an error that says so"
    cb = CutMix(seed=0)
    learn = synth_learner(cbs=cb if how == 'learner and fit' else [cb, cb])
    lf, before = learn.loss_func, _n_params(learn)
    with pytest.raises(ValueError, match=r'fastmix CutMix is in the Learner twice'):
        learn.fit(1, 1e-2, cbs=cb if how == 'learner and fit' else None)
    assert learn.loss_func is lf and all(torch.equal(a, b) for a, b in zip(before, _n_params(learn)))
