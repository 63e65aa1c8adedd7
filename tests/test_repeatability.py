"Repeatability and RNG isolation: the same seed gives the same mixes whatever the global seeds; mixing never touches the global RNGs"
import random, pytest, numpy as np, torch
import torch.nn.functional as F
from fastai.basics import *
from fastai.vision.all import *
from fastmix.all import *
from fastmix.core import *
from fastmix.geometry import *
from fastmix.testing import *
from fastmix.mixers import MIXERS
from helpers import CASES, batch

def run_batches(method, mode, seed, n=6, p=.8):
    cb = MIXERS[method](mode=mode, seed=seed, p=p)
    out = []
    for i in range(n):
        x, y = batch(bs=7, seed=i)
        mix, (xm,), (yfm,) = cb.mix_batch((x,), (F.one_hot(y, 3).float(),))
        out.append((xm, yfm) if mix is None else (xm, yfm, mix.idx, mix.weights, getattr(mix.geom, 'rects', None)))
    return out

def same(a, b):
    if len(a) != len(b): return False
    for u, v in zip(a, b):
        if len(u) != len(v): return False
        for s, t in zip(u, v):
            if isinstance(s, np.ndarray) or isinstance(t, np.ndarray):
                if not np.array_equal(s, t): return False
            elif s is None or t is None:
                if s is not t: return False
            elif not torch.equal(s, t): return False
    return True

@pytest.mark.parametrize('method,mode', CASES)
def test_same_seed_bit_identical(method, mode):
    torch.manual_seed(1); np.random.seed(1); random.seed(1)
    a = run_batches(method, mode, seed=11)
    torch.manual_seed(2); np.random.seed(2); random.seed(2)  # global seeds play no part
    b = run_batches(method, mode, seed=11)
    assert same(a, b)

@pytest.mark.parametrize('method,mode', CASES)
def test_different_seeds_differ(method, mode):
    a, b = run_batches(method, mode, seed=11), run_batches(method, mode, seed=12)
    assert not same(a, b)
    assert any(len(u) > 2 and len(v) > 2 and not torch.equal(u[3], v[3]) for u, v in zip(a, b))  # weights differ

@pytest.mark.parametrize('method,mode', CASES)
def test_global_rngs_untouched(method, mode):
    "Neither creating a mixer with a seed nor mixing consumes or reseeds torch's, numpy's or Python's global RNG"
    x, y = batch(bs=8)
    torch.manual_seed(123); np.random.seed(123); random.seed(123)
    t0, n0, r0 = torch.get_rng_state(), np.random.get_state(), random.getstate()
    cb = MIXERS[method](mode=mode, seed=0, p=.7)
    for _ in range(5): cb.mix_batch((x,), (y,)); cb.mix_batch((x.clone(),), (y,), inplace=True)
    t1, n1, r1 = torch.get_rng_state(), np.random.get_state(), random.getstate()
    assert torch.equal(t0, t1)
    assert n0[0] == n1[0] and np.array_equal(n0[1], n1[1]) and n0[2:] == n1[2:]
    assert r0 == r1

def _draws(g, n=4): return [getattr(g, 'rng', g).random() for _ in range(n)]  # a mixer's or a generator's

def test_each_rank_draws_its_own_stream_wherever_the_mixer_was_made(monkeypatch):
    "Rank r draws rank 0's stream jumped r times: built there, or built in another process (a loaded export) and fitted there"
    import pickle
    def on_rank(r, f):
        monkeypatch.setenv('RANK', str(r))
        return f()
    ref = np.random.default_rng(5)
    ref1 = np.random.Generator(ref.bit_generator.jumped(1))
    assert _draws(on_rank(1, lambda: MixUp(seed=5))) == _draws(ref1)
    on_rank(0, lambda: None)
    made = pickle.dumps(MixUp(seed=5))  # rank 0, as `learn.export` in a single process
    streams = []
    for r in range(3):
        cb = pickle.loads(made)
        on_rank(r, cb.own_stream)  # what `before_fit` does first
        streams.append(_draws(cb))
    assert streams[0] == _draws(np.random.default_rng(5))  # rank 0 goes on as if never pickled
    assert streams[1] == _draws(on_rank(1, lambda: MixUp(seed=5)))
    assert len({tuple(s) for s in streams}) == 3
    on_rank(1, lambda: None)  # made on rank 1, loaded on ranks 0, 1, 2: still three streams
    made = pickle.dumps(MixUp(seed=5))
    assert len({tuple(on_rank(r, lambda: (cb := pickle.loads(made), cb.own_stream(), _draws(cb))[2])) for r in range(3)}) == 3
    # a choice's mixers draw from its generator, jumped in place
    on_rank(0, lambda: None)
    mc = pickle.loads(pickle.dumps(MixChoice([MixUp(), CutMix()], seed=3)))
    on_rank(2, mc.own_stream)
    assert all(m.rng is mc.rng for m in mc.under()) and mc.rng_rank == 2

def test_a_seed_set_later_restarts_the_generator():
    cb = MixUp(seed=1); cb.seed = 2
    assert _draws(cb) == _draws(MixUp(seed=2))
    mc = MixChoice([MixUp(seed=7), CutMix()], seed=1); mc.seed = 2
    assert all(m.rng is mc.rng for m in mc.under()) and _draws(mc) == _draws(MixUp(seed=2))
    for bad, err in [(-1, ValueError), (1.5, TypeError), (True, TypeError)]:
        with pytest.raises(err, match='seed'): cb.seed = bad
    assert cb.seed == 2
