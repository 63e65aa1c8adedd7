"""What the tests share besides fixtures: every mixer and mode to parametrise over, small synthetic data, a fastai
`Learner` on it (also used by `dist_script.py`, which runs outside pytest), and every way a fit can end early"""
import numpy as np, torch
from fastai.basics import *
from fastai.vision.all import *
from fastmix.mixers import MIXERS
from fastmix.demo import small_cnn

MODES = ('batch', 'sample')
CASES = [(m, mode) for m in MIXERS for mode in MODES]  # every mixer of the one list, in both modes
# the mixers whose mix is in the input batch (ManifoldMixUp mixes hidden activations: tests that read the mix from the
# batch, or recompute the loss from it, take these)
INPUT_MIXERS = [n for n, m in MIXERS.items() if m.cls.mixes_input is True]

def batch(bs=6, c=3, h=8, w=8, seed=0, dtype=torch.float32):
    "Random images and class indices in 0..2"
    g = torch.Generator().manual_seed(seed)
    return torch.randn(bs, c, h, w, generator=g).to(dtype), torch.randint(0, 3, (bs,), generator=g)

def fix_beta(monkeypatch, cb, lam):
    "Make every Beta draw of `cb` (and of the mixers it chooses among) return `lam`"
    for m in [cb, *getattr(cb, 'mixers', [])]: monkeypatch.setattr(m, 'sample_beta', lambda name, a, n: np.full(n, float(lam)))

def synth_images(n=64, c=3, h=12, w=12, n_cls=3, seed=0):
    "Images whose class is visible in their pixels: one bright quadrant-ish stripe per class"
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, n_cls, (n,), generator=g)
    x = torch.randn(n, c, h, w, generator=g) * .3
    for k in range(n_cls): x[y == k, :, :, k * w // n_cls:(k + 1) * w // n_cls] += 1.
    return x, y

X, Y = synth_images()
def get_x(i): return X[i]
def get_y(i): return int(Y[i])

def synth_dls(bs=8, seed=0):
    "DataLoaders from a `DataBlock`, so `export`, `load_learner` and `predict` work"
    db = DataBlock(blocks=(TransformBlock, CategoryBlock), get_x=get_x, get_y=get_y,
                   splitter=IndexSplitter(list(range(48, 64))))
    return db.dataloaders(list(range(64)), bs=bs, shuffle=True, seed=seed)

def synth_learner(cbs=None, loss_func=None, seed=0, bs=8, **kw):
    "fastmix's small CNN on `synth_dls`, seeded"
    set_seed(seed, reproducible=True)
    return Learner(synth_dls(bs=bs, seed=seed), small_cnn(3, 3), loss_func=loss_func or CrossEntropyLossFlat(), cbs=cbs, **kw)

class Boom(Exception): "An error inside training that is not one of fastai's cancellations"

class RaiseAt(Callback):
    "Raise `exc` at the `at`-th training `event` (order 50: after the mixer's part of that event)"
    order = 50
    def __init__(self, exc, event='after_pred', at=2): self.exc,self.event,self.at,self.n = exc,event,at,0
    def __call__(self, event_name):
        if event_name == self.event and self.training:
            self.n += 1
            if self.n == self.at: raise self.exc
        super().__call__(event_name)

ENDINGS = [CancelFitException, CancelEpochException, CancelTrainException, CancelBatchException, Boom, KeyboardInterrupt]  # every way a fit can end early
