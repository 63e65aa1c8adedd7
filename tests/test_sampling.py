"The distributions SPEC.md states for what each method draws, checked on many seeded draws: RICAP's boundary and crop positions, ResizeMix's scale and place, FMix's spectrum; and `show_results` never mixes"
import math, numpy as np, torch, pytest
from scipy import stats
from fastai.callback.core import Callback
from fastmix.all import *
from fastmix.fmix import _amplitude, fourier_noise

H, W, N = 13, 20, 3000
x, y = torch.rand(4, 1, H, W), torch.arange(4)
def draws(make, n=N): return [make(s).mix_batch((x.clone(),), (y,))[0].geom for s in range(n)]

def rounded_probs(cdf, n:int)->np.ndarray:
    "P(round(n·u) = k), k = 0…n, for u with distribution function `cdf` on [0, 1] (halves rounded up)"
    edges = np.clip((np.arange(n + 2) - .5) / n, 0, 1)
    return np.diff(cdf(edges))

def fits(counts, probs, p_min=1e-3)->bool:
    "A chi-square test of `counts` against `probs` (cells expecting under 5 pooled), not rejected at `p_min`"
    exp = probs * counts.sum()
    keep = exp >= 5
    c, e = np.append(counts[keep], counts[~keep].sum()), np.append(exp[keep], exp[~keep].sum())
    if e[-1] == 0: c, e = c[:-1], e[:-1]
    return stats.chisquare(c, e * c.sum() / e.sum()).pvalue > p_min

@pytest.mark.parametrize('beta', [.3, 1.])
def test_ricap_boundary_is_the_rounded_beta_draw(beta):
    "The tiles' corner (w, h) is (round(W·Beta(β, β)), round(H·Beta(β, β))), each side drawn on its own"
    geoms = draws(lambda s: RICAP(seed=s, beta=beta))
    h, w = (np.array([g.rects[0, 0, i] for g in geoms]) for i in (1, 3))  # tile 0 is [0, h) × [0, w)
    for v, n in ((w, W), (h, H)):
        probs = rounded_probs(stats.beta(beta, beta).cdf, n)
        assert fits(np.bincount(v, minlength=n + 1), probs)
        assert not fits(np.bincount(v, minlength=n + 1), rounded_probs(stats.beta(beta * 3, beta * 3).cdf, n))  # (it can fail)
    assert abs(stats.pearsonr(w, h)[0]) < .06

def test_ricap_crops_are_placed_uniformly():
    "Each tile's crop lies anywhere in its source image with equal probability: here tile 0's source row, for the tiles of height 7"
    rows = np.array([g.rects[0, 0, 4] for g in draws(lambda s: RICAP(seed=s, beta=1.), 6000) if g.rects[0, 0, 1] == 7])
    assert len(rows) > 200 and rows.min() >= 0 and rows.max() <= H - 7
    assert fits(np.bincount(rows, minlength=H - 6), np.full(H - 6, 1 / (H - 6)))

def test_resizemix_scale_and_place_are_uniform():
    "The box side is round(τ·H) with τ ~ U(τ_min, τ_max), and its top row uniform among the rows where it fits"
    lo, hi = .2, .9
    boxes = np.array([g.boxes[0] for g in draws(lambda s: ResizeMix(seed=s, scale=(lo, hi)))])
    side = boxes[:, 1] - boxes[:, 0]
    assert fits(np.bincount(side, minlength=H + 1), rounded_probs(stats.uniform(lo, hi - lo).cdf, H))
    assert not fits(np.bincount(side, minlength=H + 1), rounded_probs(stats.uniform(lo, (hi - lo) / 2).cdf, H))
    top = boxes[side == 6, 0]
    assert fits(np.bincount(top, minlength=H - 5), np.full(H - 5, 1 / (H - 5)))

@pytest.mark.parametrize('delta', [1.5, 3.])
def test_fmix_noise_has_a_1_over_f_delta_spectrum(delta):
    "FMix's noise amplitude falls as 1/f^δ (its power as 1/f^2δ), measured on the noise it draws"
    f = np.sqrt(np.fft.fftfreq(64)[:, None] ** 2 + np.fft.rfftfreq(64)[None] ** 2)
    a = _amplitude(64, 64, delta).numpy().astype(np.float64)
    c = a[f > 0] * f[f > 0] ** delta
    assert c.max() / c.min() < 1 + 1e-5  # amplitude · f^δ is one number
    v = fourier_noise(np.random.default_rng(0), 300, 64, 64, delta)
    power = (np.abs(np.fft.rfft2(v)) ** 2).mean(0)
    m = (f > .02) & (f < .3)
    slope = np.polyfit(np.log(f[m]), np.log(power[m]), 1)[0]
    assert abs(slope + 2 * delta) < .25, slope

@pytest.mark.parametrize('make', [lambda: MixUp(seed=0), lambda: CutMix(seed=0, mode='sample'), lambda: RICAP(seed=0)])
def test_show_results_never_mixes(make):
    "`show_results` shows unmixed batches and draws nothing from the mixer's generator"
    import matplotlib; matplotlib.use('Agg')
    from fastai.vision.all import DataBlock, TransformBlock, CategoryBlock, IndexSplitter, TensorImage, Learner, CrossEntropyLossFlat
    from fastmix.demo import small_cnn
    X, Y = torch.rand(32, 3, 8, 8), torch.arange(32) % 3
    db = DataBlock(blocks=(TransformBlock, CategoryBlock), get_x=lambda i: TensorImage(X[i]), get_y=lambda i: str(int(Y[i])),
                   splitter=IndexSplitter(list(range(24, 32))))
    cb = make()
    learn = Learner(db.dataloaders(list(range(32)), bs=8, num_workers=0), small_cnn(3, 3), loss_func=CrossEntropyLossFlat(), cbs=cb)
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)
    state, seen = cb.rng.bit_generator.state, []
    learn.add_cb(type('Seen', (Callback,), {'order': 10**6, 'before_batch': lambda self: seen.append(self.learn.xb[0].clone())})())
    with learn.no_bar(): learn.show_results(max_n=4)
    assert cb.rng.bit_generator.state == state and cb.mix is None and len(seen) == 1
    valid = X[24:]  # each image shown is one of the validation images, as it is
    assert all(any(torch.equal(img.as_subclass(torch.Tensor), v) for v in valid) for img in seen[0])
