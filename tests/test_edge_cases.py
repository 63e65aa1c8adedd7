"Edge cases that are not errors: batches of one and of odd sizes, tiny images, λ exactly 0 or 1, boxes clipped at every border, p = 1"
import math, pytest, numpy as np, torch
import torch.nn.functional as F
from fastai.basics import *
from fastai.vision.all import *
from fastmix.all import *
from fastmix.core import *
from fastmix.geometry import *
from fastmix.testing import *
from fastmix.mixers import MIXERS
from helpers import CASES, MODES, batch, fix_beta

@pytest.mark.parametrize('method,mode', CASES)
def test_batch_size_one_is_left_alone(method, mode):
    x, y = batch(bs=1); x0 = x.clone()
    mix, (xm,), (ym,) = MIXERS[method](mode=mode, seed=0).mix_batch((x,), (y,), inplace=True)
    assert mix is None and xm is x and ym is y and torch.equal(x, x0)

@pytest.mark.parametrize('method,mode', CASES)
@pytest.mark.parametrize('bs', [2, 3, 5, 7])
def test_small_and_odd_batch_sizes(method, mode, bs):
    x = provenance_batch(bs, 3, 9, 7)
    cb = MIXERS[method](mode=mode, seed=bs)
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
    cb = MIXERS[method](mode=mode, seed=sum(hw))
    for _ in range(6):
        mix, (xm,), _ = cb.mix_batch((x,), (torch.arange(6),))
        check_provenance(x, xm, mix)
        if hw == (1, 1) and mix.geom.cuts: assert set(mix.weights.flatten().tolist()) <= {0., 1.}

@pytest.mark.parametrize('mode', MODES)
@pytest.mark.parametrize('lam', [0., 1.])
@pytest.mark.parametrize('dominant', [False, True])
def test_mixup_lambda_exactly_0_or_1(monkeypatch, mode, lam, dominant):
    x, y = batch(bs=7)
    cb = MixUp(mode=mode, seed=0, keep_dominant=dominant)
    fix_beta(monkeypatch, cb, lam)
    mix, (xm,), _ = cb.mix_batch((x,), (y,))
    own = 1. if dominant else lam  # keep_dominant: λ ← max(λ, 1−λ) = 1
    assert (mix.weights == torch.tensor([own, 1 - own])).all()
    assert torch.equal(xm, x if own == 1 else x[mix.idx[1]])  # exactly one image, no rounding

@pytest.mark.parametrize('mode', MODES)
@pytest.mark.parametrize('lam', [0., 1.])
def test_cutmix_lambda_exactly_0_or_1(monkeypatch, mode, lam):
    x = provenance_batch(7, 3, 9, 8)
    cb = CutMix(mode=mode, seed=0)
    fix_beta(monkeypatch, cb, lam)
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
    fix_beta(monkeypatch, cb, lam)
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
    boxes, lam2 = cutmix_boxes(np.full(len(cy), lam), np.stack([cy, cx], -1), (H, W))
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
    fix_beta(monkeypatch, cb, .3)
    monkeypatch.setattr(cb, 'randint', lambda hi, n: np.broadcast_to(np.array(centre)[:, None], n))  # (axes, boxes) centres
    mix, (xm,), _ = cb.mix_batch((x,), (torch.arange(5),))
    check_provenance(x, xm, mix)
    y0, y1, x0, x1 = mix.geom.rects[0, 1, :4].tolist()
    assert y0 == 0 or y1 == H or x0 == 0 or x1 == W  # the box was clipped at a border
    assert (mix.weights[:, 1] < 1 - .3).all()  # so the partner's share is below 1−λ


@pytest.mark.parametrize('method,mode', CASES)
def test_p1_mixes_every_batch_and_image(monkeypatch, method, mode):
    x = provenance_batch(8, 3, 8, 8)
    cb = MIXERS[method](p=1., mode=mode, seed=0)
    fix_beta(monkeypatch, cb, .5)  # λ = 0.5: a mixed image has no weight of 1
    for _ in range(20):
        mix, (xm,), _ = cb.mix_batch((x,), (torch.arange(8),))
        assert mix is not None
        assert (mix.weights.max(1).values < 1).all()  # no image was left out
        check_provenance(x, xm, mix)

_CUTS = [lambda mode, seed, n=n: MIXERS[n](mode=mode, seed=seed) for n in ('cutmix', 'ricap', 'fmix')] + \
        [lambda mode, seed: MixChoice([CutMix(), RICAP(), FMix()], mode=mode, seed=seed)]
@pytest.mark.parametrize('make', _CUTS, ids=['cutmix', 'ricap', 'fmix', 'choice'])
@pytest.mark.parametrize('mode', MODES)
def test_cuts_move_inf_and_nan_exactly(make, mode):
    """A cut copies values: NaN and ±inf (a depth map's missing values) land exactly where the geometry puts their
    position, and every other output keeps its finite source value (a blend of a 0/1 mask, 0·inf, would put NaN there).
    So it is for a target map, and for an input mixed into new memory; an input mixed in place is not read once more to
    check (a fifth to a third of the mix at 224²): there such a value makes the loss NaN wherever the mix keeps it, and
    also where a cut drops it"""
    B, H, W = 8, 48, 48  # above the small-batch gather
    g = torch.Generator().manual_seed(0)
    x, depth = torch.randn(B, 3, H, W, generator=g), torch.rand(B, 1, H, W, generator=g)
    depth[0, :, :12, :12], depth[1, :, 5, 7], depth[2, :, 0, 0] = float('nan'), float('inf'), -float('inf')
    for seed in range(3):
        for inplace in (False, True):
            mix, (xm, dm), (ym,) = make(mode, seed).mix_batch((x.clone(), depth.clone()), (depth.clone(),), inplace=inplace)
            src = mix.geom.apply(provenance_batch(B, 1, H, W))[:, 0].round().long()  # each output position's source
            exp = depth[:, 0].reshape(-1)[src.reshape(-1)].view(B, H, W)
            assert exp.isnan().any() or exp.isinf().any()
            for got in ([ym, dm] if not inplace else [ym]):  # the target always, the input when not mixed in place
                assert torch.equal(got[:, 0].isnan(), exp.isnan()) and torch.equal(got[:, 0].nan_to_num(), exp.nan_to_num())

@pytest.mark.parametrize('cls', [MixUp, ManifoldMixUp])
def test_empty_first_input_draws_ahead(cls):
    "fastai's tabular batches without categorical columns start with an empty (B, 0) tensor: mixes are still drawn ahead"
    x, y = torch.randn(8, 0), torch.arange(8)
    mix, (xm,), _ = cls(seed=0).mix_batch((x,), (y,), ahead=5)
    assert mix is not None and xm.shape == (8, 0)
    check_weights(mix, 8)

_GRAD_SHAPES = {'small': (8, 3, 6, 6), 'rows': (16, 3, 32, 32), 'channels_last': (16, 3, 32, 32), 'large': (4, 3, 160, 160)}

@pytest.mark.parametrize('method,mode', CASES)
@pytest.mark.parametrize('size', list(_GRAD_SHAPES))
def test_a_batch_that_requires_grad_is_mixed_and_gets_the_mix_transposed_as_gradient(method, mode, size):
    "A batch in an autograd graph (an adversarial step's input) is mixed as a plain one, at every size (the fast paths write with `out=`, which autograd refuses), and the gradient reaching it is the mix's transpose"
    g = torch.Generator().manual_seed(0)
    x = torch.randn(*_GRAD_SHAPES[size], generator=g, dtype=torch.float64)
    if size == 'channels_last': x = x.contiguous(memory_format=torch.channels_last)
    y = torch.arange(len(x)) % 3
    _, (exp,), _ = MIXERS[method](mode=mode, seed=0, p=1.).mix_batch((x.clone(),), (y,))
    xg = x.clone().requires_grad_()
    _, (xm,), _ = MIXERS[method](mode=mode, seed=0, p=1.).mix_batch((xg,), (y,))
    assert xm.requires_grad and torch.equal(xm.detach(), exp)
    G = torch.randn(xm.shape, generator=g, dtype=torch.float64)
    (xm * G).sum().backward()
    # every mix is linear in the pixels: <mix(x), G> = <x, mixᵀ G>, and autograd's gradient must be that mixᵀ G
    assert torch.allclose((exp * G).sum(), (x * xg.grad).sum(), rtol=1e-10, atol=0)