"Several inputs: a second image input and masks get the same geometry and weights; tabular inputs are blended by a blend, left alone by a cut"
import math, pytest, torch
from torch import nn
from fastai.basics import *
from fastai.vision.all import *
from fastmix.all import *
from fastmix.core import *
from fastmix.geometry import *
from fastmix.testing import *
from fastmix.mixers import MIXERS
from helpers import CASES, INPUT_MIXERS, MODES, X, get_x, get_y
from fastmix.demo import small_cnn

@pytest.mark.parametrize('method,mode', CASES)
@pytest.mark.parametrize('c2', [3, 1], ids=['same-channels', 'other-channels'])
def test_two_image_inputs_share_geometry_and_weights(method, mode, c2):
    "A second image of the same H×W gets exactly the geometry and the weights of the first"
    bs, h, w = 6, 10, 13
    x = provenance_batch(bs, 3, h, w)
    x2 = x[:, :c2] * 2 + 1  # another image with the same pixels' provenance
    mix, (xm, x2m), _ = MIXERS[method](mode=mode, seed=5).mix_batch((x, x2), (torch.arange(bs),))
    check_provenance(x, xm, mix)
    assert x2m.shape == x2.shape
    assert not torch.equal(x2m, x2), "the second image input was left unmixed while the first was mixed"
    if mix.geom.cuts and not getattr(mix.geom, 'resized', False): assert torch.equal(x2m, xm[:, :c2] * 2 + 1)
    else: torch.testing.assert_close(x2m, xm[:, :c2] * 2 + 1)  # a blend (or resize) of affine images is affine

@pytest.mark.parametrize('method,mode', CASES)
def test_tabular_input_blended_by_a_blend_left_alone_by_a_cut(method, mode):
    "A blend mixes the whole sample, its float features too, as its label; a cut can't cut them; categorical codes are never blended"
    bs = 6
    x = provenance_batch(bs, 3, 8, 8)
    tab, tab_int = torch.randn(bs, 5, dtype=torch.float64), torch.randint(0, 9, (bs, 4))
    tab0, int0 = tab.clone(), tab_int.clone()
    for seed in range(4):  # (`CutMixUp` per batch blends some batches, cuts others)
        mix, (xm, tabm, tabim), _ = MIXERS[method](mode=mode, seed=seed).mix_batch((x.clone(), tab.clone(), tab_int), (torch.arange(bs),), inplace=True)
        assert mix is not None and tabim is tab_int and torch.equal(tab_int, int0)
        check_provenance(x, xm, mix)
        if mix.geom.cuts is False: torch.testing.assert_close(tabm, mix.blend(tab0))
        else: assert torch.equal(tabm, tab0)

def get_x2(i): return X[i] * 2 + 1
def get_tab(i): return X[i].mean((1, 2))

class TwoInputNet(nn.Module):
    "An image, a second image of the same size and a tabular input"
    def __init__(self, n_cls=3):
        super().__init__()
        self.a, self.b = small_cnn(3, n_cls), small_cnn(3, n_cls)
        self.t = nn.Linear(3, n_cls)
    def forward(self, x, x2, t): return self.a(x) + self.b(x2) + self.t(t)

@pytest.mark.parametrize('method', INPUT_MIXERS)
def test_learner_with_two_image_inputs_and_a_tabular_one_fits(method):
    db = DataBlock(blocks=(TransformBlock, TransformBlock, TransformBlock, CategoryBlock), n_inp=3,
                   getters=[get_x, get_x2, get_tab, get_y], splitter=IndexSplitter(list(range(48, 64))))
    dls = db.dataloaders(list(range(64)), bs=8, shuffle=True, seed=0)
    before, checks = [], []
    class Before(Callback):
        order = -1
        def before_batch(self):
            if self.training: before.append([t.clone() for t in self.xb])
    class After(Callback):
        order = 1
        def before_batch(self):
            if not self.training: return
            (x, x2, t), (x0, x20, t0) = self.xb, before[-1]
            # the tabular input is the image's channel means: a blend keeps it so, a cut leaves it
            tab_ok = torch.allclose(t, x.mean((2, 3)), atol=1e-5) if cb.mix.geom.cuts is False else torch.equal(t, t0)
            checks.append((torch.allclose(x2, x * 2 + 1, atol=1e-5), tab_ok, not torch.equal(x, x0) or bool((cb.mix.weights[:, 0] == 1).all())))  # (unless λ drew 1)
    cb = MIXERS[method](seed=0)
    set_seed(0, reproducible=True)
    learn = Learner(dls, TwoInputNet(), loss_func=CrossEntropyLossFlat(), cbs=[cb, Before(), After()])
    lf = learn.loss_func
    learn.fit(2, 1e-2)
    assert learn.loss_func is lf
    assert len(checks) == 12 and all(all(c) for c in checks), checks
    assert all(math.isfinite(float(l)) for l in learn.recorder.losses)
    assert all(math.isfinite(v) for v in learn.validate())

@pytest.mark.parametrize('cls', [CutMix, RICAP])
@pytest.mark.parametrize('mode', MODES)
def test_extra_image_input_and_mask_share_geometry(cls, mode):
    "The cut methods cut every spatial tensor alike: a second image input and a segmentation mask (the target)"
    bs, h, w = 6, 10, 13
    x = provenance_batch(bs, 3, h, w, dtype=torch.float32)
    x2 = provenance_batch(bs, 1, h, w, dtype=torch.float32) + .25
    mask = provenance_batch(bs, 1, h, w, dtype=torch.float64)[:, 0].long()
    tab = torch.randn(bs, 4)
    mix, (xm, x2m, tabm), (mm,) = cls(mode=mode, seed=5).mix_batch((x, x2, tab), (mask,))
    assert torch.equal(xm[:, 0], x2m[:, 0] - .25) and torch.equal(xm[:, 0].long(), mm)
    assert torch.equal(tabm, tab)  # non-image inputs are left alone
    assert mix.in_loss == (False,)  # the cut mask is the target: the original loss applies

@pytest.mark.parametrize('method', ['cutmix', 'ricap', 'fmix'])
@pytest.mark.parametrize('mode', ['batch', 'sample'])
def test_integer_and_channelless_inputs_follow_a_cut(method, mode):
    "A uint8 map input (B, 1, H, W) and a float one without channels (B, H, W) get the image's cut, exactly (were left as they were)"
    from fastmix.mixers import MIXERS
    x = provenance_batch(6, 3, 20, 20, dtype=torch.float32)
    ids, flat = (x[:, :1] % 251).to(torch.uint8), x[:, 0].clone()
    mix, (xm, idm, flm), _ = MIXERS[method](mode=mode, seed=0).mix_batch((x.clone(), ids.clone(), flat.clone()), (torch.arange(6),))
    assert torch.equal(idm, (xm[:, :1] % 251).to(torch.uint8)) and torch.equal(flm, xm[:, 0])

def test_integer_map_input_is_an_error_where_blended():
    with pytest.raises(ValueError, match=r"input 1 is an integer map over the positions \(torch.uint8, shape \(6, 1, 20, 20\)\), which MixUp would blend"):
        MixUp(seed=0).mix_batch((torch.rand(6, 3, 20, 20), torch.zeros(6, 1, 20, 20, dtype=torch.uint8)), (torch.arange(6),))
