#!/usr/bin/env python
"""Benchmark fastmix's batch mixing against fastai, timm, torchvision and kornia, and against memory floors (issue 4).

The parts: `contenders.py` (what is timed: every mixer of `fastmix.mixers.MIXERS` and each peer), `runner.py` (how:
interleaving, medians, threads, memory, malloc variants), `report.py` (the tables, the targets, the files); this
file is the command.

What is timed (every part in ONE worker process, contenders interleaved round-robin in a new random order every
repetition, so that drift and noise from other processes hit every contender alike):

- **mix**: one training-time mixing call per contender on a batch of class-index targets. Every contender gets a
  freshly cloned input batch made OUTSIDE the timed region (the clone is timed separately, for reference), and the
  output is kept alive until the timer has stopped, so that freeing memory is never in the timed region either.
  fastmix and fastai are driven through a real fastai `Learner` and the callback's own `before_batch` event
  (fastmix mixes in place there; fastai's `before_train` has run, so it leaves class-index targets to its loss, like
  fastmix). timm's `Mixup`, torchvision's `v2.MixUp`/`v2.CutMix` and kornia's `RandomMixUpV2`/`RandomCutMixV2` are
  called as their docs show, and also produce their mixed (one-hot, 10-class) targets or label parameters.
- **floors**, on the same tensors: `copy` = `out.copy_(x)`; `lerp` = `torch.lerp(x, b, w, out=c)` with per-image
  weights; `box` = one in-place copy of a box of half the image area from another batch into `x`.
- **loss**: forward + backward of plain `F.cross_entropy`, fastmix `mixed_loss` (with `CrossEntropyLossFlat`, K = 2
  and 4, including the one gather of the (B, K) targets that `after_loss` does) and fastai's `MixUp` loss.
- **e2e**: the training phase of one epoch of fastmix's small CNN (`fastmix.demo.small_cnn`) on synthetic 32×32
  images through `Learner.fit`, without a mixer and with each fastai-callback mixer (fastmix, fastai).
- **event** (issue 13): the host time of `before_batch` in real fits at 4×3×8×8 and 128×3×32×32, per batch, between
  two callbacks that bracket every other callback (orders ±10⁶): the brackets alone, a no-op callback, every fastmix
  mixer in both modes, fastai's MixUp and CutMix, fits interleaved; timm's batch `Mixup` called directly alongside.
  At 4×3×8×8 the no-op, the peers and the per-batch MixUp, CutMix and RICAP are timed again on batches of fastai's
  `TensorImage` and `TensorCategory`, as `ImageDataLoaders` gives them (rows `…, fastai types`).
  `--baseline REV` adds the mixers of another git revision (rows `before ...`) here, in e2e and in mix: before/after in
  one process (issue 13: at 64×3×224×224 nothing slower than before).

Peak extra memory of one call is the highest running total of the bytes torch allocates minus frees during the
call, read from `torch.profiler` (`profile_memory=True`) on CPU and from `torch.cuda.max_memory_allocated` on
CUDA; it counts tensors only (not page-table or allocator overhead), and the largest of 3 calls is reported.

The whole measurement runs twice: in this process with the environment as is, and in a worker subprocess with
glibc's mmap threshold disabled (`MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=4294967295`). With the default glibc
settings every tensor allocation over the mmap threshold (dynamic, at most 32 MB) is a fresh `mmap` whose pages fault
in (zeroed by the kernel) on first touch, so contenders that allocate pay that cost in every call; the second
column shows the same code without it.

Repetitions: 30 timed calls per contender after 3 warm-up calls, where the time limit allows. A contender whose
warm-up median is over `--slow-ms` (100 ms: kornia at 224x224, or anything when the machine is busy) gets 10; and a
shape and thread count stops after 10 rounds once its `--budget` is spent. The tables give `n` for every row.

    python benchmarks/bench_mix.py                 # full run (a few minutes), writes benchmarks/results/bench_cpu.{md,json}
    python benchmarks/bench_mix.py --quick --out /tmp/bench   # CI smoke test: tiny shapes, 3 repetitions, seconds
    python benchmarks/bench_mix.py --parts event,e2e --variants default --baseline 5ad1cf7 --stem bench_event  # issue 13: per-batch overhead, before and after
    python benchmarks/bench_mix.py --render bench_event   # the targets checked again on a saved run (after a change of a target)
"""
from __future__ import annotations
import argparse, json, os, shlex, sys, time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VARIANTS = ('default', 'nommap')

def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--quick', action='store_true', help='tiny shapes, 3 repetitions: a smoke test of a few seconds')
    p.add_argument('--out', default=None, help='output folder (default: benchmarks/results)')
    p.add_argument('--stem', default=None, help='output file stem (default: bench_cpu, bench_cpu_quick with --quick)')
    p.add_argument('--threads', default=None, help='comma-separated torch thread counts (default: 1,2; --quick: 1)')
    p.add_argument('--reps', type=int, default=None, help='timed calls per contender (default 30; --quick: 3)')
    p.add_argument('--warmup', type=int, default=None, help='untimed calls per contender first (default 3; --quick: 1)')
    p.add_argument('--device', default='cpu', help="'cpu' or 'cuda' (the cuda path syncs and reads torch.cuda memory)")
    p.add_argument('--parts', default='mix,loss,e2e,event', help='comma-separated subset of mix,loss,e2e,event')
    p.add_argument('--baseline', default=None, help='also time this git revision of fastmix (rows "before ...") in mix, e2e and event')
    p.add_argument('--variants', default=','.join(VARIANTS), help='which of default,nommap to run')
    p.add_argument('--budget', type=float, default=None,
                   help='seconds for the repetitions of one shape and thread count at 64x3x224x224 (a third for the '
                        'small shape; the e2e epochs of one thread count get all of it, up to 15 epochs each); once spent, stop after '
                        'at least 10 timed calls per contender (3 epochs for e2e) (default 60)')
    p.add_argument('--slow-ms', type=float, default=100.,
                   help='contenders whose warm-up median is slower than this get 10 timed calls only (default 100)')
    p.add_argument('--strict', action='store_true', help='exit 1 when a target FAILs (the default only reports)')
    p.add_argument('--render', default=None, metavar='STEM',
                   help='measure nothing: check the targets again on the rows of STEM.json (in --out) and rewrite STEM.md and the JSON\'s targets')
    p.add_argument('--worker', default=None, help=argparse.SUPPRESS)  # internal: run one variant, write JSON here
    a = p.parse_args(argv)
    a.threads = [int(t) for t in (a.threads or ('1' if a.quick else '1,2')).split(',')]
    a.reps = a.reps or (3 if a.quick else 30)
    a.warmup = a.warmup if a.warmup is not None else (1 if a.quick else 3)
    a.budget = a.budget or (30. if a.quick else 60.)
    a.stem = a.stem or ('bench_cpu_quick' if a.quick else 'bench_cpu')
    a.out = Path(a.out) if a.out else ROOT / 'benchmarks' / 'results'
    a.parts = a.parts.split(',')
    a.variants = a.variants.split(',')
    return a

def main(argv=None):
    a = parse_args(argv)
    argv = list(argv if argv is not None else sys.argv[1:])
    if str(HERE) not in sys.path: sys.path.insert(0, str(HERE))
    import runner, report
    from contenders import N_CLS, mixer_groups
    if a.worker:
        a.variant = os.environ.get('BENCH_VARIANT', 'default')
        Path(a.worker).write_text(json.dumps(runner.measure(a)))
        return 0
    if a.render: return render(a)
    if a.device == 'cuda': a.variants = ['default']  # glibc's malloc does not allocate CUDA memory
    cmd = ' '.join(['python benchmarks/bench_mix.py'] + [shlex.quote(s) for s in argv])
    a.out.mkdir(parents=True, exist_ok=True)
    t0, m = time.time(), report.machine()  # its load average and date are the run's start
    results = runner.run_variants(a, Path(__file__).resolve(), argv)
    recs = report.merge(results)
    target_shape = runner.QUICK_SHAPE if a.quick else runner.TARGET_SHAPE
    loss_size = (64, 1000) if not a.quick else (16, N_CLS)
    checks = report.targets(recs, a.variants, target_shape, loss_size) + report.event_checks(recs, a.variants)
    m.update(threads=a.threads, device=a.device, reps=a.reps, warmup=a.warmup, wall_seconds=round(time.time() - t0, 1),
             loadavg_at_end=open('/proc/loadavg').read().split()[:3] if os.path.exists('/proc/loadavg') else None)
    md = report.markdown(cmd, m, recs, checks, a.variants, report.group_order(mixer_groups()), target_shape, loss_size)
    report.write(a.out, a.stem, cmd, m, recs, checks, results, md)
    print(md)
    nfail = sum(not c['ok'] and not c.get('info') for c in checks)  # references are reported, not judged
    print(f'{len(checks)} checks, {nfail} FAIL; wrote {a.out / (a.stem + ".md")} and .json')
    return 1 if a.strict and nfail else 0

def render(a)->int:
    "`--render`: the targets of a saved run checked again as `report` states them now (after a change of a target), its rows as measured"
    import runner, report
    from contenders import N_CLS, mixer_groups
    path = a.out / f'{a.render}.json'
    d = json.loads(path.read_text())
    recs, m, cmd, variants = d['rows'], d['machine'], d['command'], list(d['variants'])
    quick = '--quick' in cmd.split()
    target_shape, loss_size = (runner.QUICK_SHAPE, (16, N_CLS)) if quick else (runner.TARGET_SHAPE, (64, 1000))
    checks = report.targets(recs, variants, target_shape, loss_size) + report.event_checks(recs, variants)
    note = (f'Targets checked again on {time.strftime("%Y-%m-%d")} with the targets of today\'s `benchmarks/report.py` '
            f'(`python benchmarks/bench_mix.py --render {a.render}`), on the rows this command measured.')
    md = report.markdown(cmd, m, recs, checks, variants, report.group_order(mixer_groups()), target_shape, loss_size, note)
    (a.out / f'{a.render}.md').write_text(md)
    path.write_text(json.dumps({**d, 'targets': checks, 'rendered': note}, indent=1, default=float))
    nfail = sum(not c['ok'] and not c.get('info') for c in checks)
    print(f'{len(checks)} checks, {nfail} FAIL; rewrote {a.out / (a.render + ".md")} and the targets of {path.name}')
    return 0

if __name__ == '__main__': sys.exit(main())
