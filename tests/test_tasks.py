"Segmentation masks, multi-label targets, CutMixUp, schedules, and label smoothing / focal loss, end to end"
import re, numpy as np, torch, pytest
from PIL import Image
from fastai.vision.all import *
from fastai.losses import LabelSmoothingCrossEntropyFlat, FocalLossFlat
from fastmix.all import *
from fastmix.core import *
from fastmix.geometry import *
from fastmix.testing import *
from fastmix.mixers import MIXERS
from helpers import INPUT_MIXERS, synth_learner

CODES = ['bg', 'square', 'bar']

@pytest.fixture(scope='module')
def seg_dls(tmp_path_factory):
    "Real `SegmentationDataLoaders` over PNG files: the image's grey level encodes each pixel's class (class·80)"
    d = tmp_path_factory.mktemp('seg'); (d/'img').mkdir(); (d/'lbl').mkdir()
    rng = np.random.default_rng(0)
    for n in range(24):
        m = np.zeros((24, 32), np.uint8)
        y, x = rng.integers(0, 16, 2); m[y:y+8, x:x+10] = 1
        m[:, rng.integers(0, 28):][:, :3] = 2
        Image.fromarray(np.stack([m * 80] * 3, -1)).save(d/'img'/f'{n}.png'); Image.fromarray(m).save(d/'lbl'/f'{n}.png')
    return SegmentationDataLoaders.from_label_func(d, get_image_files(d/'img'), lambda f: d/'lbl'/f.name, codes=CODES,
                                                   bs=8, seed=0, num_workers=0, valid_pct=.25)

def seg_model(): return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 3, 1))

@pytest.mark.parametrize('cls', [CutMix, RICAP])
@pytest.mark.parametrize('mode', ['batch', 'sample'])
def test_segmentation_masks_follow_pixels(seg_dls, cls, mode):
    seen = []
    class Spy(Callback):
        order = 1
        def before_batch(self):
            if self.training: seen.append((self.xb[0].detach().as_subclass(torch.Tensor).clone(), self.yb[0].as_subclass(torch.Tensor).clone()))
    learn = Learner(seg_dls, seg_model(), loss_func=CrossEntropyLossFlat(axis=1), cbs=[cls(seed=0, mode=mode), Spy()])
    lf = learn.loss_func
    learn.fit(2, 1e-2)
    assert learn.loss_func is lf and np.isfinite(learn.recorder.values[-1][0])
    assert seen
    for x, m in seen:  # every pixel keeps its true class: the mask was cut exactly like the image
        assert not m.is_floating_point()
        assert torch.equal((x[:, 0] * 255 / 80).round().long(), m.long())

def test_segmentation_mixup_is_per_pixel_weighted_loss(seg_dls):
    cb = MixUp(seed=0)
    x, m = seg_dls.one_batch()
    mix, (xm,), (mm,) = cb.mix_batch((x,), (m,))
    assert torch.equal(mm, m)  # masks are not blended: the loss weighs them per pixel
    pred = torch.randn(len(x), 3, *x.shape[-2:])
    lf = CrossEntropyLossFlat(axis=1)
    ours = mixed_loss(lf, pred, [(m[mix.idx[k]],) for k in range(2)], mix.weights)
    per = [F.cross_entropy(pred, m[mix.idx[k]].long(), reduction='none') for k in range(2)]
    exp = (mix.weights[:, 0, None, None] * per[0] + mix.weights[:, 1, None, None] * per[1]).mean()
    torch.testing.assert_close(ours, exp)
    Learner(seg_dls, seg_model(), loss_func=lf, cbs=MixUp(seed=0)).fit(1, 1e-2)

def test_per_sample_cutmixup_refuses_masks(seg_dls):
    x, m = seg_dls.one_batch()
    with pytest.raises(ValueError, match=r"can't mix segmentation masks \(integer label maps\); use mode='batch'"):
        CutMixUp(mode='sample', seed=0).mix_batch((x,), (m,))
    CutMixUp(mode='batch', seed=0).mix_batch((x,), (m,))

def test_segmentation_preview_overlays_mask(seg_dls, tmp_path):
    fig = show_mix(CutMix(seed=0), seg_dls, n=4, ncols=2, path=tmp_path/'seg.png')
    assert (tmp_path/'seg.png').exists() and fig.axes[0].get_title() == 'mixed mask'
    assert len(fig.axes[0].images) == 2  # the image and the mask over it

# -- multi-label
LABELS = [['cat'], ['dog'], ['cat', 'dog'], ['bird'], ['cat', 'bird'], ['dog', 'bird']] * 8
def ml_x(i): return TensorImage(torch.full((3, 8, 8), float(i % 6) / 6))
def ml_y(i): return LABELS[i]

@pytest.mark.parametrize('cls', [MIXERS[n].cls for n in INPUT_MIXERS], ids=INPUT_MIXERS)
def test_multilabel_targets_mixed_by_weight(cls):
    db = DataBlock(blocks=(TransformBlock, MultiCategoryBlock), get_x=ml_x, get_y=ml_y, splitter=RandomSplitter(seed=0))
    dls = db.dataloaders(list(range(48)), bs=8, num_workers=0)
    x, y = dls.one_batch()
    mix, _, (ym,) = cls(seed=0).mix_batch((x,), (y,))
    exp = sum(mix.weights[:, k, None] * y[mix.idx[k]] for k in range(mix.K))
    torch.testing.assert_close(ym.float(), exp.float())
    assert mix.in_loss == (False,)
    learn = Learner(dls, nn.Sequential(nn.Flatten(), nn.Linear(192, 3)), loss_func=BCEWithLogitsLossFlat(), cbs=cls(seed=0))
    learn.fit(1, 1e-2)
    assert np.isfinite(learn.recorder.values[-1][0])
    title = show_mix(cls(seed=0), dls, n=2, batch=(x, y)).axes[0].get_title()
    parts = [p.split(' ', 1) for p in re.split(r' · |\n', title)]  # long titles wrap onto a second line
    assert parts and all(0 < float(w) <= 1 and lbl in ('cat', 'dog', 'bird') for w, lbl in parts)

# -- CutMixUp
@pytest.mark.parametrize('mode', ['batch', 'sample'])
def test_cutmixup_switches(mode):
    x = torch.randn(16, 3, 8, 8)
    cb = CutMixUp(switch_prob=.7, mode=mode, seed=0)
    kinds = []
    for _ in range(300):
        mix, _, _ = cb.mix_batch((x,), (torch.arange(16),))
        kinds += [mix.geom.cuts] if mode == 'batch' else (mix.geom.pick == 1).tolist()
    frac = np.mean(kinds)
    assert abs(frac - .7) < .05
    learn = synth_learner(cbs=CutMixUp(mode=mode, seed=0)); learn.fit(1, 1e-2)
    assert np.isfinite(learn.recorder.values[-1][0])

@pytest.mark.parametrize('switch_prob', [0., 1.])
def test_cutmixup_per_sample_all_one_kind(switch_prob):
    "Every image picks the same mixer: the other one has no geometry, and the mix is the picked one's alone"
    x = provenance_batch(6, 3, 8, 8)
    mix, (xm,), _ = CutMixUp(switch_prob=switch_prob, mode='sample', seed=0).mix_batch((x,), (torch.arange(6),))
    assert mix.geom.cuts == bool(switch_prob)
    check_provenance(x, xm, mix)

def test_mixchoice_validates():
    with pytest.raises(ValueError, match='`probs` must have one probability per mixer'): MixChoice([MixUp(), CutMix()], [.5, .6])
    with pytest.raises(TypeError, match='`mixers` must be a non-empty list'): MixChoice(['cutmix'])
    from fastai.callback.mixup import MixUp as FastaiMixUp  # fastai's own MixUp is a (fastai) MixHandler too: named
    with pytest.raises(TypeError, match=r'\(fastai\.callback\.mixup\.MixUp is not\)'): MixChoice([FastaiMixUp(), CutMix()])
    with pytest.raises(ValueError, match='`switch_prob` must be in'): CutMixUp(switch_prob=1.5)

def test_mixchoice_ricap_and_cutmix_pad_weights():
    x = torch.randn(8, 3, 9, 9)
    mix, _, _ = MixChoice([RICAP(), CutMix()], mode='sample', seed=1).mix_batch((x,), (torch.arange(8),))
    assert mix.K == 4 and torch.allclose(mix.weights.sum(1), torch.ones(8))
    assert (mix.weights[mix.geom.pick == 1][:, 2:] == 0).all()

# -- schedules and turning mixing off
class Count(Callback):
    order = 1
    def before_fit(self): self.per_epoch = []
    def before_epoch(self): self.per_epoch.append([])
    def before_batch(self):
        if self.training: self.per_epoch[-1].append(self.learn.cbs.filter(lambda c: isinstance(c, MixHandler))[0].mix is not None)

def _frac(cb, epochs=4):
    cnt = Count()
    learn = synth_learner(cbs=[cb, cnt], bs=2)
    learn.fit(epochs, 1e-3)
    return [np.mean(e) for e in cnt.per_epoch]

def test_p_schedule_fraction_follows():
    "Each batch is mixed with probability `p` at its own progress: per epoch, as many mixed batches as that predicts (within 3 sd)"
    cb, seen = CutMix(p=SchedLin(1., 0.), seed=0), []
    class Rec(Callback):
        order = 1
        def before_batch(self):
            if self.training: seen.append((self.pct_train, cb.mix is not None))
    synth_learner(cbs=[cb, Rec()], bs=2).fit(4, 1e-3)
    assert len(seen) == 4 * 24
    fr = []
    for e in range(4):
        p, mixed = 1 - np.array([pct for pct, _ in seen[24*e:24*(e+1)]]), [m for _, m in seen[24*e:24*(e+1)]]
        assert abs(sum(mixed) - p.sum()) <= 3 * np.sqrt((p * (1 - p)).sum()), (e, sum(mixed), p.sum())
        fr.append(np.mean(mixed))
    assert fr[0] > fr[1] > fr[2] > fr[3]

def test_off_epochs_and_off_pct():
    assert _frac(MixUp(seed=0, off_epochs=1)) [:3] == [1., 1., 1.] and _frac(MixUp(seed=0, off_epochs=1))[3] == 0.
    fr = _frac(RICAP(seed=0, off_pct=.5))
    assert fr[:2] == [1., 1.] and fr[2:] == [0., 0.]

def test_alpha_schedule_used():
    cb = MixUp(alpha=lambda pct: .01 if pct < .5 else 20., seed=0)  # any callable of the progress is a schedule
    lams = []
    class Rec(Callback):
        order = 1
        def before_batch(self):
            if self.training: lams.append(float(cb.mix.weights[0, 0]))
    learn = synth_learner(cbs=[cb, Rec()], bs=2)
    learn.fit(2, 1e-3)
    n = len(lams) // 2 - 2
    extreme = lambda ls: np.mean([min(l, 1 - l) for l in ls])  # small α: λ near 0 or 1; large α: near 0.5
    assert extreme(lams[:n]) < .05 and extreme(lams[-n:]) > .35

# -- label smoothing and focal loss through a real Learner
@pytest.mark.parametrize('lf', [LabelSmoothingCrossEntropyFlat(eps=.1), FocalLossFlat(gamma=2.)], ids=['ls', 'focal'])
@pytest.mark.parametrize('cls', [m.cls for m in MIXERS.values()], ids=list(MIXERS))
def test_y_int_losses_in_training(lf, cls):
    got = []
    class Check(Callback):
        order = 5
        def after_loss(self):
            if not self.training: return
            mix = self.learn.cbs.filter(lambda c: isinstance(c, MixHandler))[0].mix
            exp = sum(mix.weights[:, k] * torch.stack([lf.__class__(**({'eps': .1} if hasattr(lf, 'eps') else {'gamma': 2.}))(self.pred[b:b+1], self.yb[0][mix.idx[k, b]][None]) for b in range(len(self.pred))]) for k in range(mix.K)).mean()
            got.append(abs(float(self.loss_grad) - float(exp)))
    learn = synth_learner(cbs=[cls(seed=0), Check()], loss_func=lf)
    learn.fit(1, 1e-2)
    assert got and max(got) < 1e-5

def test_integer_regression_targets_are_blended():
    "Integer targets of a fastai loss that does not take class indices (`MSELossFlat`: no `y_int`) are values (counts): blended"
    from fastmix.core import _y_int
    x, y = torch.randn(8, 3, 6, 6), torch.randint(0, 100, (8,))
    mix, _, (ym,) = MixUp(seed=0).mix_batch((x.clone(),), (y,), y_int=_y_int(MSELossFlat()))
    assert mix.in_loss == (False,) and ym.is_floating_point()
    torch.testing.assert_close(ym, sum(mix.weights[:, k] * y[mix.idx[k]].float() for k in range(mix.K)))
    for lf in (CrossEntropyLossFlat(), nn.CrossEntropyLoss()):  # indices by the loss's word, or (plain torch) by their dtype
        mix, _, (yc,) = MixUp(seed=0).mix_batch((x.clone(),), (y,), y_int=_y_int(lf))
        assert mix.in_loss == (True,) and yc is y

def test_mixchoice_probs_are_checked_whenever_set_and_sum_to_one_exactly():
    "Probabilities within rounding of 1 are scaled to sum to 1 (numpy's `choice` allows less); set later, they get the constructor's check"
    x = torch.randn(6, 3, 8, 8)
    m = MixChoice([MixUp(), CutMix(), RICAP()], probs=[1 / 3] * 3, seed=0)
    assert m.probs.sum() == 1 and np.allclose(m.probs, 1 / 3)
    m = MixChoice([MixUp(), CutMix(), RICAP()], probs=[.3333333] * 3, seed=0)
    assert m.probs.sum() == 1 and m.mix_batch((x,), (torch.arange(6),))[0] is not None
    m = MixChoice([MixUp(), CutMix()], seed=0)
    for bad, msg in (([.5, -1.], r'`probs` must be in \[0, 1\], got -1.0'), ([.5, .6], '`probs` must have one probability per mixer'),
                     ([1.], '`probs` must have one probability per mixer'), (.5, r'`probs` must be a list of probabilities, got 0.5')):
        with pytest.raises(ValueError, match=msg): m.probs = bad
        with pytest.raises(ValueError, match=msg): MixChoice([MixUp(), CutMix()], probs=bad)
    m.probs = [0., 1.]
    assert m.mix_batch((x,), (torch.arange(6),))[0].geom.cuts

def test_cutmixup_parameters_read_and_set_as_its_children_use_them():
    "`switch_prob`, `mixup_alpha` and `cutmix_alpha` read back as given; set later they are checked and change the mix"
    m = CutMixUp(mixup_alpha=.3, cutmix_alpha=2., switch_prob=0., seed=0)
    assert (m.mixup_alpha, m.cutmix_alpha, m.switch_prob) == (.3, 2., 0.)
    x = torch.randn(6, 3, 8, 8)
    assert m.mix_batch((x,), (torch.arange(6),))[0].geom.cuts is False
    m.switch_prob, m.cutmix_alpha, m.mixup_alpha = 1., .5, .8
    assert (m.switch_prob, m.mixers[1].alpha, m.mixers[0].alpha) == (1., .5, .8) and list(m.probs) == [0., 1.]
    assert m.mix_batch((x,), (torch.arange(6),))[0].geom.cuts is True
    for name, bad, msg in (('switch_prob', 5, '`switch_prob` must be in'), ('mixup_alpha', 0, '`mixup_alpha` must be'), ('cutmix_alpha', -1, '`cutmix_alpha` must be')):
        with pytest.raises(ValueError, match=msg): setattr(m, name, bad)
    assert (m.switch_prob, m.cutmix_alpha, m.mixup_alpha) == (1., .5, .8)
