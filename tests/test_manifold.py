"ManifoldMixUp (issue 16): the hooked activation is the blend of the plain one, labels (λ, 1−λ), and no hook outlives its batch"
import pytest, numpy as np, torch
from torch import nn
from fastai.basics import *
from fastai.callback.training import *
from fastai.vision.all import create_cnn_model, resnet18
from fastmix.all import *
from fastmix.core import *
from fastmix.manifold import *
from fastmix.manifold import _Inert
from helpers import ENDINGS, Boom, RaiseAt, synth_dls
from copy import deepcopy  # after the star imports: fastcore has a `copy` of its own

class Raiser(nn.Module):
    "Identity that raises `exc` at its `at`-th call in training mode (a failure inside the model)"
    def __init__(self, exc=None, at=2): super().__init__(); self.exc,self.at,self.n = exc,at,0
    def forward(self, x):
        if self.training and self.exc is not None:
            self.n += 1
            if self.n == self.at: raise self.exc
        return x

def net(raiser=None, pos=0):
    "Conv blocks without batch norm or dropout, so a training-mode forward can be recomputed exactly"
    mods = [nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU()),
            nn.Conv2d(8, 8, 1), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(32, 3)]
    if raiser is not None: mods.insert(pos, raiser)
    return nn.Sequential(*mods)

def learner(cb=None, model=None, seed=0, **kw):
    set_seed(seed, reproducible=True)
    return Learner(synth_dls(seed=seed), model if model is not None else net(), loss_func=CrossEntropyLossFlat(),
                   cbs=cb, **kw)

def no_hooks(model):
    return not any(m._forward_hooks or m._forward_pre_hooks or m._forward_hooks_always_called for m in model.modules())

def same_as_plain(learn):
    "Validation and predictions equal those of a learner without the callback, on the same weights"
    v = learn.validate()
    plain = learner(model=deepcopy(learn.model))
    assert no_hooks(plain.model) and v == plain.validate()
    p1, t1 = learn.get_preds(); p2, t2 = plain.get_preds()
    assert torch.equal(p1, p2) and torch.equal(t1, t2)

# ---------------------------------------------------------------------------------------------------------------------
# The blend
# ---------------------------------------------------------------------------------------------------------------------
class Spy(Callback):
    "Each training batch: the chosen module's own output (a hook before the mixer's) and what it passes on (after)"
    order = 1  # after the mixer's `before_batch`: its hooks are in place, ours go before and after them
    def __init__(self, cb): self.cb,self.rec,self.hs = cb,[],[]
    def before_batch(self):
        if not self.training or self.cb.mix is None or self.cb.at_input: return
        name, mod = self.cb.choices[self.cb.mixed_at]
        r = dict(name=name, mix=self.cb.mix, x=self.xb[0].clone())
        def keep(key):
            def hook(m, a, o): r.setdefault(key, o.detach().clone())  # returns None: the output is unchanged
            return hook
        self.hs = [mod.register_forward_hook(keep('h'), prepend=True), mod.register_forward_hook(keep('mixed'))]
        self.rec.append(r)
    def after_pred(self):
        for h in self.hs: h.remove()
        self.hs = []
        if self.rec and 'pred' not in self.rec[-1]: self.rec[-1]['pred'] = self.pred.detach().clone()

def rest_of(model, name):
    "The modules after top-level child `name` of a `Sequential`"
    return model[int(name.split('.')[0]) + 1:]

@pytest.mark.parametrize('mode', ['batch', 'sample'])
@pytest.mark.parametrize('modules', [None, ['0', '2', '2.0', '3'], ['1']])
def test_hooked_activation_is_the_blend(mode, modules):
    cb = ManifoldMixUp(modules=modules, mode=mode, seed=1)
    learn = learner(cb)
    spy = Spy(cb)
    learn.fit(1, 0., cbs=spy)  # lr 0: the weights stay those of the recorded forward passes
    assert len(spy.rec) == 6 and {r['name'] for r in spy.rec} <= set(cb.counts)
    for r in spy.rec:
        h, mix = r['h'], r['mix']
        lam = mix.weights[:, 0].view(-1, *[1] * (h.ndim - 1))
        assert torch.equal(mix.idx[0], torch.arange(len(h)))
        torch.testing.assert_close(r['mixed'], lam * h + (1 - lam) * h[mix.idx[1]], rtol=0, atol=1e-6)
        assert not torch.equal(r['mixed'], h)
        if '.' not in r['name']:  # the rest of the network received the mixed activation
            with torch.no_grad(): torch.testing.assert_close(r['pred'], rest_of(learn.model, r['name'])(r['mixed']))
    if mode == 'sample': assert all(r['mix'].weights[:, 0].unique().numel() > 1 for r in spy.rec)
    else: assert all(r['mix'].weights[:, 0].unique().numel() == 1 for r in spy.rec)
    assert no_hooks(learn.model)

def test_the_model_itself_can_be_chosen():
    "Mixing the model's output: one always-called hook does both jobs"
    learn = learner(None)
    cb = ManifoldMixUp(modules=[learn.model], seed=0)
    learn.add_cb(cb)
    spy = Spy(cb)
    learn.fit(1, 0., cbs=spy)
    assert cb.counts == {'(model)': 6}
    for r in spy.rec:
        lam = r['mix'].weights[:, :1]
        with torch.no_grad(): h = learn.model.forward(r['x'])
        torch.testing.assert_close(r['pred'], lam * h + (1 - lam) * h[r['mix'].idx[1]], rtol=0, atol=1e-6)
    assert no_hooks(learn.model)

def test_label_weights_and_loss_are_mixups():
    "Weights (λ, 1−λ) of the image and its partner; the loss backpropagated is the mixed loss"
    cb = ManifoldMixUp(seed=3)
    got = []
    class Check(Callback):
        order = 5
        def after_loss(self):
            if not self.training: return
            mix = cb.mix
            exp = mixed_loss(self.loss_func, self.pred, [(self.yb[0][mix.idx[k]],) for k in range(2)], mix.weights)
            got.append((mix.weights.clone(), mix.idx.clone(), self.loss_grad.item(), exp.item()))
    learner(cb).fit(1, 1e-2, cbs=Check())
    assert len(got) == 6
    for w, idx, loss, exp in got:
        assert torch.equal(idx[0], torch.arange(w.shape[0])) and sorted(idx[1].tolist()) == list(range(w.shape[0]))
        assert torch.allclose(w.sum(1), torch.ones(w.shape[0])) and (w[:, 0] == w[0, 0]).all()
        assert abs(loss - exp) < 1e-6

def test_same_draws_as_mixup_and_repeatable():
    "λ and π come from MixUp's own drawing; the layer is one more draw from the same generator"
    def run(seed):
        cb = ManifoldMixUp(seed=seed)
        learn = learner(cb)
        learn.fit(1, 1e-2)
        return learn.recorder.losses, cb.counts
    assert run(5) == run(5) and run(5)[0] != run(6)[0]

def test_counts_and_include_input():
    cb = ManifoldMixUp(include_input=True, seed=0)
    learn = learner(cb)
    inputs, raw = [], {}
    class Raw(Callback):
        order = -1
        def before_batch(self): raw['x'] = self.xb[0].clone()
    class SeeInput(Callback):
        order = 1
        def before_batch(self):
            if self.training and cb.at_input: inputs.append((raw['x'], self.xb[0].clone(), cb.mix))
    learn.fit(4, 1e-2, cbs=[Raw(), SeeInput()])
    assert list(cb.counts) == ['input', '0', '2', '3']  # the input, then the blocks with parameters, not the output layer
    assert sum(cb.counts.values()) == 24 and all(v > 0 for v in cb.counts.values())
    assert len(inputs) == cb.counts['input']
    for x, xm, mix in inputs:  # the input is blended as MixUp blends it
        lam = mix.weights[:, 0, None, None, None]
        torch.testing.assert_close(xm, lam * x + (1 - lam) * x[mix.idx[1]], rtol=0, atol=1e-6)

def test_p_zero_and_off_pct_never_hook():
    for cb in (ManifoldMixUp(p=0., seed=0), ManifoldMixUp(off_pct=1., seed=0)):
        seen = []
        class Look(Callback):
            order = 1
            def before_batch(self):
                if self.training: seen.append(no_hooks(self.model))
        learner(cb).fit(1, 1e-2, cbs=Look())
        assert seen and all(seen) and sum(cb.counts.values()) == 0

def test_default_modules():
    cnn = create_cnn_model(resnet18, 3, pretrained=False)
    body = list(cnn[0].children())
    assert default_modules(cnn) == [body[0], body[1]] + body[4:]  # conv, bn, layer1..4 of the body; not relu, maxpool
    m = net()
    assert default_modules(m) == [m[0], m[2], m[3]]
    assert default_modules(nn.Sequential(m)) == [m[0], m[2], m[3]]  # a wrapper around one model
    # the output layer is the last child with parameters, also when a softmax follows it: logits are never mixed
    out = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 3), nn.LogSoftmax(1))
    assert default_modules(out) == [out[0], out[2]]
    # a model wrapped with steps that hold no parameters (a cast, a softmax): the model's own blocks
    assert default_modules(nn.Sequential(m, nn.Softmax(1))) == [m[0], m[2], m[3]]
    assert default_modules(nn.Sequential(cnn, nn.Softmax(1))) == [body[0], body[1]] + body[4:]

def test_hidden_layers_of_a_token_model():
    "The input batch may be anything (here token ids) when a hidden layer is mixed"
    class Tok(nn.Module):
        def __init__(self): super().__init__(); self.emb,self.mid,self.out = nn.Embedding(10, 8),nn.Linear(8, 8),nn.Linear(8, 3)
        def forward(self, x): return self.out(torch.relu(self.mid(self.emb(x).mean(1))))
    g = torch.Generator().manual_seed(0)
    x, y = torch.randint(0, 10, (32, 5), generator=g), torch.randint(0, 3, (32,), generator=g)
    dls = DataLoaders.from_dsets(list(zip(x, y)), list(zip(x, y)), bs=8, num_workers=0)
    cb = ManifoldMixUp(modules=['emb', 'mid'], seed=0)
    learn = Learner(dls, Tok(), loss_func=CrossEntropyLossFlat(), cbs=cb)
    learn.fit(2, 1e-2)
    assert sum(cb.counts.values()) == 8 and no_hooks(learn.model)
    with pytest.raises(TypeError, match=r"must be a float tensor, got dtype torch\.int64"):  # the input can't be blended
        Learner(dls, Tok(), loss_func=CrossEntropyLossFlat(), cbs=ManifoldMixUp(modules=['mid'], include_input=True,
                                                                                  seed=0)).fit(1, 1e-2)

# ---------------------------------------------------------------------------------------------------------------------
# Validation, predictions, export
# ---------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('mode', ['batch', 'sample'])
def test_validate_and_get_preds_equal_plain(mode):
    learn = learner(ManifoldMixUp(mode=mode, seed=0))
    learn.fit(2, 1e-2)
    same_as_plain(learn)
    assert no_hooks(learn.model)

def test_lr_find_export_load_predict(tmp_path):
    cb = ManifoldMixUp(seed=0)
    learn = learner(cb, path=tmp_path)
    lf = learn.loss_func
    learn.lr_find(num_it=8, show_plot=False)
    assert learn.loss_func is lf and no_hooks(learn.model)
    learn.fit(1, 1e-2)
    learn.export('m.pkl')
    learn2 = load_learner(tmp_path/'m.pkl')
    assert any(isinstance(c, ManifoldMixUp) for c in learn2.cbs) and no_hooks(learn2.model)
    assert torch.allclose(learn2.predict(0)[2], learn.predict(0)[2])
    learn2.dls = learn.dls; learn2.fit(1, 1e-2)  # and it trains again after loading
    assert sum(learn2.manifold_mix_up.counts.values()) == 6 and no_hooks(learn2.model)

# ---------------------------------------------------------------------------------------------------------------------
# Every ending removes the hooks
# ---------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('event', ['before_batch', 'after_pred', 'after_loss'])
@pytest.mark.parametrize('exc', ENDINGS, ids=lambda e: e.__name__)
def test_every_ending_in_a_callback(exc, event):
    cb = ManifoldMixUp(modules=['2'], seed=0)
    learn = learner(cb)
    try: learn.fit(1, 1e-2, cbs=RaiseAt(exc(), event))
    except (Boom, KeyboardInterrupt): pass
    if event == 'before_batch' and exc in (Boom, KeyboardInterrupt):
        # raised between the mixer's `before_batch` and the forward pass: fastai runs no event after it, so the hooks
        # are still there, but a forward pass on anything but that batch removes them without mixing
        assert not no_hooks(learn.model)
        x = learn.dls.one_batch()[0]
        with torch.no_grad(): assert torch.equal(learn.model(x), learn.model.forward(x))
    assert no_hooks(learn.model)
    learn.fit(1, 1e-2)  # a second fit works
    assert no_hooks(learn.model) and sum(cb.counts.values()) == 6
    same_as_plain(learn)

@pytest.mark.parametrize('pos', [1, 5], ids=['before-the-mixed-module', 'after-it'])
def test_exception_inside_the_model(pos):
    "torch runs the model's always-called hook when the model raises: nothing is left"
    cb = ManifoldMixUp(modules=['3'], seed=0)
    learn = learner(cb, model=net(Raiser(Boom()), pos))
    with pytest.raises(Boom): learn.fit(1, 1e-2)
    assert no_hooks(learn.model)
    learn.model[pos].exc = None
    learn.fit(1, 1e-2)
    assert no_hooks(learn.model)

@pytest.mark.parametrize('pos', [1, 5], ids=['before-the-mixed-module', 'after-it'])
def test_keyboard_interrupt_inside_the_model(pos, tmp_path):
    """torch runs no hook on a `KeyboardInterrupt` and fastai no event: the hooks stay, but they never mix another
    forward pass, `validate`/`get_preds`/a new fit remove them, and an export carries only no-ops, swept at `predict`"""
    cb = ManifoldMixUp(modules=['3'], seed=0)
    learn = learner(cb, model=net(Raiser(KeyboardInterrupt()), pos), path=tmp_path)
    with pytest.raises(KeyboardInterrupt): learn.fit(1, 1e-2)
    assert not no_hooks(learn.model)
    learn.model[pos].exc = None
    learn.export('m.pkl')
    learn2 = load_learner(tmp_path/'m.pkl')
    left = [h for m in learn2.model.modules() for h in (*m._forward_hooks.values(), *m._forward_pre_hooks.values())]
    assert all(isinstance(h, _Inert) for h in left)
    learn2.predict(0)
    assert no_hooks(learn2.model)
    x = learn.dls.one_batch()[0]
    with torch.no_grad(): assert torch.equal(learn.model(x), learn.model.forward(x))  # not mixed, and removed
    assert no_hooks(learn.model)
    with pytest.raises(KeyboardInterrupt): learner(cb, model=net(Raiser(KeyboardInterrupt()), pos)).fit(1, 1e-2)
    same_as_plain(cb.learn)  # `validate` first sweeps what the interrupt left
    assert no_hooks(cb.learn.model)

# ---------------------------------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('kw,exc,msg', [
    (dict(modules='0'), TypeError, r"`modules` must be None or a non-empty list of modules or module names .*got '0'$"),
    (dict(modules=[]), TypeError, r"`modules` must be None or a non-empty list.*got \[\]$"),
    (dict(modules=[0]), TypeError, r"`modules` must be None or a non-empty list.*got \[0\]$"),
    (dict(include_input='yes'), TypeError, r"`include_input` must be a bool, got 'yes'$"),
    (dict(alpha=0), ValueError, r"`alpha` must be in \(0, .*got 0$"),
    (dict(mode='pixel'), ValueError, r"`mode` must be one of .*got 'pixel'$"),
])
def test_bad_constructor_args(kw, exc, msg):
    with pytest.raises(exc, match=msg): ManifoldMixUp(**kw)

def test_bad_modules_at_the_first_training_batch():
    with pytest.raises(ValueError, match=r"`modules`: no module named 'body' in the model; its top-level modules are \['0', '1'"):
        learner(ManifoldMixUp(modules=['body'])).fit(1)
    with pytest.raises(ValueError, match=r"`modules`: Linear module .* is not part of the learner's model"):
        learner(ManifoldMixUp(modules=[nn.Linear(2, 2)])).fit(1)
    with pytest.raises(ValueError, match=r"`modules` lists \['2'\] more than once"):
        m = net(); learner(ManifoldMixUp(modules=['2', m[2]]), model=m).fit(1)
    with pytest.raises(ValueError, match=r"found no module to mix.*pass `modules=` or `include_input=True`"):
        learner(ManifoldMixUp(), model=nn.Sequential(nn.Flatten(), nn.Linear(432, 3))).fit(1)

def test_bad_module_outputs():
    class Pair(nn.Module):
        def forward(self, x): return x, x
    class Unpair(nn.Module):
        def forward(self, x): return x[0]
    m = nn.Sequential(nn.Conv2d(3, 4, 1), Pair(), Unpair(), nn.Flatten(), nn.Linear(4 * 144, 3))
    with pytest.raises(TypeError, match=r"mixes module outputs that are float tensors; module '1' returned tuple"):
        learner(ManifoldMixUp(modules=['1']), model=m).fit(1)
    assert no_hooks(m)
    class T(nn.Module):
        def forward(self, x): return x.transpose(0, 1)
    m = nn.Sequential(nn.Conv2d(3, 4, 1), T(), T(), nn.Flatten(), nn.Linear(4 * 144, 3))
    with pytest.raises(ValueError, match=r"module '1' returned shape \(4, 8, 12, 12\), whose first dimension is not the batch size 8"):
        learner(ManifoldMixUp(modules=['1']), model=m).fit(1)
    assert no_hooks(m)

def test_module_not_in_the_forward_pass():
    "Mixed labels without mixed activations would be wrong: a module the forward pass never calls is an error"
    class Wrap(nn.Module):
        def __init__(self): super().__init__(); self.body,self.unused = net(),nn.Linear(2, 2)
        def forward(self, x): return self.body(x)
    m = Wrap()
    with pytest.raises(RuntimeError, match=r"module 'unused' was not called in the model's forward pass"):
        learner(ManifoldMixUp(modules=['unused']), model=m).fit(1)
    assert no_hooks(m)

def test_registered():
    from fastmix.mixers import MIXERS
    assert MIXERS['manifold'].cls is ManifoldMixUp and isinstance(MIXERS['manifold'](seed=0), ManifoldMixUp)

def test_outside_a_fit_the_input_is_mixed():
    "Previews and `mix_batch` have no model: they show the input mixed, with the same label weights"
    x, y = torch.randn(6, 3, 5, 5, dtype=torch.float64), torch.arange(6)
    mix, (xm,), _ = ManifoldMixUp(seed=0).mix_batch((x,), (y,))
    lam = mix.weights[:, 0, None, None, None].double()
    torch.testing.assert_close(xm, lam * x + (1 - lam) * x[mix.idx[1]])

@pytest.mark.parametrize('K,per_sample', [(2, False), (2, True), (3, True)])
def test_hidden_blend_gradient_is_the_blend_matrix_transposed(K, per_sample):
    "An activation in a graph is blended out of place, and its gradient is `Mᵀ g` for the blend's matrix `M`"
    from fastmix.geometry import Blend
    g = torch.Generator().manual_seed(K + per_sample)
    bs = 6
    idx = torch.stack([torch.arange(bs)] + [torch.randperm(bs, generator=g) for _ in range(K - 1)])
    w = torch.rand(bs, K, generator=g); w /= w.sum(1, keepdim=True)
    if not per_sample: w[:] = torch.tensor([.7, .3])  # MixUp per batch: one weight, a number
    geom = Blend(idx, w, keep_base=K == 2, w=None if per_sample else .3)
    M = torch.zeros(bs, bs)
    for k in range(K): M[torch.arange(bs), idx[k]] += w[:, k]  # output b = Σ_k w[b, k] · t[idx[k, b]]
    t = torch.randn(bs, 4, 3, 3, requires_grad=True)
    out = geom.apply(t)  # as `ManifoldMixUp.blend` calls it: out of place
    up = torch.randn_like(out)
    grad, = torch.autograd.grad(out, t, up)
    torch.testing.assert_close(out, (M @ t.detach().view(bs, -1)).view_as(t))
    torch.testing.assert_close(grad, (M.T @ up.view(bs, -1)).view_as(t))

@pytest.mark.parametrize('cont', [True, False])
def test_tabular_models_are_mixed_at_their_hidden_layers(cont):
    "fastai's tabular model: `bn_cont` sees the continuous features alone, and its `embeds` ModuleList is indexed: the hidden layers see the whole row"
    import pandas as pd
    from fastai.tabular.all import TabularDataLoaders, tabular_learner, Categorify, Normalize
    g = np.random.default_rng(0)
    df = pd.DataFrame({'a': g.choice(['x', 'y', 'z'], 96), 'b': g.normal(size=96), 'y': g.choice(['p', 'q'], 96)})
    dls = TabularDataLoaders.from_df(df, cat_names=['a'], cont_names=['b'] if cont else [], y_names='y', procs=[Categorify, Normalize], bs=16)
    model = tabular_learner(dls, layers=[8, 4]).model
    assert default_modules(model) == [model.layers[0], model.layers[1]]  # not the output layer
    for seed in range(3):  # (only categorical columns: `bn_cont` is never called, so mixing there failed every batch)
        cb = ManifoldMixUp(seed=seed)
        learn = tabular_learner(dls, layers=[8, 4], cbs=cb)
        with learn.no_bar(), learn.no_logging(): learn.fit(1)
        assert set(cb.counts) == {'layers.0', 'layers.1'} and sum(cb.counts.values()) == len(dls.train)
        assert np.isfinite(learn.recorder.losses[-1].item())

class HasModule(nn.Module):
    "A model whose child is stored as `self.module`, as a wrapper's is: it is no `DistributedDataParallel`"
    def __init__(self): super().__init__(); self.module,self.head = net(), nn.Linear(3, 3)
    def forward(self, x): return self.head(self.module(x))

@pytest.mark.parametrize('modules', [['module.2'], 'head', None])
def test_a_child_named_module_is_no_parallel_wrapper(modules):
    "Names from `learn.model.named_modules()` and modules outside `.module` are the model's; only `DataParallel` and `DistributedDataParallel` are unwrapped"
    model = HasModule()
    if modules == 'head': modules = [model.head]
    cb = ManifoldMixUp(seed=0, modules=modules)
    learn = learner(cb, model)
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)
    assert list(cb.counts) == (['module.2'] if modules == ['module.2'] else ['head'] if modules else ['module'])
    inner = net()
    assert default_modules(nn.DataParallel(inner)) == default_modules(inner) != []  # (on the CPU it wraps one model)

def test_modules_can_be_read_and_set_between_fits():
    "`modules` is the mixer's own hyper-parameter: read back, checked when set, applied from the next fit, with no warning about the learner's `modules`"
    import warnings
    cb = ManifoldMixUp(seed=0, modules=['0'])
    learn = learner(cb)
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)
    assert cb.modules == ['0'] and list(cb.counts) == ['0']
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        cb.modules = ['2']
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)
    assert list(cb.counts) == ['2'] and cb.counts['2'] > 0
    with pytest.raises(TypeError, match='`modules` must be None or a non-empty list'): cb.modules = 'garbage'
    assert cb.modules == ['2']

def test_signature_shows_the_handlers_parameters():
    "Its page's parameter table lists what it passes to `MixHandler` (`@delegates`), as every method's does"
    import inspect
    assert {'p', 'mode', 'seed', 'off_epochs', 'off_pct'} <= set(inspect.signature(ManifoldMixUp).parameters)

def test_a_compiled_model_takes_one_choice():
    "A compiled forward pass runs only the hooks it was compiled with: several choices get a clear error at the fit's start (not a wrong 'module was not called'); one module is mixed every batch"
    learn = learner(ManifoldMixUp(seed=0), torch.compile(net(), backend='eager'))
    with pytest.raises(ValueError, match=r"draws among 3 choices .* the model is compiled"):
        with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)
    cb = ManifoldMixUp(seed=0, modules=['_orig_mod.2'])
    learn = learner(cb, torch.compile(net(), backend='eager'))
    with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)  # (after_pred fails a batch whose hook did not fire)
    assert cb.counts == {'_orig_mod.2': len(learn.dls.train)} and np.isfinite(learn.recorder.losses[-1].item())

def test_a_fastai_text_classifier_is_mixed_at_its_head_as_the_docs_say():
    "The Manifold page's advice for `text_classifier_learner` (its encoder runs per chunk of `seq_len` tokens): `modules=['1.layers.0']` mixes every batch"
    import random, pandas as pd
    from fastai.text.all import TextDataLoaders, text_classifier_learner, AWD_LSTM
    random.seed(0)
    words = ['good', 'bad', 'great', 'awful', 'fine', 'meh']
    texts = [' '.join(random.choices(words, k=random.randint(5, 12))) for _ in range(48)]
    df = pd.DataFrame({'text': texts, 'label': ['pos' if 'good' in t else 'neg' for t in texts]})
    dls = TextDataLoaders.from_df(df, text_col='text', label_col='label', valid_pct=.25, bs=8, seq_len=4, seed=0)
    cb = ManifoldMixUp(modules=['1.layers.0'], seed=0)
    learn = text_classifier_learner(dls, AWD_LSTM, pretrained=False, cbs=cb)
    with learn.no_bar(), learn.no_logging(): learn.fit(1)
    assert cb.counts == {'1.layers.0': len(dls.train)} and np.isfinite(learn.recorder.losses[-1].item())
