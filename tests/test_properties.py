"""Properties of every method and mode over random shapes (B 1–9, C 1–4, H, W 1–40), probabilities and seeds
(hypothesis): label weights in [0, 1] summing to 1, exact pixel provenance, images left out untouched, and p = 0 the
identity bit for bit. A failing example is shrunk and printed, with the blob to reproduce it (`@reproduce_failure`)."""
import numpy as np, torch, pytest
import torch.nn.functional as F
from hypothesis import given, settings, note, strategies as st, HealthCheck
from fastmix.all import *
from fastmix.core import *
from fastmix.geometry import *
from fastmix.testing import *
from helpers import METHODS
from mixcheck import check_provenance, check_untouched_rows

@pytest.fixture(autouse=True, scope='module')
def one_thread():
    n = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)

shapes = st.tuples(st.integers(1, 9), st.integers(1, 4), st.integers(1, 40), st.integers(1, 40))
methods, modes = st.sampled_from(sorted(METHODS)), st.sampled_from(['batch', 'sample'])
probs = st.one_of(st.just(1.), st.floats(0., 1., allow_nan=False))
seeds = st.integers(0, 2**63 - 1)
SETTINGS = dict(deadline=None, print_blob=True, suppress_health_check=[HealthCheck.too_slow])

def mix_once(method, mode, shape, p, seed, layout, inplace=False):
    bs, c, h, w = shape
    x = provenance_batch(bs, c, h, w)
    if layout == 'channels_last': x = x.contiguous(memory_format=torch.channels_last)
    y = torch.arange(bs) % 5
    yf = F.one_hot(y, 5).double()
    cb = METHODS[method](mode=mode, p=p, seed=seed)
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
    bs, c, h, w = shape
    x = torch.randn(shape, generator=torch.Generator().manual_seed(seed % 2**32))
    x0, y = x.clone(), torch.arange(bs)
    cb = METHODS[method](mode=mode, p=0., seed=seed)
    for _ in range(n):
        mix, (xm,), (ym,) = cb.mix_batch((x,), (y,), inplace=inplace)
        assert mix is None and xm is x and ym is y
    assert torch.equal(x, x0)

@settings(max_examples=60, **SETTINGS)
@given(method=methods, mode=modes, shape=shapes, p=probs, seed=seeds)
def test_same_seed_same_mix(method, mode, shape, p, seed):
    a = mix_once(method, mode, shape, p, seed, 'contiguous')
    b = mix_once(method, mode, shape, p, seed, 'contiguous')
    assert (a[4] is None) == (b[4] is None) and torch.equal(a[5], b[5])
    if a[4] is not None: assert torch.equal(a[4].idx, b[4].idx) and torch.equal(a[4].weights, b[4].weights)
