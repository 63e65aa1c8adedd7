"Signals (B, C, L) and volumes (B, C, D, H, W) through the same geometry as images (issue 16): exact provenance, label maps, errors"
import re, pytest, numpy as np, torch
from torch import nn
from fastai.basics import *
from fastmix.all import *
from fastmix.core import *
from fastmix.geometry import *
from fastmix.testing import *

@pytest.fixture(autouse=True, scope='module')
def one_thread():
    n = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)

SHAPES = {'signal': (2, 23), 'image': (2, 9, 7), 'volume': (2, 5, 6, 4)}  # (C, *space)
METHODS = {'mixup': MixUp, 'cutmix': CutMix, 'ricap': RICAP}
CASES = [(s, m, mode) for s in SHAPES for m in METHODS for mode in ('batch', 'sample')]

def label_map(x):
    "A (B, *space) integer map holding each position's own flat index, as `provenance_batch` does"
    return x[:, 0].round().long()

@pytest.mark.parametrize('shape,method,mode', CASES)
@pytest.mark.parametrize('p', [1., .6])
def test_exact_provenance(shape, method, mode, p):
    "Every output position traced to its source; weights the exact shares; label maps cut with the pixels"
    bs, cb = 7, METHODS[method](mode=mode, p=p, seed=hash((shape, method, mode)) % 1000)
    x = provenance_batch(bs, *SHAPES[shape])
    n_mixed = 0
    for _ in range(6):
        for inplace in (False, True):
            xi, m = x.clone(), label_map(x)
            mix, (xm,), (ym,) = cb.mix_batch((xi,), (m,), inplace=inplace)
            if mix is None: continue
            n_mixed += 1
            check_provenance(x, xm, mix)
            check_untouched_rows(x, xm, mix)
            if mix.geom.cuts:
                assert mix.K == (2 if method == 'cutmix' else 2 ** (x.ndim - 2))
                assert ym.shape == m.shape and torch.equal(ym, label_map(xm))  # the label map follows the pixels
            else: assert ym is m  # a blend leaves integer maps to the loss
    assert n_mixed > 0

@pytest.mark.parametrize('shape', SHAPES)
@pytest.mark.parametrize('method', ['cutmix', 'ricap'])
def test_per_sample_fast_path_equals_the_definition(shape, method):
    "Each per-sample path (box mask, tiles, gather) agrees with `Paste`'s per-position gather, bit for bit"
    x = torch.randn(6, *SHAPES[shape], dtype=torch.float64)
    cb = METHODS[method](mode='sample', seed=2)
    for _ in range(4):
        mix = cb.draw(x, np.ones(6, dtype=bool))
        g = mix.geom
        ref = gather_pixels(x, Paste(g.idx, g.rects, g.keep_base).source_map(x.shape[2:], x.device))
        assert torch.equal(g.apply(x), ref)
        assert torch.equal(g.apply(x.clone(), inplace=True, scratch=Scratch()), ref)

@pytest.mark.parametrize('shape', SHAPES)
def test_cutmix_box_is_a_one_minus_lambda_share(shape, monkeypatch):
    "A centred box: a segment of (1−λ)·L, a √(1−λ) rectangle, a ∛(1−λ) box; the weight is the exact share"
    size = SHAPES[shape][1:]
    cb = CutMix(seed=0)
    monkeypatch.setattr(cb, 'sample_beta', lambda name, a, n: np.full(n, .5))
    monkeypatch.setattr(cb, 'randint', lambda hi, n: np.full(n, hi // 2))
    x = provenance_batch(4, *SHAPES[shape])
    mix, (xm,), _ = cb.mix_batch((x,), (torch.arange(4),))
    box = mix.geom.rects[0, 1, :2 * len(size)]
    sides = box[1::2] - box[0::2]
    assert sides.tolist() == [int(np.floor(s * .5 ** (1 / len(size)) + .5)) for s in size]
    assert mix.weights[0, 1].item() == pytest.approx(np.prod(sides) / np.prod(size), abs=1e-7)
    check_provenance(x, xm, mix)

def test_ricap_tiles_of_a_signal_and_a_volume():
    "2 segments of a signal, 8 blocks of a volume, each from its own permutation, weights the tile volumes"
    for shape, K in (('signal', 2), ('volume', 8)):
        x = provenance_batch(5, *SHAPES[shape])
        mix, (xm,), _ = RICAP(beta=1., seed=4).mix_batch((x,), (torch.arange(5),))
        assert mix.K == K and mix.weights.shape == (5, K)
        r = mix.geom.rects[0]
        d = len(SHAPES[shape]) - 1
        ext = (r[:, 1:2*d:2] - r[:, 0:2*d:2]).prod(1)
        assert ext.sum() == np.prod(SHAPES[shape][1:])  # the tiles cover the output exactly
        torch.testing.assert_close(mix.weights[0].double(), torch.tensor(ext / ext.sum()))
        check_provenance(x, xm, mix)

@pytest.mark.parametrize('size', [(1,), (2,), (1, 1, 1), (1, 3, 1), (2, 1, 2)])
@pytest.mark.parametrize('method', ['cutmix', 'ricap'])
@pytest.mark.parametrize('mode', ['batch', 'sample'])
def test_tiny_signals_and_volumes(size, method, mode):
    "Length-1 axes: boxes and tiles of zero or whole extent, weights still the exact shares"
    x = provenance_batch(6, 2, *size)
    cb = METHODS[method](mode=mode, seed=sum(size))
    for _ in range(5):
        mix, (xm,), (ym,) = cb.mix_batch((x,), (label_map(x),))
        check_provenance(x, xm, mix)
        assert torch.equal(ym, label_map(xm))

@pytest.mark.parametrize('shape', SHAPES)
@pytest.mark.parametrize('method', ['cutmix', 'ricap'])
def test_extra_inputs_and_float_maps_follow(shape, method):
    "A second input with other channels and a float map of the same space get the same geometry; flat inputs don't"
    c, *size = SHAPES[shape]
    x = provenance_batch(6, c, *size)
    x2 = provenance_batch(6, 1, *size) + .25
    flat = torch.randn(6, 5)
    dist = x[:, 0] / 7.  # a per-position regression target
    mix, (xm, xm2, fm), (dm,) = METHODS[method](seed=1).mix_batch((x, x2, flat), (dist,))
    assert torch.equal(xm2, xm[:, :1] + .25) and fm is flat
    assert torch.equal(dm, xm[:, 0] / 7.)

@pytest.mark.parametrize('shape', ['signal', 'volume'])
def test_mixup_blends_signals_and_volumes(shape):
    "MixUp on any float batch: the blend of each item and its partner, per batch or per item"
    x = torch.randn(8, *SHAPES[shape], dtype=torch.float64)
    for mode in ('batch', 'sample'):
        mix, (xm,), _ = MixUp(mode=mode, seed=0).mix_batch((x,), (torch.arange(8),))
        w = mix.weights.double().view(8, 2, *[1] * (x.ndim - 1))
        torch.testing.assert_close(xm, w[:, 0] * x + w[:, 1] * x[mix.idx[1]], rtol=1e-6, atol=1e-6)
        assert mix.weights[:, 0].unique().numel() == (1 if mode == 'batch' else 8)

@pytest.mark.parametrize('method', ['cutmix', 'ricap'])
@pytest.mark.parametrize('shape', [(4, 3), (4,), (4, 1, 3, 8, 8, 2)])
def test_shapes_without_space_are_clear_errors(method, shape):
    with pytest.raises(ValueError, match=rf"{METHODS[method].__name__} mixes batches of shape \(B, C, L\), "
                                         rf"\(B, C, H, W\) or \(B, C, D, H, W\), got shape {re.escape(str(shape))}$"):
        METHODS[method](seed=0).mix_batch((torch.randn(shape),), (torch.arange(4),))

def test_mixup_on_a_table_still_works():
    x = torch.randn(6, 4, dtype=torch.float64)
    mix, (xm,), _ = MixUp(seed=0).mix_batch((x,), (torch.arange(6),))
    torch.testing.assert_close(xm, mix.weights[:, :1].double() * x + mix.weights[:, 1:].double() * x[mix.idx[1]])

@pytest.mark.parametrize('seed', range(8))
def test_per_sample_switching_with_label_maps_is_an_error(seed):
    "CutMixUp per sample blends some items and cuts others: a label map can't follow both, as for images; at the first batch, whatever it draws"
    x = provenance_batch(2, 1, 12)  # two items: often both cut, or both blended
    with pytest.raises(ValueError, match=r"can't mix segmentation masks \(integer label maps\); use mode='batch'"):
        CutMixUp(mode='sample', switch_prob=.9, seed=seed).mix_batch((x,), (label_map(x),))
    # a choice that can only cut (or only blend) never switches
    for probs in ([0., 1.], [1., 0.]): MixChoice([MixUp(), CutMix()], probs=probs, mode='sample', seed=seed).mix_batch((x,), (label_map(x),))

@pytest.mark.parametrize('method', ['mixup', 'cutmix', 'ricap'])
@pytest.mark.parametrize('mode', ['batch', 'sample'])
def test_training_on_signals_and_volumes(method, mode):
    "A few fastai steps on a 1-D and a 3-D segmentation task: the loss is finite, validation never sees mixing"
    for conv, size in ((nn.Conv1d, (16,)), (nn.Conv3d, (4, 6, 6))):
        g = torch.Generator().manual_seed(0)
        x = torch.randn(32, 2, *size, generator=g)
        y = (x[:, 0] > 0).long()  # a per-position label map
        dls = DataLoaders.from_dsets(list(zip(x[:24], y[:24])), list(zip(x[24:], y[24:])), bs=8, num_workers=0)
        model = nn.Sequential(conv(2, 8, 3, padding=1), nn.ReLU(), conv(8, 2, 1))
        # torch's own cross-entropy: fastai's `CrossEntropyLossFlat(axis=1)` orders a 3-D map and its prediction differently
        learn = Learner(dls, model, loss_func=nn.CrossEntropyLoss(), cbs=METHODS[method](mode=mode, seed=0))
        learn.fit(1, 1e-2)
        assert all(np.isfinite(v) for v in learn.recorder.values[-1] if v is not None)
        with torch.no_grad(): plain = nn.CrossEntropyLoss()(model.eval()(x[24:]), y[24:]).item()
        assert learn.validate()[0] == pytest.approx(plain, rel=1e-5)

@pytest.mark.parametrize('method', METHODS.values(), ids=list(METHODS))
@pytest.mark.parametrize('mode', ['batch', 'sample'])
@pytest.mark.parametrize('size', [(4, 5, 6), (20, 24, 24)])  # small (one gather) and large batches
def test_channels_last_volumes_keep_their_layout(method, mode, size):
    "A volume batch in `channels_last_3d` comes back in that layout, in place or not, with the values of the standard layout's mix"
    x = provenance_batch(4, 2, *size).to(torch.float32)
    for inplace in (False, True):
        cl = x.clone(memory_format=torch.channels_last_3d)
        mix, (xm,), _ = method(mode=mode, seed=0).mix_batch((cl,), (torch.arange(4),), inplace=inplace)
        _, (ref,), _ = method(mode=mode, seed=0).mix_batch((x.clone(),), (torch.arange(4),))
        assert xm.is_contiguous(memory_format=torch.channels_last_3d) and torch.equal(xm, ref), (inplace, xm.stride())
