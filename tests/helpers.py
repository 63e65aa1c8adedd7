"Small synthetic data and models shared by the tests"
import numpy as np, torch
from torch import nn
from fastai.basics import *
from fastai.vision.all import *
from fastmix.all import *
from fastmix.core import *
from fastmix.geometry import *
from fastmix.testing import *

METHODS = {'mixup': MixUp, 'cutmix': CutMix, 'ricap': RICAP}

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

def tiny_cnn(n_cls=3, c=3):
    return nn.Sequential(nn.Conv2d(c, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(32, n_cls))

def synth_learner(cbs=None, loss_func=None, seed=0, **kw):
    set_seed(seed, reproducible=True)
    return Learner(synth_dls(seed=seed), tiny_cnn(), loss_func=loss_func or CrossEntropyLossFlat(), cbs=cbs, **kw)
