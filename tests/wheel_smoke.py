"""fastmix as users get it, run by `.ci/wheel_check.sh` with the Python of a fresh virtual environment that has only
the built wheel and its dependencies installed, from a folder outside the repository (so the repository's `fastmix/`
cannot be imported by accident).

    python wheel_smoke.py WHEEL SDIST

Checks that the wheel holds only the library (`fastmix/*.py`), its metadata and the LICENSE — no tests, notebooks,
benchmarks or tooling —, that the sdist holds the library, README, LICENSE and build files, that `fastmix` is imported from the installed wheel, and that one batch of `Learner.fit`
trains with every mixer of `fastmix.mixers.MIXERS`, in both modes, with the mixed loss in place during the batch and
the original loss back after the fit. Prints one line per check; exits non-zero at the first failure."""
import re, sys, zipfile, warnings
from pathlib import Path

def check_wheel_files(whl:Path):
    "Only `fastmix/*.py` and the `*.dist-info` metadata with the LICENSE"
    names = zipfile.ZipFile(whl).namelist()
    lib = [n for n in names if n.startswith('fastmix/')]
    meta = [n for n in names if re.match(r'fastmix-[^/]+\.dist-info/', n)]
    other = sorted(set(names) - set(lib) - set(meta))
    assert not other, f"the wheel holds files outside the package and its metadata: {other}"
    bad = [n for n in lib if not re.fullmatch(r'fastmix/[A-Za-z_][A-Za-z0-9_]*\.py', n)]
    assert not bad, f"the package holds more than its own modules: {bad}"
    dist = {n.split('/', 1)[1] for n in meta}
    assert {'METADATA', 'WHEEL', 'RECORD', 'licenses/LICENSE'} <= dist, f"metadata or LICENSE missing: {sorted(dist)}"
    text = zipfile.ZipFile(whl).read(next(n for n in meta if n.endswith('/licenses/LICENSE'))).decode()
    assert 'Apache License' in text and 'Version 2.0, January 2004' in text, 'LICENSE is not the Apache-2.0 text'
    md = zipfile.ZipFile(whl).read(next(n for n in meta if n.endswith('/METADATA'))).decode()
    assert re.search(r'^License-Expression: Apache-2.0$', md, re.M), 'METADATA does not say Apache-2.0'
    print(f"wheel: {len(lib)} modules {sorted(Path(n).stem for n in lib)}, metadata {sorted(dist)}")

def check_installed():
    "`fastmix` comes from this environment's site-packages (the wheel), not from a checkout"
    import fastmix, sysconfig
    where, site = Path(fastmix.__file__).resolve(), Path(sysconfig.get_paths()['purelib']).resolve()
    assert site in where.parents, f"fastmix imported from {where}, not from the installed wheel in {site}"
    print(f"import: fastmix {fastmix.__version__} from {where.parent}")

def fit_one_batch_each():
    "One training batch with every mixer of `MIXERS` in both modes: mixed loss during the batch, original loss after"
    import torch
    from fastai.basics import Learner, DataLoaders, CrossEntropyLossFlat, Callback, CancelFitException
    from fastai.data.load import DataLoader
    from fastmix.mixers import MIXERS
    from fastmix.demo import small_cnn
    g = torch.Generator().manual_seed(0)
    ds = list(zip(torch.randn(16, 3, 16, 16, generator=g), torch.randint(0, 3, (16,), generator=g)))
    class FirstBatchOnly(Callback):
        "After the mixer's loss: was this batch mixed, with a finite loss? Then stop the fit"
        order = 90
        def __init__(self, mixer): self.mixer,self.mixed = mixer,False
        def after_loss(self): self.mixed = self.mixer.mix is not None and bool(torch.isfinite(self.loss_grad))
        def after_batch(self): raise CancelFitException()
    for name, m in MIXERS.items():
        for mode in ('batch', 'sample'):
            dls = DataLoaders(DataLoader(ds, bs=8, shuffle=True, drop_last=True), DataLoader(ds[:8], bs=8))
            mixer, lf = m(mode=mode, seed=0), CrossEntropyLossFlat()
            spy = FirstBatchOnly(mixer)
            learn = Learner(dls, small_cnn(3, 3), loss_func=lf, cbs=[mixer, spy])
            with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-2)
            assert spy.mixed, f"{name}/{mode}: the batch was not mixed, or its loss was not finite"
            assert learn.loss_func is lf, f"{name}/{mode}: the original loss did not come back"
    print(f"fit: one batch with each of {list(MIXERS)} in both modes")

def check_sdist_files(sdist:Path):
    "The sdist: the package, README, LICENSE and the build files; no tests, notebooks, benchmarks or CI"
    import tarfile
    names = [n.split('/', 1)[1] for n in tarfile.open(sdist).getnames() if '/' in n]
    assert 'LICENSE' in names, 'the sdist has no LICENSE'
    top = {n.split('/')[0] for n in names}
    assert top <= {'fastmix', 'fastmix.egg-info', 'LICENSE', 'README.md', 'PKG-INFO', 'pyproject.toml', 'setup.cfg', 'MANIFEST.in'}, \
        f"the sdist holds more than the library: {sorted(top)}"
    print(f"sdist: {sorted(top)}")

if __name__ == '__main__':
    warnings.filterwarnings('ignore')
    whl, sdist = Path(sys.argv[1]), Path(sys.argv[2])
    check_wheel_files(whl)
    check_sdist_files(sdist)
    check_installed()
    fit_one_batch_each()
    print('wheel smoke test: OK')
