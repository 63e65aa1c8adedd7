"""No host sync, shown without a GPU: every mixer's whole training step runs on PyTorch's `meta` device.

A meta tensor has a shape, a dtype and strides but no data, so anything that would make the host wait for the
device raises there: `.item()`, `bool(t)`, `.tolist()`, a device→host copy, a shape that depends on the values.
The step is a real `Learner`'s: `before_batch` (checks, the draw, the geometry on every input and target), the
model, `after_pred`, the learner's loss, `after_loss` (the mixed loss), backward and the optimizer step.
"""
import pytest, torch
from torch import nn
from fastai.basics import *
from fastmix.mixers import MIXERS
from helpers import synth_learner

# Mixers that can't take this test, each with the reason (none today). A new mixer is covered automatically.
NOT_ON_META = {}
BS, H, W, N_CLS = 6, 10, 12, 4

class ToPred(nn.Module):
    "A two-layer model whose output fits the targets: class scores, per-pixel class scores, or multi-label scores"
    def __init__(self, task):
        super().__init__()
        self.task, self.body, self.conv = task, nn.Conv2d(3, 8, 3, padding=1), nn.Conv2d(8, N_CLS, 1)
    def forward(self, x, x2, tab):
        o = self.conv(self.body(x + x2))
        return o if self.task == 'seg' else o.mean((2, 3)) + tab[:, :1]

def meta_batch(task, channels_last, hw=(H, W)):
    "Two image inputs, a non-image input and the task's targets, all on `meta`"
    H, W = hw
    x, x2 = (torch.empty(BS, 3, H, W, device='meta') for _ in range(2))
    if channels_last: x = x.contiguous(memory_format=torch.channels_last)
    tab = torch.empty(BS, 5, device='meta')
    y = {'cls': torch.empty(BS, dtype=torch.long, device='meta'), 'seg': torch.empty(BS, H, W, dtype=torch.long, device='meta'),
         'multi': torch.empty(BS, N_CLS, device='meta')}[task]
    return (x, x2, tab), (y,)

LOSSES = {'cls': CrossEntropyLossFlat, 'seg': lambda: CrossEntropyLossFlat(axis=1), 'multi': BCEWithLogitsLossFlat}

def meta_step(name, mode, task, channels_last=False, hw=(H, W)):
    "One training step of a real Learner on a meta batch; returns the learner and the mixer"
    cb = MIXERS[name](mode=mode, seed=0)
    learn = synth_learner(cbs=cb, loss_func=LOSSES[task]())
    learn.model = ToPred(task).to('meta')
    learn.create_opt()
    learn.training, learn.epoch, learn.n_epoch, learn.pct_train, learn.iter, learn.n_iter = True, 0, 1, 0., 0, 4
    for e in ('before_fit', 'before_epoch', 'before_train'): cb(e)
    xb, yb = meta_batch(task, channels_last, hw)
    learn.xb, learn.yb = xb, yb
    learn('before_batch')
    learn._do_one_batch()
    return learn, cb, xb, yb

# each size takes other paths: small batches one planned gather (at most 16,384 values), then the general per-batch
# and per-sample paths, and from 2^16 values an image the per-image ones
SIZES = {'small': (10, 12), 'medium': (40, 44), 'large': (150, 152)}

@pytest.mark.parametrize('name', list(MIXERS))
@pytest.mark.parametrize('mode', ['batch', 'sample'])
@pytest.mark.parametrize('task,channels_last', [('cls', False), ('cls', True), ('seg', False), ('multi', False)])
@pytest.mark.parametrize('size', list(SIZES))
def test_training_step_on_meta(name, mode, task, channels_last, size):
    if name in NOT_ON_META: pytest.xfail(NOT_ON_META[name])
    try: learn, cb, xb, yb = meta_step(name, mode, task, channels_last, SIZES[size])
    except ValueError as e:
        # documented, not a device matter: per-sample switching between blending and cutting can't mix label maps
        assert task == 'seg' and mode == 'sample' and 'per-sample switching' in str(e), e
        return
    mix = cb.mix
    assert mix is not None  # p = 1: the batch was mixed
    assert mix.idx.device.type == 'meta' and mix.weights.device.type == 'meta'
    assert mix.weights.shape == (BS, mix.K) and mix.idx.shape == (mix.K, BS)
    assert all(t.device.type == 'meta' for t in learn.xb) and learn.xb[0].shape == xb[0].shape
    assert learn.loss_grad.device.type == 'meta' and learn.loss_grad.shape == ()
    assert len(learn.yb) == 1 and learn.yb[0].shape == yb[0].shape  # the targets are back after the loss
    assert learn.model.conv.weight.grad is not None  # backward ran
