#!/usr/bin/env python
"""Does each mixer help? A small, honest training-quality study on Fashion-MNIST (GitHub issue 7).

A low-data regime (a few thousand training images drawn with a fixed seed, the full 10k test set), a small ResNet,
`fit_one_cycle` with the same budget and hyper-parameters for every method, several seeds. Reports test error, test
NLL and expected calibration error (ECE, 15 equal-width confidence bins) as mean ± std over seeds, paired differences
to the baseline with a 95% t-interval, wall and CPU time per run, a plot of test error against epochs, a reliability diagram,
and one extra sweep (baseline vs one mixer over the training-set size, or over the epoch budget).

The data is read offline from Debian's `dataset-fashion-mnist` package:

    sudo apt-get install -y dataset-fashion-mnist      # files in /usr/share/datasets/fashion-mnist/

(or point `FASHION_MNIST_DIR` at a folder holding the four `*-idx?-ubyte.gz` files).

    python benchmarks/quality.py                        # the full study: ~33 CPU-min, ~16 min on 2 idle cores
                                                        # (29 min measured on a busy 2-core machine)
    python benchmarks/quality.py --quick --out /tmp/q   # CI smoke test: everything on a tiny subset (~15-20 s)
"""
from __future__ import annotations
import argparse, gzip, json, math, os, platform, shlex, subprocess, sys, tempfile, time
from pathlib import Path
import numpy as np

DATA_DIR = Path(os.environ.get('FASHION_MNIST_DIR', '/usr/share/datasets/fashion-mnist'))
FILES = dict(x_train='train-images-idx3-ubyte.gz', y_train='train-labels-idx1-ubyte.gz',
             x_test='t10k-images-idx3-ubyte.gz', y_test='t10k-labels-idx1-ubyte.gz')
ROOT = Path(__file__).resolve().parent.parent
N_BINS = 15

# ---------------------------------------------------------------------------------------------------------- data
def check_data(data_dir:Path=DATA_DIR):
    "Exit non-zero, saying how to install the data, when a Fashion-MNIST file is missing"
    missing = [f for f in FILES.values() if not (data_dir/f).is_file()]
    if missing:
        print(f"Fashion-MNIST not found: {', '.join(missing)} missing from {data_dir}.\n"
              "Install Debian's package (~31 MB download):\n"
              "    sudo apt-get install -y dataset-fashion-mnist\n"
              "or set FASHION_MNIST_DIR to a folder holding the four *-idx?-ubyte.gz files.", file=sys.stderr)
        sys.exit(2)

def read_idx(path:Path)->np.ndarray:
    "Read a gzipped idx file (the MNIST format) into a numpy array"
    with gzip.open(path, 'rb') as f: data = f.read()
    if data[:2] != b'\x00\x00' or data[2] != 0x08: raise ValueError(f'{path}: not an idx file of unsigned bytes')
    ndim = data[3]
    dims = [int.from_bytes(data[4+4*i:8+4*i], 'big') for i in range(ndim)]
    arr = np.frombuffer(data, dtype=np.uint8, offset=4+4*ndim)
    if arr.size != math.prod(dims): raise ValueError(f'{path}: expected {dims}, got {arr.size} values')
    return arr.reshape(dims)

def load_fashion_mnist(data_dir:Path=DATA_DIR):
    check_data(data_dir)
    d = {k: read_idx(data_dir/f) for k, f in FILES.items()}
    assert d['x_train'].shape == (60000, 28, 28) and d['x_test'].shape == (10000, 28, 28), {k: v.shape for k, v in d.items()}
    return d

def subset(n:int, total:int, seed:int)->np.ndarray:
    "`n` indices of `range(total)` drawn without replacement with a fixed seed, nested: a smaller `n` is a prefix"
    return np.random.default_rng(seed).permutation(total)[:n]

# ---------------------------------------------------------------------------------------------------------- fastai
import torch
from torch import nn
import torch.nn.functional as F
from fastai.basics import *
from fastai.callback.all import *  # Learner.fit_one_cycle, no_bar
from fastai.layers import ConvLayer, ResBlock
if str(ROOT) not in sys.path: sys.path.insert(0, str(ROOT))  # run from a checkout without installing
import fastmix
from datetime import datetime as _datetime  # after fastai's star import, which rebinds `datetime`

class ArrayDL(DataLoader):
    "A fastai `DataLoader` over in-memory tensors that builds a batch by one index operation (no per-item collation)"
    def __init__(self, x, y, **kwargs):
        self.x, self.y = x, y
        super().__init__(dataset=range(len(x)), num_workers=0, **kwargs)
    def create_item(self, i): return i
    def create_batch(self, b):
        i = torch.as_tensor(np.asarray(b), dtype=torch.long)
        return self.x[i], self.y[i]

def make_dls(d, n_train:int, n_test:int|None, bs:int, split_seed:int):
    tr = subset(n_train, len(d['x_train']), split_seed)
    te = np.arange(len(d['x_test'])) if n_test is None else subset(n_test, len(d['x_test']), split_seed)
    xtr = torch.from_numpy(d['x_train'][tr]).float().div_(255).unsqueeze(1)
    mean, std = xtr.mean().item(), xtr.std().item()  # statistics of the training subset only
    norm = lambda x: (x - mean) / std
    xtr = norm(xtr)
    xte = norm(torch.from_numpy(d['x_test'][te]).float().div_(255).unsqueeze(1))
    ytr, yte = torch.from_numpy(d['y_train'][tr].astype(np.int64)), torch.from_numpy(d['y_test'][te].astype(np.int64))
    train = ArrayDL(xtr, ytr, bs=bs, shuffle=True, drop_last=True)
    valid = ArrayDL(xte, yte, bs=1024, shuffle=False)
    return DataLoaders(train, valid), (xtr, ytr)

def small_resnet(widths=(16, 16, 32, 64), n_out:int=10):
    "A 3×3 stem conv at 28×28, three residual blocks that halve the size (28 → 14 → 7 → 4), average pooling, a linear head"
    c0, c1, c2, c3 = widths
    return nn.Sequential(ConvLayer(1, c0, ks=3), ResBlock(1, c0, c1, stride=2), ResBlock(1, c1, c2, stride=2),
                         ResBlock(1, c2, c3, stride=2), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(c3, n_out))

class TestRecorder(Callback):
    "After every validation pass (here: the test set) keep the error and NLL; keep the last pass's probabilities"
    order = 90
    def __init__(self, every_epoch:bool=True): self.every_epoch = every_epoch
    def before_fit(self): self.err, self.nll, self.epoch_s, self.ps, self.t0 = [], [], [], [], time.perf_counter()
    def before_validate(self):
        self.ps, self.ys = [], []
        if not self.every_epoch and self.epoch < self.n_epoch - 1: raise CancelValidException()  # test once, at the end
    def after_batch(self):
        if self.training: return
        self.ps.append(F.softmax(self.pred.float(), -1).detach()); self.ys.append(self.yb[0].detach())
    def after_validate(self):
        if not self.ps: return
        self.probs, self.targs = torch.cat(self.ps), torch.cat(self.ys)
        self.err.append(error(self.probs, self.targs)); self.nll.append(nll(self.probs, self.targs))
        self.epoch_s.append(time.perf_counter() - self.t0)

def error(p, y)->float: return (p.argmax(-1) != y).float().mean().item()
def nll(p, y)->float: return -torch.log(p.gather(1, y[:, None]).clamp_min(1e-12)).mean().item()

def calibration_bins(p, y, n_bins:int=N_BINS):
    "Per equal-width confidence bin: count, mean confidence, accuracy (of the top-1 prediction)"
    conf, pred = p.max(-1)
    correct = (pred == y).float()
    b = (conf * n_bins).long().clamp_(max=n_bins - 1)  # bin k holds confidences in [k/n, (k+1)/n)
    cnt = torch.bincount(b, minlength=n_bins).float()
    s_conf = torch.bincount(b, weights=conf, minlength=n_bins)
    s_acc = torch.bincount(b, weights=correct, minlength=n_bins)
    return cnt.numpy(), s_conf.numpy(), s_acc.numpy()

def ece(p, y, n_bins:int=N_BINS)->float:
    "Expected calibration error: Σ_bins |B|/n · |accuracy(B) − confidence(B)|, over `n_bins` equal-width bins"
    cnt, s_conf, s_acc = calibration_bins(p, y, n_bins)
    return float(np.abs(s_acc - s_conf).sum() / cnt.sum())

# ---------------------------------------------------------------------------------------------------------- runs
def mixers()->dict:
    "label → `Mixer` of every fastmix mixer (`fastmix.mixers.MIXERS`); the label is the class name, as in the tables"
    from fastmix.mixers import MIXERS
    return {m.cls.__name__: m for m in MIXERS.values()}

def canonical(name:str)->str:
    "The study's label of a method named by its label or its `MIXERS` name, in any case ('cutmix' → 'CutMix')"
    from fastmix.mixers import MIXERS
    names = {'baseline': 'baseline'} | {k.lower(): k for k in mixers()} | {k.lower(): m.cls.__name__ for k, m in MIXERS.items()}
    if name.lower() not in names: raise SystemExit(f"unknown method {name!r}: choose from {', '.join(['baseline', *mixers()])}")
    return names[name.lower()]

def methods(sel=None):
    "label → factory(seed) of the callback (None for the baseline): the baseline and every mixer of `MIXERS`"
    ms = {'baseline': lambda s: None} | {k: (lambda s, m=m: m(seed=s)) for k, m in mixers().items()}
    if sel: ms = {k: v for k, v in ms.items() if k in {canonical(n) for n in sel}}
    return ms

def method_args(name:str)->str:
    "The arguments the study builds mixer `name` with (all but the seed), as `k=v, ...`"
    import inspect
    m = mixers()[name]
    ps = inspect.signature(m.cls.__init__).parameters.values()
    kw = {p.name: p.default for p in ps if p.default is not inspect.Parameter.empty} | m.kwargs
    return ', '.join(f'{k}={v!r}' for k, v in kw.items())

def run_one(d, method:str, seed:int, n_train:int, epochs:int, a, every_epoch:bool=True):
    "Train one model and return its test numbers; `every_epoch`: test after every epoch (else only after the last)"
    set_seed(seed, reproducible=True)  # same seed: same init and data order for every method (the split is fixed)
    dls, (xtr, ytr) = make_dls(d, n_train, a.n_test, a.bs, a.split_seed)
    rec = TestRecorder(every_epoch)
    mixer = methods()[method](seed)
    cbs = [rec] + ([mixer] if mixer is not None else [])
    learn = Learner(dls, small_resnet(), loss_func=CrossEntropyLossFlat(), cbs=cbs)
    t0, c0 = time.perf_counter(), time.process_time()
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(epochs, a.lr)
    fit_s, cpu_s = time.perf_counter() - t0, time.process_time() - c0
    learn.model.eval()
    with torch.no_grad():  # clean error on the training images (no mixing): how far each method fits them
        tr_err = sum((learn.model(xtr[i:i+1024]).argmax(-1) != ytr[i:i+1024]).sum().item()
                     for i in range(0, len(xtr), 1024)) / len(xtr)
    p, y = rec.probs, rec.targs
    cnt, s_conf, s_acc = calibration_bins(p, y)
    r = dict(method=method, seed=seed, n_train=n_train, epochs=epochs, test_err=error(p, y), test_nll=nll(p, y),
             ece=ece(p, y), train_err=tr_err, wall_s=fit_s, cpu_s=cpu_s, epoch_err=rec.err, epoch_nll=rec.nll,
             epoch_s=rec.epoch_s, bins=dict(count=cnt.tolist(), sum_conf=s_conf.tolist(), sum_acc=s_acc.tolist()))
    print(f"  {method:9s} seed {seed}  n_train {n_train:5d}  epochs {epochs:3d}  test err {100*r['test_err']:5.2f}%  "
          f"nll {r['test_nll']:.3f}  ece {100*r['ece']:5.2f}%  train err {100*tr_err:5.2f}%  {fit_s:6.1f}s "
          f"({cpu_s:.0f}s CPU)", flush=True)
    return r

_D = None
def _init_worker(threads:int):
    global _D
    torch.set_num_threads(threads)
    _D = load_fashion_mnist()
def _work(job): return run_one(_D, *job)

def run_all(jobs:list, a, log:Path|None=None)->list:
    "Run `(method, seed, n_train, epochs, a, every_epoch)` jobs, `a.jobs` at a time (each with `a.threads` threads)"
    def keep(r):  # an interrupted study keeps what it finished
        if log is not None:
            with open(log, 'a') as f: f.write(json.dumps(r) + '\n')
        return r
    if a.jobs <= 1:
        _init_worker(a.threads)
        return [keep(_work(j)) for j in jobs]
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor
    with ProcessPoolExecutor(a.jobs, mp_context=mp.get_context('spawn'), initializer=_init_worker,
                             initargs=(a.threads,)) as ex:
        futs = [ex.submit(_work, j) for j in jobs]
        for f in futs: f.add_done_callback(lambda f: f.exception() is None and keep(f.result()))
        return [f.result() for f in futs]

# ---------------------------------------------------------------------------------------------------------- stats
def t975(df:int)->float:
    try:
        from scipy.stats import t
        return float(t.ppf(.975, df))
    except ImportError: return {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571}.get(df, 1.96)

def mstd(v):
    v = np.asarray(v, float)
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else float('nan')

def paired(runs, method, key, ref='baseline'):
    "Mean of (method − ref) over seeds present in both, and the half-width of its 95% t-interval"
    a = {r['seed']: r[key] for r in runs if r['method'] == method}
    b = {r['seed']: r[key] for r in runs if r['method'] == ref}
    s = sorted(set(a) & set(b))
    dif = np.array([a[i] - b[i] for i in s])
    if len(dif) < 2: return (float(dif.mean()) if len(dif) else float('nan')), float('nan')
    return float(dif.mean()), float(t975(len(dif) - 1) * dif.std(ddof=1) / math.sqrt(len(dif)))

def summarise(runs, names):
    out = {}
    for m in names:
        rs = [r for r in runs if r['method'] == m]
        if not rs: continue
        s = {k: mstd([r[k] for r in rs]) for k in ('test_err', 'test_nll', 'ece', 'train_err', 'wall_s', 'cpu_s')}
        s['n_seeds'] = len(rs)
        if m != 'baseline':
            for k in ('test_err', 'test_nll', 'ece'): s[f'd_{k}'] = paired(runs, m, k)
        out[m] = s
    return out

def fmt_pm(ms, scale=1., nd=2):
    return f"{ms[0]*scale:.{nd}f}" + ('' if math.isnan(ms[1]) else f" ± {ms[1]*scale:.{nd}f}")
def fmt_d(d, scale=1., nd=2):
    if d is None: return '—'
    m, h = d
    if math.isnan(h): return f"{m*scale:+.{nd}f}"
    sig = '' if math.isnan(h) else (' **↓**' if m + h < 0 else ' **↑**' if m - h > 0 else '')
    return f"{m*scale:+.{nd}f} ± {h*scale:.{nd}f}{sig}"

def main_table(summ):
    rows = ['| method | test error (%) | Δ error vs baseline (pp) | test NLL | Δ NLL | ECE (%) | Δ ECE (pp) '
            '| clean train error (%) | wall time / run (s) | CPU time / run (s) |',
            '|---|---|---|---|---|---|---|---|---|---|']
    for m, s in summ.items():
        rows.append(f"| {m} | {fmt_pm(s['test_err'], 100)} | {fmt_d(s.get('d_test_err'), 100)} | "
                    f"{fmt_pm(s['test_nll'], 1, 3)} | {fmt_d(s.get('d_test_nll'), 1, 3)} | {fmt_pm(s['ece'], 100)} | "
                    f"{fmt_d(s.get('d_ece'), 100)} | {fmt_pm(s['train_err'], 100)} | {fmt_pm(s['wall_s'], 1, 0)} | "
                    f"{fmt_pm(s['cpu_s'], 1, 0)} |")
    return '\n'.join(rows)

SWEEP_KEY = {'n-train': ('n_train', 'training images'), 'epochs': ('epochs', 'epochs')}

def sweep_table(sweep, mixer, kind):
    key, label = SWEEP_KEY[kind]
    rows = [f'| {label} | baseline test error (%) | {mixer} test error (%) | Δ error (pp) '
            f'| baseline NLL | {mixer} NLL | Δ NLL | baseline ECE (%) | {mixer} ECE (%) | clean train error (%), baseline / {mixer} '
            '| CPU time / run (s) |', '|---|---|---|---|---|---|---|---|---|---|---|']
    for v in sorted({r[key] for r in sweep}):
        s = summarise([r for r in sweep if r[key] == v], ['baseline', mixer])
        if len(s) < 2: continue
        b, c = s['baseline'], s[mixer]
        rows.append(f"| {v} | {fmt_pm(b['test_err'], 100)} | {fmt_pm(c['test_err'], 100)} | "
                    f"{fmt_d(c['d_test_err'], 100)} | {fmt_pm(b['test_nll'], 1, 3)} | {fmt_pm(c['test_nll'], 1, 3)} | "
                    f"{fmt_d(c['d_test_nll'], 1, 3)} | {fmt_pm(b['ece'], 100)} | {fmt_pm(c['ece'], 100)} | "
                    f"{100*b['train_err'][0]:.2f} / {100*c['train_err'][0]:.2f} | {(b['cpu_s'][0] + c['cpu_s'][0]) / 2:.0f} |")
    return '\n'.join(rows)

# ---------------------------------------------------------------------------------------------------------- plots
def plot_error(runs, names, path, title):
    import matplotlib; matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for m in names:
        e = np.array([r['epoch_err'] for r in runs if r['method'] == m]) * 100
        if not e.size: continue
        x = np.arange(1, e.shape[1] + 1)
        mu, sd = e.mean(0), e.std(0, ddof=1) if len(e) > 1 else np.zeros(e.shape[1])
        ax.plot(x, mu, label=f'{m} (final {mu[-1]:.2f}%)', lw=1.8 if m == 'baseline' else 1.3,
                color='k' if m == 'baseline' else None)
        ax.fill_between(x, mu - sd, mu + sd, alpha=.15, color='k' if m == 'baseline' else ax.lines[-1].get_color())
    ax.set(xlabel='epoch', ylabel='test error (%)', title=title)
    lo = min(np.array([r['epoch_err'] for r in runs]).min() * 100, 100)
    ax.set_ylim(lo - 1, lo + 12); ax.grid(alpha=.3); ax.legend()
    fig.tight_layout(); fig.savefig(path, dpi=110); plt.close(fig)

def pooled_bins(runs, m):
    rs = [r for r in runs if r['method'] == m]
    return [np.sum([r['bins'][k] for r in rs], 0) for k in ('count', 'sum_conf', 'sum_acc')]

def plot_reliability(runs, names, path):
    import matplotlib; matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    fig, axs = plt.subplots(1, len(names), figsize=(3.1 * len(names), 3.4), sharey=True, squeeze=False)
    edges = np.linspace(0, 1, N_BINS + 1); w = 1 / N_BINS
    for ax, m in zip(axs[0], names):
        cnt, s_conf, s_acc = pooled_bins(runs, m)
        ok = cnt > 0
        acc, conf = np.where(ok, s_acc / np.maximum(cnt, 1), 0), np.where(ok, s_conf / np.maximum(cnt, 1), 0)
        e = np.abs(s_acc - s_conf).sum() / cnt.sum()
        ax.bar(edges[:-1], acc, width=w, align='edge', color='lightsteelblue', edgecolor='k', lw=.5, label='accuracy')
        ax.bar(edges[:-1], np.abs(conf - acc), bottom=np.minimum(acc, conf), width=w, align='edge', facecolor='none',
               edgecolor='tab:red', hatch='////', lw=.8, label='gap to mean confidence')
        ax.plot([0, 1], [0, 1], 'k--', lw=1)
        ax.set(title=f'{m}\nECE {100*e:.2f}% (pooled)', xlabel='confidence', xlim=(0, 1), ylim=(0, 1))
        ax.step(edges, np.r_[cnt / cnt.sum(), 0], where='post', color='dimgray', lw=1.2, label='share of predictions')
    axs[0][0].set_ylabel('accuracy'); axs[0][0].legend(loc='upper left', fontsize=7)
    fig.suptitle('Reliability on the test set, predictions of all seeds pooled (15 equal-width confidence bins)', fontsize=9)
    fig.tight_layout(); fig.savefig(path, dpi=110); plt.close(fig)

# ---------------------------------------------------------------------------------------------------------- reuse
SAME = ('n_train', 'n_test', 'split_seed', 'epochs', 'bs', 'lr', 'threads')

def run_key(r)->tuple: return r[0:4] if isinstance(r, tuple) else (r['method'], r['seed'], r['n_train'], r['epochs'])

def run_reusing(jobs:list, a, log:Path)->tuple:
    "Run the jobs `a.reuse`'s runs lack; retrain its first baseline run as a check. Return all results, in job order, and what was reused"
    old = json.loads(Path(a.reuse).read_text())
    mine = dict(n_train=a.n_train, n_test=a.n_test or 10000, split_seed=a.split_seed, epochs=a.epochs, bs=a.bs,
                lr=a.lr, threads=a.threads)
    bad = {k: (old['config'].get(k), mine[k]) for k in SAME if old['config'].get(k) != mine[k]}
    if bad: sys.exit(f"--reuse {a.reuse}: made with other settings (saved, now): {bad}")
    have = {run_key(r): r for r in old['runs'] + old.get('sweep_runs', [])}
    todo = [j for j in jobs if run_key(j) not in have]
    check = next((j for j in jobs if run_key(j) in have and j[0] == 'baseline'), None)
    print(f"reusing {len(jobs) - len(todo)} runs of {a.reuse} ({old['date']}, commit {old['machine']['git_commit']}); "
          f"training {len(todo)}" + (f", and {check[0]} seed {check[1]} again as a check" if check else ''), flush=True)
    done = run_all(([check] if check else []) + todo, a, log)
    new = {run_key(r): r for r in done[1 if check else 0:]}
    info = dict(source=str(a.reuse), date=old['date'], git_commit=old['machine']['git_commit'],
                reused=sorted({j[0] for j in jobs if run_key(j) in have}), trained=sorted({j[0] for j in todo}))
    if check:
        o, c = have[run_key(check)], done[0]
        info['check'] = dict(method=check[0], seed=check[1], **{f'{k}_{w}': r[k] for k in ('test_err', 'test_nll', 'cpu_s')
                             for w, r in (('saved', o), ('again', c))}, identical=o['epoch_err'] == c['epoch_err'])
    return [new.get(run_key(j)) or have[run_key(j)] for j in jobs], info

# ---------------------------------------------------------------------------------------------------------- main
def machine():
    cpu = platform.processor() or ''
    try:
        cpu = next(l.split(':', 1)[1].strip() for l in open('/proc/cpuinfo') if l.startswith('model name'))
    except Exception: pass
    try: commit = subprocess.run(['git', 'rev-parse', '--short', 'HEAD'], cwd=ROOT, capture_output=True,
                                 text=True).stdout.strip()
    except Exception: commit = ''
    import fastai
    return dict(cpu=cpu, cpu_count=os.cpu_count(), torch_threads=torch.get_num_threads(), gpu='none (CPU only)',
                python=platform.python_version(), os=platform.platform(), torch=torch.__version__,
                fastai=fastai.__version__, numpy=np.__version__, fastmix=getattr(fastmix, '__version__', '?'),
                git_commit=commit)

def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--quick', action='store_true', help='CI smoke test: tiny subset, 1 epoch, 1 seed (checks the '
                   'script runs, not the numbers); writes to --out or a temporary folder')
    p.add_argument('--seeds', type=int, default=3, help='seeds per method (default 3)')
    p.add_argument('--epochs', type=int, default=30, help='epochs per run (default 30)')
    p.add_argument('--n-train', type=int, default=4000, help='training images, drawn from the 60k with --split-seed')
    p.add_argument('--n-test', type=int, default=None, help='test images (default: all 10,000)')
    p.add_argument('--sweep', choices=['n-train', 'epochs', 'none'], default='epochs',
                   help='the extra sweep: baseline vs --sweep-method over training-set sizes or epoch budgets')
    p.add_argument('--sweep-values', default=None, help="comma-separated values besides the main one (default "
                   "'15,60' for epochs, '1000,2000,8000' for n-train)")
    p.add_argument('--sweep-method', default='CutMix', help='the mixer of the extra sweep (default CutMix)')
    p.add_argument('--methods', default=None, help='comma-separated subset of methods (default: all)')
    p.add_argument('--bs', type=int, default=128)
    p.add_argument('--lr', type=float, default=3e-3)
    p.add_argument('--split-seed', type=int, default=0, help='seed of the training subset draw (fixed across runs)')
    p.add_argument('--jobs', type=int, default=min(2, os.cpu_count() or 1),
                   help='runs at a time, in separate processes (default: 2, or 1 on a 1-core machine)')
    p.add_argument('--threads', type=int, default=1, help='torch threads per run (default 1: small convolutions '
                   'scale badly across threads, and very badly on a busy machine)')
    p.add_argument('--out', default=None, help='output folder (default benchmarks/results; --quick: a temp folder)')
    p.add_argument('--reuse', default=None, metavar='JSON', help='reuse the runs of a saved quality.json made with '
                   'the same settings: train only the runs it lacks, and train its first baseline run again to check '
                   'that runs repeat exactly (the check is reported)')
    p.add_argument('--report', default=None, metavar='JSON', help="don't train: rebuild quality.md and the plots "
                   'in --out from a saved quality.json')
    p.add_argument('--add-to', default=None, metavar='JSON', help='train only --methods (not the baseline) with the '
                   "saved study's protocol and seeds, add their runs to it (replacing runs of the same method) and "
                   'rebuild the report in --out; pairing holds because a seed fixes the initialisation and batches')
    a = p.parse_args(argv)
    if a.quick:
        a.seeds, a.epochs, a.n_train, a.n_test = 1, 1, 512, 1000
        a.sweep_values = '256' if a.sweep == 'n-train' else '2'
        if a.out is None: a.out = tempfile.mkdtemp(prefix='fastmix_quality_')
    if a.out is None: a.out = str(ROOT/'benchmarks'/'results')
    if a.sweep_values is None: a.sweep_values = {'n-train': '1000,2000,8000', 'epochs': '15,60'}.get(a.sweep, '')
    a.sweep_values = [int(v) for v in str(a.sweep_values).split(',') if v.strip()]
    a.methods = a.methods.split(',') if a.methods else None
    return a

def main(argv=None):
    a = parse_args(argv)
    if a.report: return report(json.loads(Path(a.report).read_text()), Path(a.out))
    if a.add_to: return add_to(json.loads(Path(a.add_to).read_text()), a)
    check_data()
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    cmd = 'python ' + ' '.join(shlex.quote(s) for s in ([os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:]
                                                         if argv is None else ['benchmarks/quality.py'] + list(argv)))
    names = list(methods(a.methods))
    left = [k for k in mixers() if k not in names]
    note = 'Mixers: `fastmix.mixers.MIXERS`' + (f" (not selected with --methods: {', '.join(left)})." if left else ', all of it.')
    print(f"fastmix quality study -> {out}\n{note}\nmethods {names}, {a.seeds} seeds, {a.epochs} epochs, "
          f"{a.n_train} training images, {a.n_test or 10000} test images; {a.jobs} runs at a time, "
          f"{a.threads} thread(s) each", flush=True)
    sm, kind = canonical(a.sweep_method), a.sweep
    do_sweep = kind != 'none' and bool(a.sweep_values) and sm in names and 'baseline' in names
    # seed-major order; the sweep's jobs go last (the costliest first), so the main runs finish first
    jobs = [(m, seed, a.n_train, a.epochs, a, True) for seed in range(a.seeds) for m in names]
    if do_sweep:
        print(f"extra sweep: baseline vs {sm} over {SWEEP_KEY[kind][1]} {a.sweep_values} (+ the main runs)",
              flush=True)
        jobs += [(m, seed, v if kind == 'n-train' else a.n_train, v if kind == 'epochs' else a.epochs, a, False)
                 for v in sorted(a.sweep_values, reverse=True) for seed in range(a.seeds) for m in ('baseline', sm)]
    log = out/'quality_partial.jsonl'
    log.unlink(missing_ok=True)
    t0 = time.perf_counter()
    res_all, reuse = run_reusing(jobs, a, log) if a.reuse else (run_all(jobs, a, log), None)
    t_total = time.perf_counter() - t0
    nm = len(names) * a.seeds
    mach = machine()
    n_par = sum(p.numel() for p in small_resnet().parameters())
    cfg = dict(dataset='Fashion-MNIST (Debian package dataset-fashion-mnist)', n_train=a.n_train,
               n_test=a.n_test or 10000, split_seed=a.split_seed, epochs=a.epochs, seeds=a.seeds, bs=a.bs, lr=a.lr,
               schedule='fit_one_cycle, Adam, weight decay 0.01 (fastai defaults)',
               model=f'small ResNet (3×3 stem + 3 fastai ResBlocks, widths 16/16/32/64, {n_par:,} parameters)',
               methods=names, method_args={m: method_args(m) for m in names if m != 'baseline'},
               sweep=kind if do_sweep else 'none', sweep_method=sm, sweep_values=a.sweep_values, ece_bins=N_BINS,
               jobs=a.jobs, threads=a.threads, quick=a.quick)
    res = dict(date=_datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z'), command=cmd, machine=mach,
               config=cfg, note=note, wall_total_s=t_total, cpu_total_s=sum(r['cpu_s'] for r in res_all),
               runs=res_all[:nm], sweep_runs=res_all[nm:], **({'reuse': reuse} if reuse else {}))
    report(res, out)
    log.unlink(missing_ok=True)
    return res

PROTOCOL = ('n_train', 'n_test', 'split_seed', 'epochs', 'seeds', 'bs', 'lr')

def add_to(res:dict, a):
    "Train `a.methods` with the protocol of the saved study `res` and add their runs to it, then report"
    cfg = res['config']
    for k in PROTOCOL: setattr(a, k, cfg[k])  # the saved study's protocol, whatever the command line says
    a.n_test = None if cfg['n_test'] == 10000 else cfg['n_test']
    new = [m for m in map(canonical, a.methods or []) if m != 'baseline']
    if not new: sys.exit(f"--add-to needs --methods among {', '.join(mixers())}")
    check_data()
    print(f"adding {new} to the study of {res['date']} ({cfg['seeds']} seeds, {cfg['epochs']} epochs, "
          f"{cfg['n_train']} training images); {a.jobs} runs at a time", flush=True)
    out = Path(a.out); out.mkdir(parents=True, exist_ok=True)
    log = out/'quality_partial.jsonl'
    log.unlink(missing_ok=True)
    t0 = time.perf_counter()
    runs = run_all([(m, seed, cfg['n_train'], cfg['epochs'], a, True) for seed in range(cfg['seeds']) for m in new], a, log)
    res['runs'] = [r for r in res['runs'] if r['method'] not in new] + runs
    cfg['methods'] = [m for m in cfg['methods'] if m not in new] + new
    cfg['method_args'].update({m: method_args(m) for m in new})
    left = [k for k in mixers() if k not in cfg['methods']]
    res['note'] = 'Mixers: `fastmix.mixers.MIXERS`' + (f" (not in this study: {', '.join(left)})." if left else ', all of it.')
    res['wall_total_s'] += time.perf_counter() - t0
    res['cpu_total_s'] = sum(r['cpu_s'] for r in res['runs'] + res['sweep_runs'])
    res.setdefault('added', []).append(dict(methods=new, date=_datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z'),
        command='python benchmarks/quality.py ' + ' '.join(shlex.quote(s) for s in sys.argv[1:]), machine=machine(),
        jobs=a.jobs, threads=a.threads))
    report(res, out)
    log.unlink(missing_ok=True)
    return res

def report(res:dict, out:Path):
    "Write quality.json (with the summaries), quality.md and the two plots from the runs in `res`"
    out.mkdir(parents=True, exist_ok=True)
    cfg, mach, runs = res['config'], res['machine'], res['runs']
    names, sm, kind = cfg['methods'], cfg['sweep_method'], cfg['sweep']
    res['summary'] = summ = summarise(runs, names)
    sweep = [r for r in runs if r['method'] in ('baseline', sm)] + res['sweep_runs'] if kind != 'none' else []
    res['sweep_summary'] = {v: summarise([r for r in sweep if r[SWEEP_KEY[kind][0]] == v], ['baseline', sm])
                            for v in sorted({r[SWEEP_KEY[kind][0]] for r in sweep})} if sweep else {}
    (out/'quality.json').write_text(json.dumps(res, indent=1))
    n, e, S = cfg['n_train'], cfg['epochs'], cfg['seeds']
    title = f"Fashion-MNIST, {n} training images, {e} epochs ({'mean ± std over %d seeds' % S if S > 1 else '1 seed'})"
    plot_error(runs, names, out/'quality_error.png', title)
    plot_reliability(runs, names, out/'quality_reliability.png')
    t_total, cpu_total = res['wall_total_s'], res['cpu_total_s']
    md = [f"# fastmix training-quality study{' (QUICK smoke run: the numbers mean nothing)' if cfg['quick'] else ''}",
          '', f"Fashion-MNIST, {n} training images (a fixed random draw, seed {cfg['split_seed']}) and "
          f"{cfg['n_test']} test images; {cfg['model']}; `fit_one_cycle({e}, {cfg['lr']})`, batch size "
          f"{cfg['bs']}, no other augmentation; {S} seed{'s' if S > 1 else ''} per method (the seed sets the "
          "initialisation, the data order and the mixer's draws; at the same seed every method starts from the same "
          "weights and sees the same batches). Mean ± sample std over seeds. Δ columns: paired difference to the "
          "baseline at the same seed, mean ± half-width of its 95% t-interval; **↓**/**↑** mark intervals that "
          "exclude 0. ECE: 15 equal-width confidence bins. Clean train error: the trained model on its own (unmixed) "
          "training images. Times: one run's `fit` (with a test pass after every epoch) on 1 thread.", '',
          res['note'] + " Mixer settings (fastmix defaults; every mixer with `p=1.`, `mode='batch'`): " +
          '; '.join(f"`{m}({cfg['method_args'][m]})`" for m in names if m != 'baseline') + '.', '',
          main_table(summ), '']
    if sweep:
        what = {'n-train': f'the training-set size ({e} epochs)', 'epochs': f'the epoch budget ({n} training images)'}
        md += [f"## Extra sweep: baseline vs {sm} over {what[kind]}", '',
               f"Same model and recipe, {S} seed{'s' if S > 1 else ''} per cell; the row at "
               f"{n if kind == 'n-train' else e} reuses the main runs above, the others test only after the last "
               "epoch. Δ: paired difference, 95% t-interval.", '', sweep_table(sweep, sm, kind), '']
    md += ['## Setup', '', f"- command: `{res['command']}`", f"- date: {res['date']}",
           f"- machine: {mach['cpu']}, {mach['cpu_count']} CPU cores, no GPU; {mach['os']}; {cfg['jobs']} run(s) at "
           f"a time in separate processes, {cfg['threads']} torch thread(s) each",
           f"- software: python {mach['python']}, torch {mach['torch']}, fastai {mach['fastai']}, "
           f"numpy {mach['numpy']}, fastmix {mach['fastmix']} (commit {mach['git_commit'] or '?'})",
           f"- time of the whole study: {t_total/60:.1f} min wall, {cpu_total/60:.1f} min CPU in the runs "
           f"(≈ {cpu_total/60/max(cfg['jobs'], 1):.1f} min wall on {cfg['jobs']} idle core(s)); the machine was "
           "shared with other jobs, so wall times are indicative",
           *[f"- {', '.join(d['methods'])} added on {d['date']} by `{d['command']}` (same protocol and seeds, commit "
             f"{d['machine']['git_commit'] or '?'}, {d['jobs']} run(s) at a time): their runs are paired with the "
             "baseline runs above" + (f"; {d['baseline_check']}" if d.get('baseline_check') else '') for d in res.get('added', [])],
           '- plots: `quality_error.png` (test error per epoch), `quality_reliability.png` (reliability diagram)']
    if res.get('reuse'):
        u = res['reuse']
        md += [f"- runs of {', '.join(u['reused'])} reused from `{u['source']}` ({u['date']}, commit {u['git_commit']}); "
               f"trained now: {', '.join(u['trained']) or 'none'}; the machine, software and wall time above are this "
               "invocation's, the CPU time counts every run"]
        if 'check' in u:
            c = u['check']
            md += [f"- reuse check: {c['method']} seed {c['seed']} trained again: test error {100*c['test_err_again']:.2f}% "
                   f"(saved {100*c['test_err_saved']:.2f}%), NLL {c['test_nll_again']:.4f} (saved {c['test_nll_saved']:.4f}): "
                   + ('identical at every epoch' if c['identical'] else '**not identical**: the reused runs are not exactly comparable')
                   + (f"; its CPU time {c['cpu_s_again']:.0f} s against {c['cpu_s_saved']:.0f} s saved: time columns compare only "
                      "runs of the same invocation" if 'cpu_s_again' in c else '')]
    md += ['']
    (out/'quality.md').write_text('\n'.join(md))
    print('\n'.join(md))
    print(f"wrote {out/'quality.json'}, {out/'quality.md'}, {out/'quality_error.png'}, {out/'quality_reliability.png'}")
    return res

if __name__ == '__main__': main()
