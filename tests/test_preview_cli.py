"Previews show the mixer's real label weights; the PNG is a real picture; the CLI runs end to end and fails cleanly"
import json, subprocess, sys, os, pathlib, pytest, torch
import matplotlib; matplotlib.use('Agg')
from PIL import Image
from fastai.vision.all import *
from fastmix.all import *
from fastmix.core import *
from fastmix.geometry import *
from fastmix.testing import *
from fastmix.demo import mnist_dls
from fastmix.mixers import MIXERS

FASTMIX = [sys.executable, '-m', 'fastmix.cli']

@pytest.fixture(scope='module')
def dls(): return mnist_dls(n_train=160, n_test=40, bs=16)

@pytest.mark.parametrize('cls', [m.cls for m in MIXERS.values()], ids=list(MIXERS))
def test_titles_are_the_label_weights(cls, dls):
    mixer = cls(seed=3)
    state = mixer.rng.bit_generator.state
    batch = dls.one_batch()
    fig = show_mix(mixer, dls, n=6, batch=batch)
    assert mixer.rng.bit_generator.state == state  # previewing does not change the training draws
    xm, ym, mix, xb = mixed_preview_batch(mixer, dls, n=6, batch=batch)
    titles = [ax.get_title() for ax in fig.axes[:6]]
    vocab = dls.vocab
    for b, t in enumerate(titles):
        # rebuild the expected shares from the mix itself: the label of each source, summed per class
        exp = {}
        for k in range(mix.K): exp[vocab[int(ym[0][mix.idx[k, b]])]] = exp.get(vocab[int(ym[0][mix.idx[k, b]])], 0) + float(mix.weights[b, k])
        got = {p.split(' ', 1)[1]: float(p.split(' ', 1)[0]) for p in t.split(' · ')}
        assert set(got) == {c for c, s in exp.items() if s > 0}
        for c, s in got.items(): assert abs(s - exp[c]) < .006
        assert list(got.values()) == sorted(got.values(), reverse=True)  # largest first
    if cls is RICAP: assert any(len(t.split(' · ')) >= 3 for t in titles) or mix.K == 4

def test_png_written_with_expected_size(dls, tmp_path):
    p = tmp_path/'mix.png'
    show_mix(CutMix(seed=0), dls, n=4, ncols=2, figsize=(6, 6), path=p)
    im = Image.open(p)
    assert im.format == 'PNG' and im.size == (480, 480)  # 6 in × 80 dpi
    a = np.asarray(im.convert('L'))
    assert a.std() > 10  # a real picture, not a blank canvas

def test_learner_show_mix_uses_its_callback(dls):
    learn = Learner(dls, nn.Sequential(nn.Flatten(), nn.Linear(784, 10)), cbs=RICAP(seed=1))
    import matplotlib.pyplot as plt
    plt.close('all')
    assert learn.show_mix(n=4, panels=True) is None  # shown, not returned: a notebook shows it once, as `show_batch`
    fig = plt.gcf()
    assert len(fig.axes) >= 12 and fig.axes[1].get_title() == 'partner'
    with pytest.raises(ValueError, match='no MixHandler'): Learner(dls, nn.Linear(1, 1)).show_mix()

@pytest.mark.parametrize('preview', [lambda learn: learn.show_mix(n=4), lambda learn: learn.dls.show_mix(CutMix(seed=5)),
                                     lambda learn: mixed_preview_batch(MixUp(seed=5), learn.dls)])
def test_a_preview_leaves_the_training_run_as_it_was(preview):
    "A seeded fit after a preview (which takes a training batch of its own) trains exactly as without it: the loader's shuffle and the global generators are put back"
    import matplotlib.pyplot as plt
    from helpers import synth_learner
    def run(look):
        learn = synth_learner(cbs=CutMix(seed=0))
        if look: preview(learn); plt.close('all')
        with learn.no_bar(), learn.no_logging(): learn.fit(2, 1e-3)
        return [float(l) for l in learn.recorder.losses], sum(float(p.sum()) for p in learn.model.parameters())
    assert run(False) == run(True)

@pytest.mark.parametrize('make', [lambda s: MixUp(alpha=s), lambda s: CutMix(alpha=s), lambda s: RICAP(beta=s), lambda s: MixUp(p=s)])
@pytest.mark.parametrize('valid', [None, 4, 0])
def test_a_preview_after_a_fit_draws_as_its_last_batch(make, valid):
    "fastai leaves the progress at 1 after a fit, where a schedule of α may end at 0: a preview then draws as the last batch did, and mixes (whatever the validation's length, which fastai leaves in `n_iter`)"
    from helpers import synth_learner
    seen = []
    cb = make(lambda p: (seen.append(p), SchedCos(1., 0.)(p))[1])
    learn = synth_learner(cbs=cb)
    if valid is not None: learn.dls.valid = learn.dls.valid.new(learn.dls.valid.dataset[:valid], bs=2)
    with learn.no_bar(), learn.no_logging(): learn.fit(2, 1e-3)
    last, n_train = seen[-1], len(learn.dls.train)
    assert learn.pct_train == pytest.approx(1) and last == pytest.approx(1 - 1 / (2 * n_train))
    assert (valid is None or learn.n_iter != n_train) and cb.progress(None)[0] == pytest.approx(last, abs=1e-12)
    seen.clear()
    xm, ym, mix, xb = mixed_preview_batch(cb, learn.dls)
    assert seen and all(p == pytest.approx(last, abs=1e-12) for p in seen)  # (it may draw again for a mix that mixes)
    assert mix is not None or callable(cb.p)  # (`p` ends near 0: a mix may mix nothing)

def test_titles_name_tiny_shares_as_they_are():
    from fastmix.preview import shares_title
    assert shares_title([('cat', .996), ('dog', .004)]) == '1.00 cat · 0.004 dog' and shares_title([('cat', .5)]) == '0.50 cat'

def _run(*args, cwd=None, quiet=True):
    env = {**os.environ, 'MPLBACKEND': 'Agg'}
    env.pop('PYTHONWARNINGS', None)
    if quiet: env['PYTHONWARNINGS'] = 'ignore'
    return subprocess.run(FASTMIX + list(args), capture_output=True, text=True, cwd=cwd, env=env, timeout=600)

def test_demo_quick_report(tmp_path):
    # as CI and a log file see it: stdout is not a terminal, Python's warnings at their defaults
    r = _run('demo', '--quick', '--methods', 'cutmix,mixup', '--seeds', '3,4', '--out', str(tmp_path/'out'), quiet=False)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stderr == ''  # no third-party warning (fastai's import of the deprecated torch.jit.script)
    out = tmp_path/'out'
    rows = json.loads((out/'results.json').read_text())
    assert [(x['method'], x['seed']) for x in rows] == [(m, s) for s in (3, 4) for m in ('baseline', 'cutmix', 'mixup')]
    for x in rows:
        assert set(x) == {'method', 'seed', 'error', 'nll', 'ece', 'epochs', 'seconds'}
        assert 0 <= x['error'] <= 1 and 0 <= x['ece'] <= 1 and np.isfinite(x['nll']) and x['epochs'] == 2 and x['seconds'] > 0
    # one line per epoch and run, no progress bars
    epoch_lines = [l for l in r.stdout.splitlines() if ': epoch ' in l]
    assert len(epoch_lines) == 6 * 2 and '█' not in r.stdout and '\r' not in r.stdout
    assert len(r.stdout) < 4000
    # the verdicts are computed from the rows: paired by seed
    base = {x['seed']: x for x in rows if x['method'] == 'baseline'}
    d = np.array([x['error'] - base[x['seed']]['error'] for x in rows if x['method'] == 'cutmix']) * 100
    line = next(l for l in r.stdout.splitlines() if l.startswith('cutmix vs baseline'))
    assert f"error {d.mean():+.2f} ± {d.std(ddof=1):.2f} pp (lower in {(d < 0).sum()}/2)".replace('-', '−') in line
    md = (out/'results.md').read_text()
    assert line in md and '| cutmix |' in md and '| cutmix |' in r.stdout
    for f in ('preview_cutmix.png', 'preview_mixup.png', 'test_error.png', 'reliability.png'):
        assert Image.open(out/f).format == 'PNG' and f'({f})' in md

def test_same_seed_same_results_and_pictures(tmp_path):
    # two processes: what a seed fixes may not depend on Python's global `random` (fastai's loaders seed their shuffling from it)
    pixels = lambda f: np.asarray(Image.open(f).convert('RGB'))
    for i in (1, 2):
        assert _run('demo', '--quick', '--methods', 'mixup', '--seeds', '0', '--out', str(tmp_path/f'd{i}')).returncode == 0
        assert _run('preview', '--method', 'cutmix', '--seed', '2', '--n', '6', '--out', str(tmp_path/f'p{i}.png')).returncode == 0
    rows = [[{k: v for k, v in x.items() if k != 'seconds'} for x in json.loads((tmp_path/f'd{i}'/'results.json').read_text())] for i in (1, 2)]
    assert len(rows[0]) == 2 and rows[0] == rows[1]
    for f in ('d{}/preview_mixup.png', 'd{}/test_error.png', 'p{}.png'):
        assert np.array_equal(pixels(tmp_path/f.format(1)), pixels(tmp_path/f.format(2))), f

def test_every_option_has_help():
    from fastmix.cli import parser
    subs = next(a for a in parser()._actions if a.dest == 'cmd').choices
    for name, sub in subs.items():
        for a in sub._actions: assert a.help, f'fastmix {name} {a.option_strings} has no help line'

def test_preview_command(tmp_path):
    r = _run('preview', '--method', 'ricap', '--out', str(tmp_path/'p.png'), '--n', '4')
    assert r.returncode == 0, r.stderr[-2000:]
    assert Image.open(tmp_path/'p.png').size[0] > 100

@pytest.mark.parametrize('args,msg', [
    (['demo', '--methods', 'nosuchmix'], '--methods: unknown method nosuchmix'),
    (['demo', '--epochs', '0'], '--epochs must be > 0'),
    (['demo', '--epochs', 'two'], '--epochs must be a whole number'),
    (['demo', '--lr', 'nan'], '--lr must be > 0, got nan'),
    (['demo', '--seeds', '1,1'], '--seeds: 1 given twice'),
    (['preview', '--n', '0'], '--n must be >= 2 (a mix needs two images), got 0'),
    ([], "the following arguments are required: {demo,preview} (`fastmix --help` says what it takes)"),
    (['demo', '--mode', 'x'], "invalid choice: 'x'"),
    (['preview', '--seed', '-1'], '--seed must be >= 0, got -1'),
    (['preview', '--out', '/no/such/folder/p.png'], '--out: no such folder: /no/such/folder'),
    (['demo', '--n-train', '4999'], '--n-train: at most 3000 images'),
    (['demo', '--data', '/no/such/folder'], 'no such folder'),
    (['demo', '--data', ''], "--data: an empty path (''); give an image folder"),  # (an unset "$DATA"): never the default data instead
    (['preview', '--data', ' '], "--data: an empty path (' '); give an image folder"),
    (['preview', '--method', 'nope'], '--method: unknown method nope'),
    (['demo', '--lr', 'inf'], '--lr must be a finite number, got inf'),
    (['preview', '--n', '7'], '--n 7: the data holds only 6 training images'),
    (['preview', '--n', '1'], '--n must be >= 2 (a mix needs two images), got 1'),
    (['preview', '--method', 'cutmix,ricap'], "--method: one method, got 'cutmix,ricap'"),
    (['preview', '--out', '/tmp'], '--out: /tmp is a folder'),
    (['preview', '--out', 'p_noext'], "--out must end in a picture format (."),
    (['frobnicate'], 'invalid choice'),
    (['demo', '--methods', 'mixup,cutmix,mixup'], '--methods: mixup given twice'),
    (['preview', '--out', 'p.pgf'], "--out must end in a picture format"),
    (['demo', '--quick', '--n-train', '64', '--bs', '128'], '--bs 128: larger than the 64 training images'),
    (['preview', '--seed', str(2 ** 64)], f'--seed must be below {2 ** 64}, got {2 ** 64}'),  # (torch's seeds are 64 bits)
    (['demo', '--seeds', f'0,{2 ** 64}'], f'--seeds must be distinct whole numbers from 0 to {2 ** 64 - 1}'),
])
def test_bad_arguments_one_line(args, msg):
    r = _run(*args)
    assert r.returncode == 2 and r.stderr.count('\n') == 1 and msg in r.stderr and 'Traceback' not in r.stderr

def test_version():
    from fastmix import __version__
    r = _run('--version')
    assert r.returncode == 0 and r.stdout.strip() == f'fastmix {__version__}'

def test_folder_without_images(tmp_path):
    (tmp_path/'notes.txt').write_text('no images here')
    r = _run('demo', '--data', str(tmp_path))
    assert r.returncode == 2 and 'no images found' in r.stderr and r.stderr.count('\n') == 1

def test_preview_shows_a_mixed_batch_when_a_draw_mixes_nothing():
    "A RICAP boundary on the image's edge takes each image whole from one source: the preview draws again"
    x, y = torch.randn(6, 3, 16, 16), torch.arange(6)
    whole = lambda mix: bool((mix.weights.max(1).values > 1 - 1e-6).all())
    seed = next(s for s in range(2000) if whole(RICAP(seed=s).mix_batch((x,), (y,))[0]))  # a first draw that mixes nothing
    xm, ym, mix, _ = mixed_preview_batch(RICAP(seed=seed), None, n=6, batch=(x, y))
    assert not whole(mix)

def _folder(root, classes, n=6, bad=None):
    "An image folder: `classes` (names, or paths like 'train/a') of `n` tiny PNGs each; `bad`: a file that is no image"
    for c in classes:
        (root/c).mkdir(parents=True)
        for i in range(n): Image.fromarray(np.full((8, 8, 3), 40 * i, np.uint8)).save(root/c/f'{i}.png')
    if bad: (root/bad).write_bytes(b'not a png at all')
    return root

@pytest.mark.parametrize('make,msg', [
    (lambda t: _folder(t/'d', ['a']), "--data: found 1 class (a)"),
    (lambda t: _folder(t/'d', ['.']), "--data: found 1 class (d)"),  # images straight in the folder
    (lambda t: _folder(t/'d', ['train/a', 'train/b', 'val/a', 'val/c']), "--data: class 'c' is in val/ but not in train/"),
    (lambda t: _folder(t/'d', ['a', 'b'], bad='a/x.png'), "cannot identify image file"),
])
def test_bad_data_folders_one_line(tmp_path, make, msg):
    "Data the demo can't train on, or that would train on a wrong task (one class), is one line and exit code 2, and writes nothing"
    r = _run('demo', '--quick', '--methods', 'mixup', '--seeds', '0', '--epochs', '1', '--bs', '4', '--data', str(make(tmp_path)), '--out', str(tmp_path/'out'))
    assert r.returncode == 2 and r.stderr.count('\n') == 1 and msg in r.stderr and 'Traceback' not in r.stderr, r.stderr[-2000:]
    if 'cannot' not in msg: assert not (tmp_path/'out').exists()  # (a file that is no image shows when it is read, in training)

def test_bad_outputs_and_divergence_one_line(tmp_path):
    (tmp_path/'f').write_text('a file')
    q = ['demo', '--quick', '--methods', 'mixup', '--seeds', '0', '--epochs', '1', '--n-train', '64']
    for args, msg in [(['--out', str(tmp_path/'f')], f"--out: {tmp_path/'f'} is a file"),
                      (['--lr', '1e30', '--out', str(tmp_path/'o')], 'baseline seed 0 diverged')]:
        r = _run(*q, *args)
        assert r.returncode == 2 and r.stderr.count('\n') == 1 and msg in r.stderr, r.stderr[-2000:]

def test_one_seed_gives_no_verdict_and_no_spread():
    from fastmix.demo import verdict, results_table
    rows = [dict(method=m, seed=0, error=e, nll=1., ece=.1, epochs=1, seconds=1.) for m, e in (('baseline', .2), ('mixup', .1))]
    assert verdict(rows, 'mixup').endswith('→ no verdict from one seed')
    assert '| mixup | 10.00 | 1.00 | 10.00 | 1.00 |' in results_table(rows)
    rows += [{**r, 'seed': 1} for r in rows]
    assert verdict(rows, 'mixup').endswith('→ lower test error') and '| mixup | 10.00 ± 0.00 |' in results_table(rows)

def test_images_still_standardised_are_shown_in_their_range():
    "A batch the DataLoaders don't decode: [0, 1] data as it is, 0–255 data scaled, standardised data by the batch's range (not clipped black)"
    from types import SimpleNamespace
    from fastmix.preview import _decode
    dls = SimpleNamespace(train=SimpleNamespace(decode=lambda b: b))
    x = torch.linspace(-1, 2, 48).view(1, 3, 4, 4)
    torch.testing.assert_close(_decode(dls, x), (x + 1) / 3)
    torch.testing.assert_close(_decode(dls, x.clamp(0, 1)), x.clamp(0, 1))
    torch.testing.assert_close(_decode(dls, (x + 1) * 80), ((x + 1) * 80).clamp(0, 255) / 255)

def _titles(fig): return [ax.get_title() for ax in fig.axes if ax.get_title()]

def test_titles_of_masks_values_and_bad_arguments(dls):
    x = dls.one_batch()[0][:4]
    m = torch.randint(0, 3, (4, *x.shape[-2:]))
    for mixer, want in ((MixUp(seed=0), "own mask · "), (CutMix(seed=0), 'mixed mask')):
        ts = _titles(show_mix(mixer, dls, n=4, batch=(x, m)))
        assert len(ts) == 4 and all(want in t for t in ts), ts
    ts = _titles(show_mix(MixUp(seed=0), dls, n=4, batch=(x, torch.tensor([2.5, -0.5, -1.5, 5.5]))))  # regression: the mixed value
    assert len(ts) == 4 and all(t.startswith('y = ') and -1.5 <= float(t[4:]) <= 5.5 for t in ts), ts
    for kw, msg in ((dict(n=0), '`n` must be an int >= 1, got 0'), (dict(ncols=0), '`ncols` must be an int >= 1, got 0'), (dict(n=2.5), 'got 2.5')):
        with pytest.raises(ValueError, match=re.escape(msg)): show_mix(MixUp(seed=0), dls, **kw)
    with pytest.raises(ValueError, match=r'show_mix shows image batches \(B, C, H, W\), got shape \(4, 2, 50\)'):
        show_mix(CutMix(seed=0), dls, n=4, batch=(torch.randn(4, 2, 50), torch.arange(4)))
    plt.close('all')

def test_default_photos_without_the_demo_extra(monkeypatch):
    "Without scikit-image, `fastmix preview`'s default photos are one line naming the extra, not a traceback from inside fastai's loader"
    from fastmix.demo import photo_dls
    from fastmix.cli import CLIError
    monkeypatch.setitem(sys.modules, 'skimage', None)  # what an environment without it imports
    monkeypatch.setitem(sys.modules, 'skimage.data', None)
    with pytest.raises(CLIError, match=r"the default photos need scikit-image: pip install 'fastmix\[demo\]'"): photo_dls(bs=2)

def test_titles_of_several_values_and_of_the_first_of_two_class_targets():
    "A regression target of several values is titled with its values, not as class shares; with two class targets the titles name the first one's classes"
    assert label_shares(None, (torch.tensor([[4.18, -4.18]]),)) == [[('y = 4.18, -4.18', None)]]
    assert label_shares(None, (torch.tensor([[0., .7, .3]]),), ['a', 'b', 'c']) == [[('b', pytest.approx(.7)), ('c', pytest.approx(.3))]]
    g = torch.Generator().manual_seed(0)
    xs = torch.rand(16, 3, 8, 8, generator=g)
    db = DataBlock(blocks=(TransformBlock, CategoryBlock, CategoryBlock), n_inp=1, get_x=lambda i: xs[i],
                   get_y=[lambda i: ('even', 'odd')[i % 2], lambda i: ('bird', 'cat', 'dog')[i % 3]], splitter=IndexSplitter([14, 15]))
    dls = db.dataloaders(list(range(16)), bs=8)
    ts = _titles(show_mix(MixUp(seed=0), dls, n=4))
    assert len(ts) == 4 and all(set(re.findall(r'[a-z]+', t)) <= {'even', 'odd'} and re.findall(r'[a-z]+', t) for t in ts), ts
    plt.close('all')

def test_a_wrong_mixer_is_named():
    "The class instead of a mixer, fastai's own `MixUp`, or the arguments swapped: an error that names `mixer`"
    from fastai.callback.mixup import MixUp as FastaiMixUp
    from types import SimpleNamespace
    dls = SimpleNamespace()
    for mixer, msg in ((CutMix, 'got the class CutMix: make one, `CutMix()`'), (FastaiMixUp(), 'got a fastai.callback.mixup.MixUp'),
                       (dls, 'got a types.SimpleNamespace')):
        with pytest.raises(TypeError, match=re.escape(f"`mixer` must be a fastmix mixer (a `MixHandler` such as `CutMix()`), {msg}")):
            show_mix(mixer, dls)

def test_the_error_chart_of_one_epoch_shows_its_points():
    "With `--epochs 1` each curve is one point: drawn with a marker, not as an invisible line"
    from fastmix.demo import plot_errors
    fig = plot_errors({'baseline': [[.2]], 'mixup': [[.15]]})
    assert [(l.get_marker(), len(l.get_xdata())) for l in fig.axes[0].lines] == [('o', 1), ('o', 1)]
    plt.close('all')

def test_long_titles_break_at_their_separators_and_stay_over_their_own_image():
    "Long class names on narrow panels (the docs' six-wide strips): each title breaks into lines at ` · ` and never runs into its neighbour's"
    from fastmix.preview import shares_title
    sh = [('immunohistochemistry', .45), ('rocket', .3), ('hubble_deep_field', .2), ('cat', .05)]
    assert shares_title(sh, width=40).split('\n') == ['0.45 immunohistochemistry · 0.30 rocket', '0.20 hubble_deep_field · 0.05 cat']
    assert shares_title(sh, width=30).split('\n') == ['0.45 immunohistochemistry', '0.30 rocket', '0.20 hubble_deep_field', '0.05 cat']
    assert shares_title(sh, width=200) == shares_title(sh) and shares_title(sh[:1], width=5) == '0.45 immunohistochemistry'
    g = torch.Generator().manual_seed(0)
    xs, names = torch.rand(12, 3, 16, 16, generator=g), ('immunohistochemistry', 'hubble_deep_field', 'chelsea_the_cat')
    db = DataBlock(blocks=(TransformBlock, CategoryBlock), get_x=lambda i: xs[i], get_y=lambda i: names[i % 3], splitter=IndexSplitter([10, 11]))
    dls = db.dataloaders(list(range(12)), bs=6)
    for mixer, ncols, size in ((RICAP(seed=8, mode='sample'), 6, (15, 3.2)), (CutMix(seed=1), 6, (15, 3.2)), (MixUp(seed=0), 3, None)):
        fig = show_mix(mixer, dls, n=6, ncols=ncols, figsize=size)
        fig.canvas.draw()
        r, axs = fig.canvas.get_renderer(), [ax for ax in fig.axes if ax.get_title()]
        assert len(axs) == 6
        for a, b in zip(axs, axs[1:]):
            if a.get_position().y0 != b.get_position().y0: continue  # another row
            assert a.title.get_window_extent(r).x1 <= b.title.get_window_extent(r).x0, (a.get_title(), b.get_title())
        for ax in axs:  # no wider than its image's column
            cell = fig.bbox.width / ax.get_gridspec().ncols
            assert ax.title.get_window_extent(r).width <= cell, ax.get_title()
        plt.close(fig)

def test_grey_images_share_one_scale_in_every_panel():
    "A flat dark image and a flat bright one render dark-on-light as their values say, each panel on the same [0, 1] scale (matplotlib alone would stretch each panel to its own range: both flat images white)"
    vals = torch.tensor([.1, .9, .1, .9])
    items = [(TensorImageBW((torch.full((1, 16, 16), float(v)) * 255).round().byte()), 'dark' if v < .5 else 'bright') for v in vals]
    dls = DataBlock(blocks=(TransformBlock(batch_tfms=IntToFloatTensor()), CategoryBlock), get_x=ItemGetter(0), get_y=ItemGetter(1),
                    splitter=lambda o: (L(range(4)), L(range(4)))).dataloaders(items, bs=4, num_workers=0, shuffle=False)
    for panels in (False, True):
        fig = show_mix(CutMix(seed=0), dls, n=4, ncols=4, panels=panels)
        ims = [ax.images[0] for ax in fig.axes if ax.images]
        assert len(ims) == 4 * (3 if panels else 1) and all(im.get_clim() == (0, 1) for im in ims)
        for ax in fig.axes[::3 if panels else 1]:
            im = ax.images[0]; a = np.asarray(im.get_array())
            rgba = im.to_rgba(a)[..., :3].mean(-1)  # what is drawn: 'Greys' draws 0 white and 1 black
            assert np.allclose(rgba, 1 - a, atol=.08), (ax.get_title(), a.min(), a.max(), rgba.min(), rgba.max())
        plt.close(fig)
