"The fast paste paths (CutMix mask, RICAP row windows, one gather for small batches, ResizeMix's gather), work buffers and the mixed cross-entropy, against their definitions"
import numpy as np, torch, pytest
import torch.nn.functional as F
from hypothesis import given, settings, strategies as st, HealthCheck
from fastai.basics import CrossEntropyLossFlat
from fastmix.all import *
from fastmix.core import *
from fastmix.geometry import *
from fastmix.testing import *
from fastmix.geometry import Scratch, gather_pixels, _windows, _window_plan
from fastmix.mixers import MIXERS
from unittest.mock import patch
import fastmix.geometry

GATHER = fastmix.geometry._gather_values
PATHS = {'gather': {'_gather_values': GATHER}, 'general': {'_gather_values': 0}, 'per image': {'_gather_values': 0, '_box_values': 1}}
def paths(name):
    "Which of `Paste`'s paths small test batches take: as they are (one gather), the general ones, or one copy per image and box"
    return patch.multiple(fastmix.geometry, **PATHS[name])

def reference(geom, t):
    "The definition: a per-pixel source map built from the rectangles, one gather"
    g = Paste(geom.idx, np.repeat(geom.rects, len(t), 0) if len(geom.rects) == 1 else geom.rects, geom.keep_base)
    return gather_pixels(t, g.source_map(t.shape[t.ndim-g.d:], t.device))

def layout(x, kind):
    if kind == 'channels_last': return x.contiguous(memory_format=torch.channels_last)
    if kind == 'strided': return x.transpose(-1, -2).contiguous().transpose(-1, -2)  # same values, not dense row-major
    return x

@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shape=st.tuples(st.integers(2, 7), st.integers(1, 4), st.integers(1, 12), st.integers(1, 12)),
       method=st.sampled_from(['cutmix', 'ricap']), mode=st.sampled_from(['batch', 'sample']),
       kind=st.sampled_from(['contiguous', 'channels_last', 'strided']), beta=st.sampled_from([.3, 1., 8.]),
       seed=st.integers(0, 2**31), path=st.sampled_from(list(PATHS)))
def test_fast_paths_match_the_definition(shape, method, mode, kind, beta, seed, path):
    with paths(path): fast_paths_match_the_definition(shape, method, mode, kind, beta, seed)

def fast_paths_match_the_definition(shape, method, mode, kind, beta, seed):
    bs, c, h, w = shape
    cb = CutMix(mode=mode, seed=seed, alpha=beta) if method == 'cutmix' else RICAP(mode=mode, seed=seed, beta=beta)
    x = layout(provenance_batch(bs, c, h, w), kind)
    masks = torch.arange(bs * h * w).view(bs, h, w)  # integer targets take the `where` path
    s = Scratch()
    for _ in range(3):  # the same buffers again: reuse and adoption must not change results
        geom = cb.draw(x, np.ones(bs, bool) if mode == 'sample' else None).geom
        ref = reference(geom, x)
        assert torch.equal(geom.apply(x, scratch=s), ref)
        xi = x.clone(memory_format=torch.preserve_format)
        assert torch.equal(geom.apply(xi, inplace=True, scratch=s), ref)
        assert torch.equal(geom.apply(masks, scratch=s), reference(geom, masks))

def test_windows_past_the_ends():
    flat = torch.arange(1., 11.)
    out = torch.empty(4, 3)
    _windows(flat, _window_plan(np.array([-2, 0, 7, 9]), 10, 3, flat.device), out)
    assert out.tolist() == [[0, 0, 1], [1, 2, 3], [8, 9, 10], [10, 0, 0]]

@pytest.mark.parametrize('make', [lambda: MixUp(seed=1), lambda: CutMix(mode='sample', seed=1), lambda: RICAP(seed=1),
                                  lambda: RICAP(mode='sample', seed=1), lambda: CutMixUp(mode='sample', seed=1)])
@pytest.mark.parametrize('path', PATHS)
def test_returned_batches_are_never_written_again(make, path):
    "In place, RICAP returns a work buffer and reuses the replaced batch later: what it returned must stay as returned"
    with paths(path): returned_batches_are_never_written_again(make)

def returned_batches_are_never_written_again(make):
    cb, kept = make(), []
    for i in range(5):
        x = torch.randn(6, 3, 9, 11, generator=torch.Generator().manual_seed(i))
        mix, (xm,), _ = cb.mix_batch((x,), (torch.arange(6),), inplace=True)
        kept.append((xm, xm.clone()))
    for xm, snap in kept: assert torch.equal(xm, snap)

@pytest.mark.parametrize('feed_back', [False, True])
@pytest.mark.parametrize('mode', ['batch', 'sample'])
@pytest.mark.parametrize('path', PATHS)
def test_same_tensor_every_batch(feed_back, mode, path):
    "A loader that yields one tensor again and again (or the mixed batch back): never read and written at once"
    with paths(path): same_tensor_every_batch(feed_back, mode)

def same_tensor_every_batch(feed_back, mode):
    cb, x = RICAP(mode=mode, seed=3), provenance_batch(5, 2, 8, 9)
    for _ in range(4):
        x0 = x.clone()
        mix, (xm,), _ = cb.mix_batch((x,), (torch.arange(5),), inplace=True)
        assert torch.equal(xm, reference(mix.geom, x0))
        if feed_back: x = xm
        else: assert torch.equal(x, x0)  # RICAP never writes into the batch it reads

@pytest.mark.parametrize('ignore_index', [-100, 3])
@pytest.mark.parametrize('red', ['mean', 'sum', 'none'])
@pytest.mark.parametrize('K', [2, 4])
def test_mixed_ce_with_ignored_targets(ignore_index, red, K):
    g = torch.Generator().manual_seed(K)
    pred = torch.randn(8, 5, generator=g, dtype=torch.float64, requires_grad=True)
    Y = torch.randint(0, 5, (8, K), generator=g)
    Y[1, 0] = Y[4, K-1] = ignore_index
    w = torch.rand(8, K, generator=g, dtype=torch.float64); w /= w.sum(1, keepdim=True)
    if K == 2: w = w[:1].expand(8, K)  # per-batch weights are one row broadcast, as the handler uploads them
    lf = CrossEntropyLossFlat(ignore_index=ignore_index, reduction=red)
    got = mixed_loss(lf, pred, Y.T.contiguous().T, w)  # as `after_loss` gathers them: (B, K), column-major
    terms = [w[:, k] * F.cross_entropy(pred, Y[:, k], reduction='none', ignore_index=ignore_index) for k in range(K)]
    per = sum(terms)
    # a mean: each source's terms over its own count of targets not ignored (what `F.cross_entropy` divides one source by)
    exp = sum(t.sum() / (Y[:, k] != ignore_index).sum() for k, t in enumerate(terms)) if red == 'mean' else per.sum() if red == 'sum' else per
    if red == 'mean' and K == 2:  # per-batch weights: the MixUp loss λ·CE(y_a) + (1−λ)·CE(y_b), each reduced by itself
        torch.testing.assert_close(got, sum(w[0, k] * F.cross_entropy(pred, Y[:, k], ignore_index=ignore_index) for k in range(K)))
    torch.testing.assert_close(got, exp)
    ga, = torch.autograd.grad(got.sum(), pred)
    ge, = torch.autograd.grad(exp.sum(), pred)
    torch.testing.assert_close(ga, ge)

@pytest.mark.parametrize('mode', ['batch', 'sample'])
@pytest.mark.parametrize('dtype', [torch.float64, torch.float32, torch.bfloat16])
@pytest.mark.parametrize('kind', ['contiguous', 'channels_last'])
def test_mixup_by_cycles_is_the_blend(mode, dtype, kind):
    "Large images are blended in place along the permutation's cycles: bit for bit the gather-then-lerp result"
    cb, s = MixUp(seed=5, mode=mode, p=.7), Scratch()
    for i in range(4):
        x = layout(torch.randn(9, 3, 10, 12, generator=torch.Generator().manual_seed(i)).to(dtype), kind)
        mix = cb.draw(x, np.arange(9) % 3 > 0 if mode == 'sample' else None)
        ref = mix.geom.apply(x.clone(memory_format=torch.preserve_format), inplace=True, scratch=s)
        with paths('per image'):
            xi = x.clone(memory_format=torch.preserve_format)
            got = mix.geom.apply(xi, inplace=True, scratch=s)
        assert got is xi and torch.equal(got, ref)
        # and the definition: each image blended with its partner by its weight (per batch: one number, not rounded)
        w = mix.geom.w if mode == 'batch' else mix.weights[:, 1].to(dtype).view(-1, 1, 1, 1)
        assert torch.equal(ref, x.lerp(x[mix.idx[1]], w))

def test_blend_by_cycles_needs_a_permutation():
    "Partners drawn with repeats are no permutation: the large-image path falls back to gathering them first"
    x = torch.randn(4, 3, 8, 8, dtype=torch.float64)
    idx, w = torch.tensor([[0, 1, 2, 3], [1, 1, 0, 2]]), torch.tensor([[.7, .3]] * 4, dtype=torch.float64)
    with paths('per image'): got = Blend(idx, w).apply(x.clone(), inplace=True, scratch=Scratch())
    assert torch.equal(got, x.lerp(x[idx[1]], .3))

@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shape=st.tuples(st.integers(1, 7), st.integers(0, 4), st.integers(1, 12), st.integers(1, 12)),
       mode=st.sampled_from(['batch', 'sample']), kind=st.sampled_from(['contiguous', 'channels_last', 'strided']),
       dtype=st.sampled_from([torch.float32, torch.float64, torch.bfloat16]), seed=st.integers(0, 2**31))
def test_resizemix_gather_matches_interpolate(shape, mode, kind, dtype, seed):
    "ResizeMix's small-batch gather (`ResizePaste.gather_small`) against the general path (`F.interpolate` per box size)"
    bs, c, h, w = shape
    x = layout(torch.rand(bs, *([c] if c else []), h, w).to(dtype), kind if c else 'contiguous')  # c = 0: (B, H, W)
    masks = torch.randint(0, 5, (bs, h, w))
    geom = ResizeMix(mode=mode, seed=seed, scale=(.05, 1.)).draw(x, np.ones(bs, bool) if mode == 'sample' else None).geom
    assert geom.small(x) and geom.small(masks)
    with paths('general'): assert not geom.small(x); ref, mref = geom.apply(x), geom.apply(masks)
    out = geom.apply(x)
    torch.testing.assert_close(out, ref)  # bilinear: the same sample points and weights, summed in another order
    assert torch.equal(geom.apply(masks), mref)  # nearest: the same pixels
    xi = x.clone(memory_format=torch.preserve_format)
    assert geom.apply(xi, inplace=True) is xi and torch.equal(xi, out)
    assert out.stride() == ref.stride()

@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(shape=st.tuples(st.integers(1, 7), st.integers(0, 4), st.integers(1, 12), st.integers(1, 12)),
       mode=st.sampled_from(['batch', 'sample']), kind=st.sampled_from(['contiguous', 'channels_last', 'strided']),
       seed=st.integers(0, 2**31))
def test_fmix_gather_is_the_mask_paste(shape, mode, kind, seed):
    "FMix's small-batch gather (`MaskPaste.flat_source`) against the general path (partners blended in by the mask): bit for bit"
    bs, c, h, w = shape
    x = layout(provenance_batch(bs, max(c, 1), h, w), kind if c else 'contiguous')
    x = x if c else x[:, 0].contiguous()
    masks = torch.randint(0, 5, (bs, h, w))
    geom = FMix(mode=mode, seed=seed).draw(x, np.ones(bs, bool) if mode == 'sample' else None).geom
    with paths('general'): ref, mref = geom.apply(x), geom.apply(masks)
    assert geom.small(x) == x.is_contiguous()
    assert torch.equal(geom.apply(x), ref) and torch.equal(geom.apply(masks), mref)
    s = Scratch()
    for _ in range(2): assert torch.equal(geom.apply(x.clone(memory_format=torch.preserve_format), inplace=True, scratch=s), ref)

@pytest.mark.parametrize('make', [lambda s: CutMixUp(mode='sample', seed=s),
                                  lambda s: MixChoice([MixUp(), CutMix(), FMix()], probs=[.3, .3, .4], mode='sample', seed=s)])
@pytest.mark.parametrize('kind', ['contiguous', 'channels_last'])
def test_select_by_one_lerp_is_each_images_geometry(make, kind):
    "Per sample, a choice among MixUp, CutMix and FMix is one gather and one lerp (`Select.lerp_weight`): every image exactly what the geometry it picked makes, in place too"
    x = layout(provenance_batch(8, 3, 32, 32), kind)
    for seed in range(6):
        mix, (xm,), _ = make(seed).mix_batch((x.clone(),), (torch.arange(8),))
        assert mix.geom.lerp_weight(x) is not None and xm.stride() == x.stride()
        check_provenance(x, xm, mix)
        _, (xi,), _ = make(seed).mix_batch((x.clone(),), (torch.arange(8),), inplace=True)
        assert torch.equal(xi, xm)
    # broken on purpose, it fails: the partners of the wrong geometry
    mix, (xm,), _ = make(0).mix_batch((x.clone(),), (torch.arange(8),))
    with pytest.raises(AssertionError):
        g = mix.geom; g.partner = g.partner.roll(1)
        check_provenance(x, g.apply(x), mix)

def test_a_batch_held_elsewhere_is_never_a_work_buffer():
    "A replaced batch becomes the next work buffer only when nothing else holds it: reuse costs nothing, and overwrites nobody's data"
    like, ptr = torch.randn(4, 3, 8, 8), lambda t: t.untyped_storage().data_ptr()
    sc = Scratch(); t = torch.randn(4, 3, 8, 8); p = ptr(t); sc.adopt('out', t); del t
    assert ptr(sc('out', like)) == p  # nobody else holds it: reused as it is
    for hold in (lambda t: [t], lambda t: t[:2], lambda t: t.numpy()):  # the tensor itself, a view of it, an array over it
        sc = Scratch(); t = torch.randn(4, 3, 8, 8); kept, copy = hold(t), t.clone(); sc.adopt('out', t); del t
        buf = sc('out', like)
        buf.fill_(7.)
        first = kept[0] if isinstance(kept, list) else kept
        assert torch.equal(torch.as_tensor(first), copy[:len(first)]) and ptr(buf) != ptr(torch.as_tensor(first))

@pytest.mark.parametrize('make', [lambda: RICAP(seed=0), lambda: RICAP(seed=0, mode='sample'), lambda: CutMix(seed=0),
                                  lambda: CutMix(seed=0, mode='sample'), lambda: FMix(seed=0), lambda: FMix(seed=0, mode='sample')])
def test_batches_a_dataset_keeps_are_not_overwritten(make):
    """A loader that yields the batches its dataset keeps (fastai `DataLoader(bs=None)`): these small batches are mixed
    into new memory, never into the dataset's tensors"""
    from fastai.basics import DataLoaders, Learner
    from fastai.data.load import DataLoader as FDL
    from fastmix.demo import small_cnn
    g = torch.Generator().manual_seed(0)
    batches = [(torch.randn(8, 3, 8, 8, generator=g), torch.randint(0, 3, (8,), generator=g)) for _ in range(4)]
    kept = [x.clone() for x, _ in batches]
    learn = Learner(DataLoaders(FDL(batches, bs=None), FDL(batches[:1], bs=None)), small_cnn(3, 3), loss_func=CrossEntropyLossFlat(), cbs=make())
    with learn.no_bar(), learn.no_logging(): learn.fit(2)
    assert all(torch.equal(x, k) for (x, _), k in zip(batches, kept))  # was: each held the next batch's mix

def test_fastai_batches_are_mixed_in_place_and_keep_their_type():
    "A DataBlock's batches are `TensorImage` views of the whole of a plain tensor: they are mixed in place, as plain tensors, and stay `TensorImage`"
    from fastai.torch_core import TensorImage, TensorImageBW
    from fastmix.demo import mnist_dls
    xb, _ = mnist_dls(64, 16, bs=32).one_batch()  # (32×1×28×28 values: above the small batches, which get new memory)
    assert type(xb) is TensorImageBW and xb._base is not None and MixUp().can_overwrite(xb)  # was False: never in place in a fit
    assert not MixUp().can_overwrite(xb[:16].clone())  # a small batch: never
    assert not MixUp().can_overwrite(torch.randn(8, 3, 6, 6)[:4])  # a view of part of a tensor: never
    base = torch.randn(8, 3, 40, 40)  # above the small-batch gather
    for cb in (MixUp(seed=0), CutMix(seed=0), RICAP(seed=0), CutMix(seed=0, mode='sample')):
        t = base.clone().view(base.shape).as_subclass(TensorImage)
        t.img_size = (40, 40)  # metadata, as fastai's transforms set it
        mix, (xm,), _ = cb.mix_batch((t,), (torch.arange(8),), inplace=True)
        assert type(xm) is TensorImage and xm.img_size == (40, 40)
        assert torch.equal(xm.as_subclass(torch.Tensor), mix.geom.apply(base.clone()))
        if not isinstance(cb, RICAP): assert xm is t  # in place: the batch itself (RICAP builds a new one in its buffer)

def test_when_the_replaced_batch_is_held_the_last_own_buffer_serves_unless_held_too():
    "fastai's loop may still hold the batch it gave last: the buffer returned the time before serves (no allocation), but not while held"
    like, ptr = torch.randn(4, 3, 8, 8), lambda t: t.untyped_storage().data_ptr()
    sc, keep = Scratch(), []
    out = sc('out', like); p = ptr(out); del out               # our own buffer, returned once and given up
    t = torch.randn(4, 3, 8, 8); keep.append(t); sc.adopt('out', t); del t  # the replaced batch, still held
    out = sc('out', like)
    assert ptr(out) == p and ptr(out) != ptr(keep[0])          # the own buffer again, not the held batch
    t = torch.randn(4, 3, 8, 8); keep.append(t); sc.adopt('out', t); del t
    assert ptr(sc('out', like)) not in (p, ptr(keep[1]))       # `out` is still held here: a new buffer

@pytest.mark.parametrize('mode', ['batch', 'sample'])
@pytest.mark.parametrize('name', [n for n in MIXERS if n != 'manifold'])
def test_small_typed_batches_mix_as_plain_ones_and_keep_their_types(name, mode):
    "A small `TensorImage` batch (a new output, not written in place) is mixed as its plain tensor is and keeps its type and metadata; typed targets too: class indices returned as they came, multi-hot labels blended, masks cut"
    from fastai.torch_core import TensorImage, TensorCategory, TensorMultiCategory, TensorMask
    g = torch.Generator().manual_seed(0)
    base, y = torch.randn(8, 3, 6, 6, generator=g), torch.arange(8) % 3
    hot, mask = torch.eye(3)[y], torch.randint(0, 4, (8, 6, 6), generator=g)
    cuts = MIXERS[name](p=1.).kinds() == {True}  # (a mask can't be blended: only the cutting mixers take one)
    def batch(typed):
        x = base.clone()
        if not typed: return (x,), (y, hot) + ((mask,) if cuts else ())
        x = x.as_subclass(TensorImage); x.img_size = (6, 6)
        return (x,), (y.as_subclass(TensorCategory), hot.as_subclass(TensorMultiCategory)) + ((mask.as_subclass(TensorMask),) if cuts else ())
    xb, yb = batch(True)
    mix, (xm,), ym = MIXERS[name](seed=0, mode=mode, p=1.).mix_batch(xb, yb)
    pmix, (pxm,), pym = MIXERS[name](seed=0, mode=mode, p=1.).mix_batch(*batch(False))
    assert torch.equal(mix.idx, pmix.idx) and not torch.equal(pxm, base)
    assert type(xm) is TensorImage and xm.img_size == (6, 6) and torch.equal(xm.as_subclass(torch.Tensor), pxm)
    assert ym[0] is yb[0] and [type(t) for t in ym] == [type(t) for t in yb]
    assert all(torch.equal(a.as_subclass(torch.Tensor), b) for a, b in zip(ym[1:], pym[1:]))
    assert not torch.equal(pym[1], hot)  # the labels were blended (and the mask cut: `check_provenance` elsewhere)

@pytest.mark.parametrize('make', [lambda s: CutMixUp(mode='sample', seed=s),
                                  lambda s: MixChoice([MixUp(), CutMix(), FMix()], probs=[.3, .3, .4], mode='sample', seed=s),
                                  lambda s: MixChoice([CutMix(), FMix()], mode='sample', seed=s)])
@pytest.mark.parametrize('shape', [(4, 3, 8, 8), (6, 1, 6, 7), (2, 3, 5, 5)])
@pytest.mark.parametrize('dtype', [torch.float32, torch.float64, torch.bfloat16])
def test_select_of_a_small_batch_is_one_planned_take(make, shape, dtype):
    "Per sample, a small batch is one `take` of planned sources, one `lerp`, one `where`: exactly what each image's own geometry makes, inf and NaN included"
    x = provenance_batch(*shape).to(dtype)
    x[0, 0, 0, 0], x[-1, -1, -1, -1], x[1, 0, -1, 0] = float('inf'), float('nan'), -float('inf')  # a cut moves them, exactly
    for seed in range(8):
        mix, (xm,), _ = make(seed).mix_batch((x.clone(),), (torch.arange(len(x)),))
        g = mix.geom
        assert g.plan is not None, 'the small plan is made when the mixes are drawn (`Select.prepare_all`)'
        plan, g.plan = g.plan, None
        ref = g.apply(x)  # each geometry applied, each image picked from its own
        torch.testing.assert_close(xm, ref, rtol=0, atol=0, equal_nan=True)
        if dtype == torch.float32:  # and on a batch of finite values, each value's provenance
            clean = provenance_batch(*shape)
            mix, (xm,), _ = make(seed).mix_batch((clean.clone(),), (torch.arange(len(x)),))
            assert mix.geom.plan is not None
            check_provenance(clean, xm, mix)
    # broken on purpose, it fails: the partners' values from the wrong images
    mix, (xm,), _ = make(0).mix_batch((x.clone(),), (torch.arange(len(x)),))
    g = mix.geom; src, w, cut = g.plan[1]; g.plan = g.plan[0], (src.roll(1, 1), w, cut)
    with pytest.raises(AssertionError): torch.testing.assert_close(g.apply(x), xm, rtol=0, atol=0, equal_nan=True)

def test_select_plans_small_batches_only_where_each_geometry_has_a_gather():
    "Batches over 16,384 values, choices holding a geometry with no planned gather (ResizeMix) or more than one partner (RICAP), and batches of another dtype mix as before"
    x = provenance_batch(4, 3, 8, 8)
    assert MixChoice([CutMix(), ResizeMix()], mode='sample', seed=0).mix_batch((x,), (torch.arange(4),))[0].geom.plan is None
    assert MixChoice([MixUp(), RICAP()], mode='sample', seed=0).mix_batch((x,), (torch.arange(4),))[0].geom.plan is None  # K = 4: no one partner
    assert CutMixUp(mode='sample', seed=0).mix_batch((provenance_batch(8, 3, 32, 32),), (torch.arange(8),))[0].geom.plan is None
    mix, (xm,), _ = CutMixUp(mode='sample', seed=0).mix_batch((x,), (torch.arange(4),))
    assert mix.geom.plan is not None and mix.geom.apply(x.double()) is not None  # another dtype: each geometry applies itself
    torch.testing.assert_close(mix.geom.apply(x.double()), xm.double(), rtol=0, atol=1e-6)

@pytest.mark.parametrize('make', [lambda s: CutMixUp(mode='sample', p=.5, seed=s),
                                  lambda s: MixChoice([CutMix(), CutMix(alpha=.2)], mode='sample', p=.5, seed=s),
                                  lambda s: MixChoice([MixUp(), MixUp(alpha=.2, keep_dominant=True)], mode='sample', p=.5, seed=s)])
@pytest.mark.parametrize('shape', [(4, 3, 8, 8), (8, 3, 32, 32)])  # planned; the general path
def test_a_choice_leaves_its_unmixed_images_as_they_are(make, shape):
    "With `p` < 1 an image that picked a mixer which mixed none of its batch (so drew no geometry there) is itself, bit for bit: inf and −0.0 too"
    # (the plan blended it with itself at weight 0, and the general path took it from another mixer's geometry: a blend
    # at weight 0 makes NaN of an inf, and +0.0 of −0.0. An unmixed image that picked a blend which mixed others is
    # blended at weight 0, as by `MixUp` alone: exact on finite values, which `check_untouched_rows` checks)
    x = provenance_batch(*shape)
    xi = x.clone(); xi[:, 0, 0, 0], xi[:, 0, 0, 1] = float('inf'), -0.0
    kept = 0
    for seed in range(30):
        mix, (xm,), _ = make(seed).mix_batch((x.clone(),), (torch.arange(len(x)),))
        check_untouched_rows(x, xm, mix)
        mix, (xm,), _ = make(seed).mix_batch((xi.clone(),), (torch.arange(len(x)),))
        k = mix.geom.keep
        if k is not None:
            kept += int(k.sum())
            assert torch.equal(xm[k], xi[k]) and torch.signbit(xm[k][:, 0, 0, 1]).all()
    assert kept > 0  # (the case happens: a test that can fail)

@pytest.mark.parametrize('mode', ['batch', 'sample'])
@pytest.mark.parametrize('shape', [(4, 3, 8, 8), (6, 1, 6, 7), (2, 3, 5, 5)])
@pytest.mark.parametrize('dtype', [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize('kind', ['contiguous', 'channels_last'])
def test_a_small_blend_takes_its_partners_by_a_planned_index(mode, shape, dtype, kind):
    "A small batch's MixUp gathers the partners by one `take` of the index planned when the mix was drawn: exactly the blend of `index_select`'s partners, inf and NaN included, in place or not"
    x = layout(provenance_batch(*shape).to(dtype), kind)
    x[0, 0, 0, 0], x[-1, -1, -1, -1], x[1, 0, -1, 0] = float('inf'), float('nan'), -float('inf')
    on = np.ones(len(x), bool) if mode == 'sample' else None
    for seed in range(6):
        g = MixUp(seed=seed, mode=mode).draw(x, on).geom
        assert g.plan is not None, 'planned when drawn (`Blend.prepare_all`)'
        sc = Scratch()
        outs = [g.apply(x), g.apply(x, scratch=sc), g.apply(x.clone(memory_format=torch.preserve_format), inplace=True, scratch=sc)]
        plan, g.plan = g.plan, None
        ref = g.apply(x)  # partners by `index_select`
        for o in outs: torch.testing.assert_close(o, ref, rtol=0, atol=0, equal_nan=True)
        if dtype == torch.float32 and kind == 'contiguous':  # each value's provenance, on finite values
            clean = provenance_batch(*shape)
            mix, (xm,), _ = MixUp(seed=seed, mode=mode).mix_batch((clean.clone(),), (torch.arange(len(x)),))
            assert mix.geom.plan is not None
            check_provenance(clean, xm, mix)
    # broken on purpose, it fails: the partners' values from the wrong images
    g.plan = plan[0], plan[1].roll(1, 0)
    with pytest.raises(AssertionError): torch.testing.assert_close(g.apply(x), ref, rtol=0, atol=0, equal_nan=True)

def test_blends_are_planned_for_small_batches_only_and_autograd_takes_its_own_path():
    "Batches over 16,384 values, blends of more than one partner and batches of another shape mix as before; an input in an autograd graph gets its gradient through `index_select`"
    assert MixUp(seed=0).draw(provenance_batch(8, 3, 32, 32), None).geom.plan is None
    x = provenance_batch(4, 3, 8, 8)
    mix = MixUp(seed=0).draw(x, None)
    assert Blend(mix.idx, mix.weights, keep_base=False).plan is None and mix.geom.plan[0] == (x.shape, x.device)
    other = provenance_batch(4, 3, 8, 7)  # another shape than planned: `index_select`
    torch.testing.assert_close(mix.geom.apply(other), other.lerp(other[mix.idx[1]], mix.geom.w), rtol=0, atol=0)
    xg = x.clone().requires_grad_()
    mix.geom.apply(xg).sum().backward()
    w = mix.geom.w  # each image weighs 1 − w in its own output and w in its partner's
    torch.testing.assert_close(xg.grad, torch.full_like(x, 1 - w) + torch.full_like(x, w), rtol=0, atol=1e-6)

@pytest.mark.parametrize('mode', ['batch', 'sample'])
@pytest.mark.parametrize('name', list(MIXERS))
def test_the_common_batch_is_mixed_as_the_general_path_mixes_it(name, mode):
    "One float input and one class index per image (`common_input`) skip the general path's checks: the same pixels, class indices left to the loss, the batch's own target"
    from fastai.torch_core import TensorImage, TensorCategory
    x, y = provenance_batch(6, 3, 8, 8), torch.arange(6) % 4
    for xb, yb in (((x,), (y,)), ((x.as_subclass(TensorImage),), (y.as_subclass(TensorCategory),))):
        for seed in range(3):
            cb = MIXERS[name](seed=seed, mode=mode, p=1.)
            assert cb.common_input(xb, yb) is not None
            mix, (xm,), ym = cb.mix_batch(xb, yb)
            assert ym is yb and mix.in_loss == (True,) and type(xm) is type(xb[0])
            (ref,), (yr,) = cb.apply_mix(mix, x, (x,), (y,))  # the general path, the same mix
            assert torch.equal(xm.as_subclass(torch.Tensor), ref) and yr is y and mix.in_loss == (True,)
    cb, blends = MIXERS[name](seed=0, mode=mode), cb.image_only is False
    for xb, yb, y_int, common in [((x, x), (y,), None, False), ((x,), (y, y), None, False), ((x,), (y.float(),), None, False),
                                  ((x,), (y,), False, False), ((x.long(),), (y,), None, False), ((x[:1],), (y[:1],), None, False),
                                  ((x,), (y[:5],), None, False), ((x,), (y[:, None],), None, False), ((torch.tensor(1.),), (y,), None, False),
                                  ((x.view(6, -1),), (y,), None, blends), ((x[:, :, :0],), (y,), None, blends)]:  # (only blends take those)
        assert (cb.common_input(xb, yb, y_int) is not None) == common, (tuple(xb[0].shape), tuple(yb[0].shape), y_int)

@pytest.mark.parametrize('mode', ['batch', 'sample'])
@pytest.mark.parametrize('name', list(MIXERS))
def test_typed_float64_batches_keep_their_dtype(name, mode):
    "A float64 `TensorImage` batch and float64 `TensorMultiCategory` labels come back float64 (fastai's `retain_type` would make them float32)"
    from fastai.torch_core import TensorImage, TensorCategory, TensorMultiCategory
    x, y = provenance_batch(6, 3, 8, 8), torch.arange(6) % 3
    assert x.dtype == torch.float64
    for yb in ((y.as_subclass(TensorCategory),), (torch.eye(3, dtype=torch.float64)[y].as_subclass(TensorMultiCategory),)):
        mix, (xm,), ym = MIXERS[name](seed=0, mode=mode, p=1.).mix_batch((x.as_subclass(TensorImage),), yb)
        pmix, (pxm,), pym = MIXERS[name](seed=0, mode=mode, p=1.).mix_batch((x,), (yb[0].as_subclass(torch.Tensor),))
        assert type(xm) is TensorImage and xm.dtype == torch.float64 and torch.equal(xm.as_subclass(torch.Tensor), pxm)
        assert type(ym[0]) is type(yb[0]) and ym[0].dtype == yb[0].dtype and torch.equal(ym[0].as_subclass(torch.Tensor), pym[0])

def test_subclasses_that_change_the_general_path_get_it_for_every_batch():
    "A mixer overriding `check_batch`, `apply_mix`, `follows` or `check_maps` has them run on the common batch too; fastmix's own mixers skip them; a 1-D integer `TensorPoint` target is refused as keypoints are"
    from fastai.vision.core import TensorPoint
    calls = []
    class Strict(MixUp):
        def check_batch(self, x, yb, xb=(), y_int=False):
            super().check_batch(x, yb, xb, y_int)
            if torch.isnan(x).any(): raise ValueError('NaN pixels')
    class Logged(CutMix):
        def apply_mix(self, *args, **kwargs): calls.append(1); return super().apply_mix(*args, **kwargs)
    class Follows(RICAP):
        def follows(self, t, x, sp, cuts): calls.append(2); return super().follows(t, x, sp, cuts)
    class Strict2(Strict): pass
    x, y = provenance_batch(4, 3, 8, 8), torch.arange(4)
    xn = x.clone(); xn[0, 0, 0, 0] = float('nan')
    for cls in (Strict, Strict2):
        with pytest.raises(ValueError, match='NaN pixels'): cls(seed=0).mix_batch((xn,), (y,))
    mix, (xm,), _ = Logged(seed=0).mix_batch((x,), (y,))
    mix2, (xm2,), _ = Follows(seed=0).mix_batch((x,), (y,))
    assert calls == [1, 2] and torch.equal(xm, CutMix(seed=0).mix_batch((x,), (y,))[1][0])
    assert not any(m.cls.general_only for m in MIXERS.values()) and MixChoice([MixUp(), CutMix()]).general_only is False
    with pytest.raises(TypeError, match='PointBlock'): MixUp(seed=0).mix_batch((x,), (y.as_subclass(TensorPoint),))
