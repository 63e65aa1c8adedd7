"""What `bench_mix.py` reports: the raw rows of `runner.measure` merged over the malloc variants into statistics and
ratios (to the group's floor and to fastmix), the issue's targets checked, the machine described, and the results
written as a Markdown table (`STEM.md`) and JSON (`STEM.json`)."""
from __future__ import annotations
import datetime, json, math, os, platform, subprocess
from pathlib import Path
import numpy as np
from contenders import DIRECT, TIMM_DIRECT, TIMM_IN_FIT, TYPED

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = ('default', 'nommap')
KIND_ORDER = ('floor', 'info', 'fastmix', 'direct', 'baseline', 'peer')
# Targets at the target shape: (label, fastmix contender, floor, limit)
MIX_TARGETS = [('MixUp(batch) ≤ 1.5× lerp floor', 'fastmix MixUp(batch)', 'lerp floor', 1.5),
               ('MixUp(sample) ≤ 1.5× lerp floor', 'fastmix MixUp(sample)', 'lerp floor', 1.5),
               ('CutMix(batch) ≤ 2.5× box floor', 'fastmix CutMix(batch)', 'box floor', 2.5),
               ('RICAP(batch) ≤ 2.5× copy floor', 'fastmix RICAP(batch)', 'copy floor', 2.5),
               ('CutMix(sample) ≤ 3× copy floor', 'fastmix CutMix(sample)', 'copy floor', 3.),
               ('RICAP(sample) ≤ 3× copy floor', 'fastmix RICAP(sample)', 'copy floor', 3.),
               ('RICAP(sample) ≤ 4× copy floor (issue 13)', 'fastmix RICAP(sample)', 'copy floor', 4.)]
LOSS_TARGETS = ((2, 1.3), (4, 1.6))  # mixed loss with K sources: at most this many times a plain cross-entropy
# Issue 13, the event path: µs over the no-op callback at 4×3×8×8 (per-batch MixUp, CutMix, RICAP: EVENT_LOW; the
# rest); at 128×3×32×32 every per-batch mixer in a fit ≤ timm's batch `Mixup` called directly on the same tensors and
# ≤ 0.5× fastai's callbacks, as the issue states them; like for like against timm (in a fit: timm in a callback; called
# directly: both on warm clones) is reported as a reference. ManifoldMixUp mixes in the model's forward pass, which its
# event rows don't time: it is judged on neither (its cost shows in the epoch, e2e)
EVENT_SMALL, EVENT_LIMITS, EVENT_LOW = (4, 3, 8, 8), (50., 100.), ('MixUp', 'CutMix', 'RICAP')
EVENT_MID, EVENT_IN_FORWARD = (128, 3, 32, 32), ('ManifoldMixUp',)
ISSUE13_SHAPE = (64, 3, 224, 224)  # where issue 13 asks that nothing get slower than at its start (`--baseline 5ad1cf7`)
E2E_LIMIT = 1.03  # an epoch of the small CNN at 32×32 with mixing, at most this many times without

def _version(mod):
    try: return __import__(mod).__version__
    except ImportError: return 'not installed (skipped)'

def machine()->dict:
    "CPU, versions of everything timed, the git revision, the load"
    import torch, fastai, torchvision, fastmix
    cpu = 'unknown'
    try:
        for l in open('/proc/cpuinfo'):
            if l.startswith('model name'): cpu = l.split(':', 1)[1].strip(); break
    except OSError: pass
    try: load = open('/proc/loadavg').read().split()[:3]
    except OSError: load = None
    try:
        rev = subprocess.run(['git', 'describe', '--always', '--dirty'], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    except OSError: rev = ''
    d = dict(cpu=cpu, logical_cpus=os.cpu_count(),
             python=platform.python_version(), platform=platform.platform(), libc='-'.join(platform.libc_ver()),
             torch=torch.__version__, fastai=fastai.__version__, fastmix=fastmix.__version__, timm=_version('timm'),
             torchvision=torchvision.__version__, kornia=_version('kornia'), numpy=np.__version__,
             git=rev or 'unknown', loadavg_at_start=load, date=datetime.datetime.now().isoformat(timespec='seconds'))
    if torch.cuda.is_available(): d['gpu'] = torch.cuda.get_device_name()
    return d

def stats(ts):
    "Median, quantiles and extremes in ms of per-call times in ns"
    if not ts: return None
    a = np.asarray(ts, dtype=np.float64) / 1e6
    q = np.percentile(a, [10, 25, 50, 75, 90])
    return dict(n=len(a), median=q[2], mean=a.mean(), p10=q[0], p25=q[1], p75=q[3], p90=q[4], min=a.min(), max=a.max())

def key(r): return (r['part'], tuple(r['shape']), r['threads'], r['name'])

def merge(results):
    "One record per (part, shape, threads, contender) with the stats of each variant and the ratios"
    recs, order = {}, []
    for res in results:
        for r in res['rows']:
            k = key(r)
            if k not in recs:
                recs[k] = {kk: r[kk] for kk in ('part', 'shape', 'threads', 'name', 'group', 'kind', 'floor')}
                recs[k]['peak_bytes'] = None; order.append(k)
            if r['peak_bytes'] is not None: recs[k]['peak_bytes'] = r['peak_bytes']
            recs[k][res['variant']] = stats(r['times_ns'])
            if r.get('cpu_ns'): recs[k][res['variant']]['cpu'] = stats(r['cpu_ns'])
    # ratio to the relevant floor and to fastmix (same part, shape, threads, group)
    for k in order:
        rec = recs[k]
        for v in VARIANTS:
            s = rec.get(v)
            if not s: continue
            fl = recs.get((rec['part'], tuple(rec['shape']), rec['threads'], rec['floor'])) if rec['floor'] else None
            s['x_floor'] = s['median'] / fl[v]['median'] if fl and fl.get(v) else None
            ref = next((recs[j] for j in order if recs[j]['kind'] == 'fastmix' and j[:3] == k[:3]
                        and recs[j]['group'] == rec['group']), None)
            s['x_fastmix'] = s['median'] / ref[v]['median'] if ref and ref.get(v) and rec['kind'] != 'floor' else None
    return [recs[k] for k in order]

def group_order(mixer_groups:list)->list:
    "Rows of a part, shape and thread count: floors, info, the mixers' groups in `MIXERS` order, the losses (e2e last)"
    return (['floor', 'info'] + list(mixer_groups) + ['loss', 'loss K=2', 'loss K=4', 'event']
            + [f'event {g}' for g in mixer_groups] + ['event timm'])

def sort_key(rec, groups:list):
    g = rec['group']
    gi = groups.index(g) if g in groups else 1000 + (0 if g == 'e2e' else 1)
    return (PARTS.index(rec['part']), math.prod(rec['shape']), rec['threads'], gi, KIND_ORDER.index(rec['kind']))

PARTS = ('mix', 'loss', 'e2e', 'event')

def fmt(v, nd=3):
    if v is None: return '–'
    if v == 0: return '0'
    return f'{v:.{max(0, nd - 1 - int(math.floor(math.log10(abs(v)))))}f}' if abs(v) < 10 ** nd else f'{v:.0f}'

def table(recs, variants, groups:list):
    "The Markdown table of every record, sorted by part, shape, threads, group and kind"
    hdr = ['part', 'shape', 'thr', 'group', 'contender']
    for v in variants: hdr += [f'{v}: median ms', 'p10–p90', 'n', '× floor', '× fastmix']
    hdr += ['peak extra MB']
    lines = ['| ' + ' | '.join(hdr) + ' |', '|' + '|'.join(['---'] * 5 + ['--:'] * (5 * len(variants) + 1)) + '|']
    for r in sorted(recs, key=lambda r: sort_key(r, groups)):
        cells = [r['part'], '×'.join(map(str, r['shape'])), str(r['threads']), r['group'], r['name']]
        for v in variants:
            s = r.get(v)
            if not s: cells += ['–'] * 5; continue
            cells += [fmt(s['median']), f"{fmt(s['p10'])}–{fmt(s['p90'])}", str(s['n']),
                      'floor' if r['kind'] == 'floor' else fmt(s['x_floor']), fmt(s['x_fastmix'])]
        pb = r['peak_bytes']
        cells.append('–' if pb is None else fmt(pb / 2**20))
        lines.append('| ' + ' | '.join(cells) + ' |')
    return '\n'.join(lines)

def _peer_checks(recs, v, thr, cell, target_shape):
    """Every fastmix method faster than every peer doing the same thing (same group); with `--baseline`, issue 13's
    at 64×3×224×224: no slower than the same method of the baseline revision"""
    out = []
    at = lambda r: r['part'] == 'mix' and tuple(r['shape']) == tuple(target_shape) and r['threads'] == thr and r.get(v)
    for r in recs:
        if r['kind'] != 'fastmix' or not at(r): continue
        for p in recs:
            if p['kind'] not in ('peer', 'baseline') or p['group'] != r['group'] or not at(p): continue
            ratio = r[v]['median'] / p[v]['median']
            if p['kind'] == 'peer': target, ok = f"{r['name']} faster than {p['name']}", ratio < 1.
            else: target, ok = f"{r['name']} ≤ 1.0× {p['name']} ({'issue 13: ' if tuple(target_shape) == ISSUE13_SHAPE else ''}nothing slower)", ratio <= 1.
            out.append(dict(target=target, where=cell, value=ratio, limit=1., ok=ok))
    return out

def targets(recs, variants, target_shape, loss_size):
    "The issue's targets, checked at the target shape for every thread count and variant"
    out = []
    by = {key(r): r for r in recs}
    def med(part, shape, thr, name, v):
        r = by.get((part, tuple(shape), thr, name))
        return r[v]['median'] if r and r.get(v) else None
    for thr in sorted({r['threads'] for r in recs}):
        for v in variants:
            cell = f'{thr} thread{"s" if thr > 1 else ""}, {v}'
            for label, name, fl, lim in MIX_TARGETS:
                a, b = med('mix', target_shape, thr, name, v), med('mix', target_shape, thr, fl, v)
                if a is None or b is None: continue
                out.append(dict(target=label, where=cell, value=a / b, limit=lim, ok=a / b <= lim))
            out += _peer_checks(recs, v, thr, cell, target_shape)
            for K, lim in LOSS_TARGETS:
                a, b = med('loss', loss_size, thr, f'fastmix mixed_loss K={K}', v), med('loss', loss_size, thr, 'F.cross_entropy', v)
                if a is None or b is None: continue
                out.append(dict(target=f'mixed loss K={K} fwd+bwd ≤ {lim}× plain CE', where=cell, value=a / b, limit=lim, ok=a / b <= lim))
    return out


def _get(s, stat): return s['cpu']['mean'] if stat == 'cpu mean' else s[stat]

def _over_noop(by, shape, thr, name, v, stat='median'):
    "µs that contender `name` adds to the event bracket over the no-op callback (a direct call: its own time)"
    noop = 'no-op callback' + (TYPED if name.endswith(TYPED) else '')  # (on the same kind of batch)
    r, z = by.get(('event', tuple(shape), thr, name)), by.get(('event', tuple(shape), thr, noop))
    if not (r and r.get(v)): return None
    if name.endswith(DIRECT): return _get(r[v], stat) * 1e3
    return (_get(r[v], stat) - _get(z[v], stat)) * 1e3 if z and z.get(v) else None

def event_checks(recs, variants)->list:
    "Issue 13's targets on the event part, and the end-to-end one on the e2e part"
    out, by = [], {key(r): r for r in recs}
    for r in recs:
        for v in variants:
            if r['kind'] not in ('fastmix', 'direct') or not r.get(v): continue
            cell, shape = f'{r["threads"]} thread{"s" if r["threads"] > 1 else ""}, {v}', tuple(r['shape'])
            if r['part'] == 'e2e':
                x = r[v]['x_floor']
                if x is not None: out.append(dict(target=f"{r['name']} epoch ≤ {E2E_LIMIT}× no mixing", where=cell, value=x, limit=E2E_LIMIT, ok=x <= E2E_LIMIT))
                continue
            if r['part'] != 'event': continue
            label, mode = r['group'][len('event '):].split('/')
            d = _over_noop(by, shape, r['threads'], r['name'], v)
            if r['kind'] == 'direct':  # called directly, against timm called directly: like for like, a reference
                q = _over_noop(by, shape, r['threads'], TIMM_DIRECT, v)
                if shape == EVENT_MID and q and label not in EVENT_IN_FORWARD:
                    out.append(dict(target=f"{r['name']} ≤ 1.0× {TIMM_DIRECT} at 128×3×32×32 (reference: like for like)",
                                    where=cell, value=d / q, limit=1., ok=d / q <= 1., info=True))
                continue
            if shape == EVENT_SMALL and label not in EVENT_IN_FORWARD:  # per batch MixUp, CutMix, RICAP: the lower limit; every other: the higher
                lim = EVENT_LIMITS[0] if mode == 'batch' and label in EVENT_LOW else EVENT_LIMITS[1]
                out.append(dict(target=f"{r['name']}: µs over no-op at 4×3×8×8 ≤ {lim:.0f}", where=cell, value=d, limit=lim, ok=d <= lim))
            if shape == EVENT_MID and mode == 'batch' and label not in EVENT_IN_FORWARD:
                # the issue's: timm called directly on a warm clone (no model step evicts its data and code from the caches
                # between calls); timm on the fit's own batch, in a callback in the same bracket, is like for like: a reference
                for peer, lim, info in ((TIMM_DIRECT, 1., False), (TIMM_IN_FIT, 1., True), ('fastai MixUp', .5, False), ('fastai CutMix', .5, False)):
                    q = _over_noop(by, shape, r['threads'], peer, v)
                    if q: out.append(dict(target=f"{r['name']} over no-op ≤ {lim}× {peer} at 128×3×32×32" + (' (reference: like for like)' if info else ''),
                                          where=cell, value=d / q, limit=lim, ok=d / q <= lim, info=info))
    return out

def event_table(recs, variants, groups)->list:
    "The event part in µs: each contender's median and mean per batch, and what it adds over the no-op callback"
    by, lines = {key(r): r for r in recs}, []
    rs = sorted((r for r in recs if r['part'] == 'event'), key=lambda r: (k := sort_key(r, groups))[:3] + (r['name'].endswith(TYPED),) + k[3:])  # the rows on fastai types last in their shape and threads
    for v in variants:
        if not any(r.get(v) for r in rs): continue
        lines += [f'### Event path, µs per batch ({v}): between two callbacks bracketing every other `before_batch` in real fits', '',
                  '`median`: of the wall time per batch; `CPU mean`: mean of this thread\'s CPU time per batch, every batch '
                  'counted (it carries the batches where mixes are drawn ahead, and leaves out waiting for a core); '
                  '`− no-op`: over a no-op callback in the same bracket; '
                  '`… called directly`: its own time per call, called on a clone of a batch of the same shape, one call '
                  'after the other (warm in the cache, no model step between calls): timm\'s batch `Mixup`, and each '
                  'fastmix mixer per batch through its `before_batch` (mixes drawn ahead as in a fit: the CPU mean carries the draws); `timm Mixup(batch) in a '
                  'callback`: timm\'s call on the fit\'s own batch, from a callback in the same bracket as fastmix\'s. '
                  'Like for like: a fastmix row in a fit against timm in a callback, called directly against called directly. '
                  f'`…{TYPED}`: the same fits on batches of fastai\'s `TensorImage` and `TensorCategory`, as `ImageDataLoaders` '
                  'gives them (every attribute read of those types runs through Python), over the no-op callback on them.', '',
                  '| shape | thr | contender | median | − no-op | CPU mean | − no-op | n |', '|---|--:|---|--:|--:|--:|--:|--:|']
        for r in rs:
            s = r.get(v)
            if not s: continue
            sh, thr = tuple(r['shape']), r['threads']
            d, dm = ((None, None) if r['kind'] == 'floor' else
                     (_over_noop(by, sh, thr, r['name'], v), _over_noop(by, sh, thr, r['name'], v, 'cpu mean')))
            lines.append(f"| {'×'.join(map(str, sh))} | {thr} | {r['name']} | {fmt(s['median'] * 1e3)} | {fmt(d)} | "
                         f"{fmt(_get(s, 'cpu mean') * 1e3)} | {fmt(dm)} | {s['n']} |")
        lines.append('')
    return lines

def _contention(recs, variants, target_shape)->list:
    "Whether the second core was free: the copy floor with 2 threads against 1"
    lines, by = [], {key(r): r for r in recs}
    for v in variants:
        c1, c2 = (by.get(('mix', tuple(target_shape), t, 'copy floor')) for t in (1, 2))
        if c1 and c2 and c1.get(v) and c2.get(v):
            lines += [f"Contention check ({v}): the copy floor at {'×'.join(map(str, target_shape))} takes "
                      f"{fmt(c2[v]['median'])} ms with 2 threads and {fmt(c1[v]['median'])} ms with 1 thread"
                      + (' — 2-thread timings are dominated by waiting for the second core (other processes on it)'
                         if c2[v]['median'] > 1.5 * c1[v]['median'] else '') + '.', '']
    return lines

def _targets_table(checks)->list:
    wheres = list(dict.fromkeys(c['where'] for c in checks))
    lines = ['| target | limit | ' + ' | '.join(wheres) + ' |', '|---|--:|' + '--:|' * len(wheres)]
    for t in dict.fromkeys(c['target'] for c in checks):
        cs = {c['where']: c for c in checks if c['target'] == t}
        lim = next(iter(cs.values()))['limit']
        lines.append(f'| {t} | {lim} | ' + ' | '.join(
            f"{cs[w]['value']:.2f} {'ref.' if cs[w].get('info') else 'PASS' if cs[w]['ok'] else '**FAIL**'}" if w in cs else '–' for w in wheres) + ' |')
    return lines

def markdown(cmd, m, recs, checks, variants, groups, target_shape, loss_size, rendered:str=None)->str:
    "The whole report: command, machine, how to read the columns, contention check, the table, the targets"
    lines = [f'# fastmix mixing benchmark ({m["device"]})', '',
             f'Command: `{cmd}` (from the repository root; wall time {m["wall_seconds"]} s)', '']
    if rendered: lines += [rendered, '']
    lines += [
             'Machine: ' + ', '.join(f'{k}={v}' for k, v in m.items() if k not in ('wall_seconds',)), '',
             'Columns: median and p10–p90 of the per-call times in ms over the timed calls (after warm-up); '
             '`default` = glibc malloc as is, `nommap` = `MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=4294967295`. '
             '`× floor`: ratio to the group\'s memory floor (mix), to `F.cross_entropy` (loss) or to the epoch '
             'without mixing (e2e); `× fastmix`: ratio to fastmix in the same group. Peak extra MB: torch '
             'allocations during one call (torch.profiler), largest of 3 calls; in-place contenders write into '
             'their input, which is not counted.', '']
    lines += _contention(recs, variants, target_shape)
    lines += event_table(recs, variants, groups)
    lines += [table([r for r in recs if r['part'] != 'event'], variants, groups), '',
              f'## Targets (at {"×".join(map(str, target_shape))}; losses at {loss_size[0]}×{loss_size[1]} logits; '
              'the event path at its shapes; e2e per epoch)', '',
              'Each cell: the measured ratio (of medians) and PASS/FAIL against the limit; `ref.`: a reference ratio '
              'that is reported, not judged: like for like against timm (fastmix in a fit against timm in a callback on '
              'the same batch; both called directly on warm clones). The judged timm target is the issue\'s: fastmix in a '
              'fit against timm called directly.', '']
    return '\n'.join(lines + _targets_table(checks)) + '\n'

def write(out:Path, stem:str, cmd, m, recs, checks, results, md:str):
    "`stem.md` (the report) and `stem.json` (every record, the targets, the variants' environments)"
    (out / f'{stem}.md').write_text(md)
    (out / f'{stem}.json').write_text(json.dumps(dict(command=cmd, machine=m, rows=recs, targets=checks,
        variants={r['variant']: dict(env=r['env'], seconds=r['seconds']) for r in results}), indent=1, default=float))
