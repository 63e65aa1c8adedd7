"""How `bench_mix.py` times its contenders: interleaved repetitions, medians of per-call times, thread counts, peak
memory, and the two malloc variants (each in one measurement process).

- `run_interleaved`: round-robin, every repetition calls every contender once in a new random order, so drift and
  noise from other processes hit every contender alike; warm-up calls first; the input of each call is made and the
  output freed outside the timed region; the garbage collector is off while timing.
- `peak_extra_bytes`: the highest running total of bytes torch allocates minus frees during one call (`torch.profiler`
  on CPU, `torch.cuda.max_memory_allocated` on CUDA); tensors only.
- `measure`: the mix, loss and e2e parts at every shape and thread count, in this process; it returns raw rows
  (`times_ns` per contender), which `report.py` turns into statistics and tables.
- `measure_event`: the host time of `before_batch` through real fits (the event path, issue 13), per batch, between
  two bracket callbacks, fits of every contender interleaved; timm's batch `Mixup` called directly alongside.
- `baseline_package`: another fastmix revision, importable as `fastmix_base`, for before/after rows (`--baseline`).
- `run_variants`: the whole measurement with glibc's malloc as is (`default`, in this process) and with its mmap
  threshold off (`nommap`, in a worker subprocess running `bench_mix.py --worker`).
"""
from __future__ import annotations
import contextlib, gc, json, math, os, random, subprocess, sys, tempfile, time, warnings
from pathlib import Path
import numpy as np, torch
from contenders import C, N_CLS, make_learner, mix_contenders, loss_contenders, e2e_contenders
from contenders import event_contenders, direct_contenders, typed_contenders, bracket_callbacks

NOMMAP_ENV = {'MALLOC_MMAP_MAX_': '0', 'MALLOC_TRIM_THRESHOLD_': '4294967295'}
VARIANTS = ('default', 'nommap')
TARGET_SHAPE = (64, 3, 224, 224)
QUICK_SHAPE = (8, 3, 32, 32)
EVENT_SHAPES = ((4, 3, 8, 8), (128, 3, 32, 32))
EVENT_TYPED = (4, 3, 8, 8)  # also timed on batches of fastai's tensor types (`typed_contenders`), where host overhead shows most
ROOT = Path(__file__).resolve().parent.parent

@contextlib.contextmanager
def _quiet_fd2():
    "Silence the C++ profiler's chatter on stderr"
    sys.stderr.flush()
    saved = os.dup(2)
    with open(os.devnull, 'w') as dn:
        os.dup2(dn.fileno(), 2)
        try: yield
        finally: os.dup2(saved, 2); os.close(saved)

class Timer:
    "Nanoseconds of one call `fn(arg)`, synchronising CUDA before and after"
    def __init__(self, dev): self.cuda = dev.type == 'cuda'
    def sync(self):
        if self.cuda: torch.cuda.synchronize()
    def __call__(self, fn, arg):
        self.sync(); t0 = time.perf_counter_ns()
        out = fn(arg)
        self.sync(); t1 = time.perf_counter_ns()
        return t1 - t0, out

def peak_extra_bytes(fn, arg, dev):
    "Highest running total of bytes allocated minus freed by torch during `fn(arg)`"
    if dev.type == 'cuda':
        torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        out = fn(arg); torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
        del out
        return peak
    from torch.profiler import profile, ProfilerActivity
    with _quiet_fd2():
        with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
            out = fn(arg)
            del out
        evs = [(e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events() if e.name() == '[memory]']
    run = peak = 0
    for _, nb in sorted(evs):
        run += nb; peak = max(peak, run)
    return peak

def handed(fn):
    """`fn` called on the batch taken out of a one-item list: the batch is then held by the call alone, as fastai's loop
    hands it to the callbacks (fastmix mixes in place only a batch nothing else holds: the clone the runner keeps would
    count as a holder)"""
    return lambda box: fn(box.pop())

def run_interleaved(contenders, make_args, arg_fn, reps, warmup, timer, after=None, budget_s=None, min_reps=10,
                    slow_ms=None):
    """Round-robin: every repetition calls every contender once, in a new random order; returns `fns, {name: [ns]}`.
    After `min_reps` timed repetitions, stop when `budget_s` is spent; a contender whose warm-up median is over
    `slow_ms` stops after `min_reps` timed calls (it is far slower than the others: more calls would not change a
    verdict, and would not fit the time limit on a small machine)."""
    fns = {c.name: c.make(*make_args) for c in contenders}
    calls = {n: handed(f) for n, f in fns.items()}
    times = {c.name: [] for c in contenders}
    warm = {c.name: [] for c in contenders}
    order = list(fns)
    rng = random.Random(0)
    cap = {}
    t0 = time.time()
    gc.collect(); gc.disable()
    try:
        for r in range(warmup + reps):
            if r == warmup and slow_ms is not None:
                cap = {n: min_reps for n, w in warm.items() if w and sorted(w)[len(w) // 2] / 1e6 > slow_ms}
            if r >= warmup + min_reps and budget_s is not None and time.time() - t0 > budget_s: break
            rng.shuffle(order)
            for n in order:
                if n in cap and len(times[n]) >= cap[n]: continue
                a = [arg_fn()]
                dt, out = timer(calls[n], a)
                if after is not None: after(n)
                del out, a  # freed outside the timed region
                (times if r >= warmup else warm)[n].append(dt)
    finally: gc.enable(); gc.collect()
    return fns, times

def measure_mix(a, dev, timer, row, t_start, baseline=None):
    "Each mixing call on a fresh clone of the batch (its clone timed apart), at every shape and thread count"
    cs = mix_contenders(baseline)
    clone_c = C('input clone (outside the timed region)', 'info', 'info', None)
    for shape in ([QUICK_SHAPE] if a.quick else [(128, 3, 32, 32), TARGET_SHAPE]):
        g = torch.Generator().manual_seed(0)
        base = torch.rand(*shape, generator=g).to(dev)
        y = torch.randint(0, N_CLS, (shape[0],), generator=g).to(dev)
        for i, thr in enumerate(a.threads):
            torch.set_num_threads(thr)
            clone_ts = []
            def fresh():
                dt, x = timer(torch.clone, base); clone_ts.append(dt); return x
            big = math.prod(shape) >= math.prod(TARGET_SHAPE) // 2
            fns, times = run_interleaved(cs, (base, y), fresh, a.reps, a.warmup, timer,
                                         budget_s=a.budget if big else a.budget / 3, min_reps=min(10, a.reps),
                                         slow_ms=a.slow_ms)
            print(f'[{a.variant}] mix {tuple(shape)} threads={thr}: {len(times[cs[0].name])} rounds '
                  f'({time.time() - t_start:.0f}s)', flush=True)
            peaks = {}
            if i == 0:  # allocation is the same at any thread count
                for c in cs: peaks[c.name] = max(peak_extra_bytes(handed(fns[c.name]), [base.clone()], dev) for _ in range(1 if a.quick else 3))
            for c in cs: row('mix', shape, thr, c, times[c.name], peaks.get(c.name))
            row('mix', shape, thr, clone_c, clone_ts)
            del fns
            print(f'[{a.variant}] mix {tuple(shape)} threads={thr} done ({time.time() - t_start:.0f}s)', flush=True)

def measure_loss(a, dev, timer, row, t_start):
    "Forward + backward of each loss on the same logits, at every size and thread count"
    cs = loss_contenders()
    for bs, ncls in ([(16, N_CLS)] if a.quick else [(128, N_CLS), (64, 1000)]):
        g = torch.Generator().manual_seed(1)
        pred = torch.randn(bs, ncls, generator=g).to(dev).requires_grad_()
        y = torch.randint(0, ncls, (bs,), generator=g).to(dev)
        idx = torch.stack([torch.randperm(bs, generator=g) for _ in range(4)]).to(dev)
        w = {K: (lambda r: r / r.sum(1, keepdim=True))(torch.rand(bs, K, generator=g)).to(dev) for K in (2, 4)}
        for thr in a.threads:
            torch.set_num_threads(thr)
            def clear(_=None): pred.grad = None
            _, times = run_interleaved(cs, (pred, y, idx, w), lambda: None, a.reps if a.quick else max(100, a.reps),
                                       a.warmup, timer, after=clear, budget_s=a.budget / 4, min_reps=min(30, a.reps))
            for c in cs: row('loss', (bs, ncls), thr, c, times[c.name])
            print(f'[{a.variant}] loss {(bs, ncls)} threads={thr} done ({time.time() - t_start:.0f}s)', flush=True)

def measure_e2e(a, dev, row, t_start, baseline=None):
    "The training phase of one epoch per contender, epochs interleaved, at every thread count"
    from fastai.basics import Callback
    # 16 batches an epoch: what happens once per fit (the first batch's buffers, its draws ahead) weighs as it would in
    # an epoch of a real dataset only when the epoch has more than a handful of batches
    n_train, bs = (64, 32) if a.quick else (1024, 64)
    # a mixer adds a few % to an epoch whose median moves by about 1 % from run to run: 15 epochs each, so that the
    # ratio of medians is good to about 1 % against the 3 % target (the whole `--budget` goes to them)
    reps = 1 if a.quick else 15
    class EpochTimer(Callback):
        order = -50
        def before_train(self): self.t0 = time.perf_counter_ns()
        def after_train(self): self.dt = time.perf_counter_ns() - self.t0
    cands = e2e_contenders(baseline)
    for thr in a.threads:
        torch.set_num_threads(thr)
        learners = {}
        for c in cands:
            torch.manual_seed(0)
            cb, tm = c.make(), EpochTimer()
            learn = make_learner([tm] + ([cb] if cb is not None else []), n_train=n_train, n_valid=bs, hw=32, bs=bs, dev=dev)
            learners[c.name] = (learn, tm)
        times = {c.name: [] for c in cands}
        rng = random.Random(0)
        order = list(learners)
        t0 = time.time()
        for r in range(1 + reps):  # one untimed warm-up epoch each
            if r > 3 and time.time() - t0 > a.budget: break  # at least 3 timed epochs each
            rng.shuffle(order)
            for n in order:
                learn, tm = learners[n]
                with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)
                if r: times[n].append(tm.dt)
        for c in cands: row('e2e', (n_train, 3, 32, 32), thr, c, times[c.name])
        print(f'[{a.variant}] e2e threads={thr} done ({time.time() - t_start:.0f}s)', flush=True)

def _event_learners(cs, shape, nb, dev, typed=False)->dict:
    "One Learner per contender: brackets, its callback, `nb` training batches of `shape` (`typed`: of fastai's tensor types)"
    out = {}
    for c in cs:
        op, cl = bracket_callbacks()
        cb = c.make()
        bs, _, h, _ = shape
        torch.manual_seed(0)
        learn = make_learner([op, cl] + ([cb] if cb is not None else []), n_train=bs * nb, n_valid=bs, hw=h, bs=bs, dev=dev, typed=typed)
        out[c.name] = (learn, cl)
    return out

def _cpu_timed(timer, fn, arg)->tuple:
    "(wall ns, this thread's CPU ns) of `fn(arg)`"
    c0 = time.thread_time_ns()
    dt, out = timer(fn, arg)
    c1 = time.thread_time_ns()
    del out
    return dt, c1 - c0

def measure_event(a, dev, timer, row, t_start, baseline=None):
    """Per batch, the host time between two bracket callbacks around `before_batch` in real fits (every batch kept: the
    mean carries the batches where mixes are drawn ahead); one fit per contender per round, in a new random order;
    timm's batch `Mixup` and fastmix's per-batch mixers called directly (`direct_contenders`) on clones of a batch of the
    same shape, `nb` calls in a row, as more contenders of the round"""
    cs, direct = event_contenders(baseline), direct_contenders()
    for shape in ([(4, 3, 8, 8)] if a.quick else EVENT_SHAPES):
        nb = max(8, min(64, 4096 // shape[0]))  # batches per fit
        for thr in a.threads:
            torch.set_num_threads(thr)
            typed = typed_contenders(cs) if shape == EVENT_TYPED else []
            learners = {**_event_learners(cs, shape, nb, dev), **_event_learners(typed, shape, nb, dev, typed=True)}
            g = torch.Generator().manual_seed(0)
            xt, yt = torch.rand(*shape, generator=g).to(dev), torch.randint(0, N_CLS, (shape[0],), generator=g).to(dev)
            calls = {c.name: c.make(yt) for c in direct}
            calls = {n: f for n, f in calls.items() if f is not None}  # timm may be missing
            times, order = {n: [] for n in list(learners) + list(calls)}, list(learners) + list(calls)
            cpu = {n: [] for n in times}
            rng, t0 = random.Random(0), time.time()
            for r in range(1 + (1 if a.quick else 8)):  # the first round warms up
                if r > 3 and time.time() - t0 > a.budget: break
                rng.shuffle(order)
                for n in order:
                    if n in calls: ts, cs_ = zip(*(_cpu_timed(timer, handed(calls[n]), [xt.clone()]) for _ in range(nb)))
                    else:
                        learn, cl = learners[n]; cl.ts, cl.cpu = [], []
                        with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-3)
                        ts, cs_ = cl.ts, cl.cpu
                    if r: times[n] += ts; cpu[n] += cs_
            for c in cs + typed + [c for c in direct if c.name in calls]: row('event', shape, thr, c, times[c.name], cpu_ns=cpu[c.name])
            del learners, calls
            print(f'[{a.variant}] event {tuple(shape)} threads={thr} done ({time.time() - t_start:.0f}s)', flush=True)

def baseline_package(rev:str, dest:Path):
    "fastmix as of git revision `rev`, imported as `fastmix_base` from `dest` (its modules import each other relatively)"
    import io, tarfile, importlib
    data = subprocess.run(['git', 'archive', rev, 'fastmix'], cwd=ROOT, capture_output=True, check=True).stdout
    tarfile.open(fileobj=io.BytesIO(data)).extractall(dest)
    (dest / 'fastmix').rename(dest / 'fastmix_base')
    init = dest / 'fastmix_base' / '__init__.py'
    init.write_text(init.read_text().replace('from fastmix.', 'from .'))
    sys.path.insert(0, str(dest))
    pkg = importlib.import_module('fastmix_base')
    try: importlib.import_module('fastmix_base.mixers')
    except ModuleNotFoundError: pass  # older revisions have no registry: `baseline_mixers` takes their classes
    return pkg

def measure(a):
    "Every part `a.parts` asks for, in this process: raw rows with the per-call times of every contender"
    warnings.filterwarnings('ignore')
    dev = torch.device(a.device)
    torch.manual_seed(0); np.random.seed(0); random.seed(0)
    timer, rows = Timer(dev), []
    def row(part, shape, thr, c, ts, peak=None, cpu_ns=None):
        rows.append(dict(part=part, shape=list(shape), threads=thr, name=c.name, group=c.group, kind=c.kind,
                         floor=c.floor, times_ns=ts, peak_bytes=peak, cpu_ns=cpu_ns))
    t_start = time.time()
    with tempfile.TemporaryDirectory() as td:
        base = baseline_package(a.baseline, Path(td)) if getattr(a, 'baseline', None) else None
        if 'mix' in a.parts: measure_mix(a, dev, timer, row, t_start, base)
        if 'loss' in a.parts: measure_loss(a, dev, timer, row, t_start)
        if 'e2e' in a.parts: measure_e2e(a, dev, row, t_start, base)
        if 'event' in a.parts: measure_event(a, dev, timer, row, t_start, base)
    return dict(variant=a.variant, env={k: os.environ.get(k) for k in NOMMAP_ENV}, rows=rows, seconds=time.time() - t_start)

def run_variants(a, script:Path, argv:list)->list:
    "`measure` once per malloc variant: `default` here when the environment allows, the others in `script --worker`"
    results = []
    with tempfile.TemporaryDirectory() as td:
        for v in a.variants:
            env = {k: os.environ[k] for k in NOMMAP_ENV if k in os.environ}
            if v == 'default' and not env:  # the environment as is: measure in this process
                print('== variant default: environment as is, in this process', flush=True)
                a.variant = v
                results.append(measure(a)); gc.collect()
                continue
            env = dict(os.environ, BENCH_VARIANT=v)
            if v == 'nommap': env.update(NOMMAP_ENV)
            else:  # 'default' asked for while this process runs with the variables set: a clean subprocess
                for k in NOMMAP_ENV: env.pop(k, None)
            f = Path(td) / f'{v}.json'
            print(f'== variant {v}: in a subprocess with ' +
                  (' '.join(f'{k}={env[k]}' for k in NOMMAP_ENV if k in env) or 'the mmap variables unset'), flush=True)
            subprocess.run([sys.executable, str(script), '--worker', str(f)] + argv, env=env, check=True)
            results.append(json.loads(f.read_text()))
    return results
