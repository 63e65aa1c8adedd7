"""Build fastmix's docs from the notebooks: README.md from nbs/index.ipynb, and the static site in _docs/.

    python tools/docs.py --readme     write README.md from nbs/index.ipynb
    python tools/docs.py --check      fail if README.md is not what nbs/index.ipynb makes
    python tools/docs.py --html       execute the notebooks, process them with nbdev, render the site to _docs/

The site is nbdev's own processing (`FilterDefaults`, what `nbdev-proc-nbs` runs on each notebook: `show_doc` after
every exported name, exported code hidden, directives applied; output in `_proc/`) rendered by Sphinx with MyST-NB
and the Furo theme instead of Quarto (configuration: tools/conf.py), through a thin adapter for what only Quarto
reads. The notebooks are executed once, the way `nbdev-test` runs them (its cell selection, skip flags, stop at the
first error), so this is also the notebook test: a failing cell fails the build.
Needs the `docs` extra: `pip install -e '.[dev,docs]'`.
"""
from __future__ import annotations
import argparse, json, os, re, shutil, subprocess, sys, time, warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BUILD = ROOT/'_build'

# ---------------------------------------------------------------- README
_skip = re.compile(r'^#\|\s*(hide|exporti?|default_exp|echo:\s*false)\b', re.M)  # cells the README leaves out

def readme_from_index(nb_path:Path)->str:
    "Markdown for README.md: the index notebook's markdown and visible code cells, in order"
    nb = json.loads(Path(nb_path).read_text())
    out = ['<!-- generated from nbs/index.ipynb by `python tools/docs.py --readme`: edit the notebook, not this file -->']
    for c in nb['cells']:
        src = ''.join(c['source'])
        if c['cell_type'] == 'code':
            if _skip.search(src): continue
            src = '```python\n' + re.sub(r'^#\|.*\n', '', src, flags=re.M).strip() + '\n```'
        out.append(src.strip())
    return '\n\n'.join(out) + '\n'

# ---------------------------------------------------------------- sidebar: groups by notebook number
GROUPS = [(r'index$', 'Get started'), (r'0\d_', 'Methods'), (r'1\d_', 'Beyond classification'), (r'2\d_', 'Previews'),
          (r'3\d_', 'Command line'), (r'4\d_', 'Internals'), (r'90_', 'Benchmarks'), (r'91_', 'Training quality'),
          (r'', 'More')]

def group_of(stem:str)->str:
    "Sidebar group of the notebook `stem` (`03_ricap` -> 'Methods'), from its number"
    return next(g for pat, g in GROUPS if re.match(pat, stem))

def page_name(stem:str)->str:
    "Page file of a notebook, as nbdev names it: the number prefix dropped (`03_ricap` -> `ricap`)"
    return re.sub(r'^\d+_', '', stem)

# ---------------------------------------------------------------- 1+2. execute (as nbdev-test does), then nbdev's processing
def _build_one(fn:Path, skip_flags:list, timeout:int=600):
    "Run notebook `fn` as `nbdev-test` does, then process it for the docs as `nbdev-proc-nbs` does: (ok, seconds, error)"
    from execnb.shell import CaptureShell
    from fastcore.nbio import write_nb
    from fastcore.xtras import working_directory
    from nbdev.process import NBProcessor
    from nbdev.processors import FilterDefaults
    from nbdev.serve_drv import exec_nb
    from nbdev.test import _skip_cell
    start, main = time.time(), sys.modules['__main__']
    os.environ['IN_TEST'] = '1'
    os.environ.pop('MPLBACKEND', None)  # figures need matplotlib's inline backend (MPLBACKEND=Agg shows none)
    warnings.filterwarnings('ignore', 'Found cells containing imports')  # nbdev's style hint, not a docs problem
    nb = NBProcessor(fn, rm_directives=False, process=True).nb
    k = CaptureShell(fn)
    try:
        with working_directory(fn.parent):
            k.run_all(nb, exc_stop=True, preproc=_skip_cell(nb, skip_flags), cell_timeout=timeout)
            write_nb(nb, BUILD/'nbs'/fn.name)
            # nbdev's own per-notebook processing; fastai is imported already, so its re-run of imports is quick
            exec_nb(BUILD/'nbs'/fn.name, ROOT/'_proc'/fn.name, FilterDefaults)
    except Exception as e: return False, time.time() - start, k.prettytb(fname=fn) or f'{type(e).__name__}: {e}'
    finally: sys.modules['__main__'] = main  # IPython's shell replaces it; this worker's next task is unpickled there
    return True, time.time() - start, ''

def run_notebooks(nbs:Path, n_workers:int=2)->bool:
    "Execute and process every notebook of `nbs` (into _build/nbs/ and _proc/); print times and failures"
    from fastcore.parallel import parallel
    from nbdev.config import get_config
    flags = get_config().tst_flags
    flags = flags.split() if isinstance(flags, str) else list(flags or [])
    for d in (BUILD/'nbs', ROOT/'_proc'):
        if d.exists(): shutil.rmtree(d)
        d.mkdir(parents=True)
    files = sorted(f.absolute() for f in nbs.glob('*.ipynb'))
    res = parallel(_build_one, files, skip_flags=flags, n_workers=n_workers, pause=0.01)
    for f, (ok, t, err) in zip(files, res):
        print(f'  {f.name}: {t:.0f} s' + ('' if ok else ' FAILED'))
        if not ok: sys.stderr.write(err + '\n')
    return all(ok for ok, _, _ in res)

# ---------------------------------------------------------------- 3. adapt _proc/ (Quarto's dialect) for MyST-NB
_dir_re = re.compile(r'^#\|\s*([\w-]+):?\s*(.*?)\s*$')
_attr_re = re.compile(r'\]\(([^)\s]+)\)\{[^}\n]*\}')  # pandoc link attributes: [t](u){target="_blank" ...}
_site_url = 'https://fastmix.github.io/fastmix/'

def _directives(src:str)->tuple[dict, str]:
    "The `#| key: value` lines opening a cell, and the source without them"
    d, lines = {}, src.splitlines()
    while lines and (m := _dir_re.match(lines[0])): d[m[1]] = m[2]; lines.pop(0)
    return d, '\n'.join(lines)

_labels = set()  # MyST targets of the show_doc blocks of all pages, `page-name` (set by `write_site_src`)

def _label(page:str, anchor:str)->str: return f'{page}-{anchor}'.lower()

def _link(page:str, anchor:str|None)->str:
    "nbdev's link to `page.html#anchor` as MyST: the show_doc block's target if there is one, else the page"
    lbl = anchor and _label(page, anchor.lstrip('#'))
    return f'#{lbl}' if lbl in _labels else f'{page}.ipynb'

def _md_text(s:str)->str:
    "Quarto's markdown as MyST: link attributes dropped; nbdev's links into this site become MyST references"
    s = _attr_re.sub(r'](\1)', s)
    return re.sub(re.escape(_site_url) + r'([\w.-]+)\.html(#[^)\s"]*)?', lambda m: _link(m[1], m[2]), s)

def _param_table(sym_src:str, module:str)->str:
    "The docments of `sym_src` (a `show_doc` argument) as a markdown table, as docs.fast.ai shows them"
    import importlib
    from fastcore.docments import DocmentTbl
    try:
        ns = dict(vars(importlib.import_module('fastmix.all')))
        if module: ns.update(vars(importlib.import_module(module)))
        tbl = DocmentTbl(eval(sym_src, ns))
        return '\n\n' + str(tbl) if tbl.has_docment else ''
    except Exception: return ''

def _show_doc_md(cell:dict, src:str, module:str, page:str)->str:
    "The markdown of a `show_doc` cell's output: signature without its comments, the docstring, a parameter table"
    md = ''.join(''.join(o.get('data', {}).get('text/markdown', '')) for o in cell.get('outputs', []))
    head, _, rest = md.removeprefix('---').partition('```python\n')
    sig, _, doc = rest.partition('\n```')
    sig = re.sub(r'\s*#.*$', '', sig, flags=re.M)  # the docments move into the table
    m = re.search(r'^(#+) (\S+)', head, re.M)
    if m: head = head.replace(m[0], f'({_label(page, m[2])})=\n{m[0]}')  # a MyST target, as nbdev names its links
    arg = re.search(r'show_doc\((.*)\)\s*$', src, re.S)
    return _md_text(head + '```python\n' + sig + '\n```' + doc + (_param_table(arg[1], module) if arg else ''))

def adapt(nb:dict, module:str='', page:str='')->tuple[dict, dict]:
    "A `_proc` notebook turned into one MyST-NB renders: (notebook, front matter)"
    import yaml
    cells, fm = [], {}
    for c in nb['cells']:
        src = ''.join(c['source'])
        if c['cell_type'] == 'raw' and src.startswith('---'): fm = yaml.safe_load(src.strip().strip('-')) or {}; continue
        if c['cell_type'] == 'markdown':
            if src.startswith('<!-- WARNING'): continue
            cells.append(dict(cell_type='markdown', metadata={}, source=_md_text(src))); continue
        if c['cell_type'] != 'code': continue
        d, body = _directives(src)
        if d.get('output') == 'asis':  # show_doc and other markdown-producing cells: the markdown itself
            cells.append(dict(cell_type='markdown', metadata={}, source=_show_doc_md(c, body, module, page))); continue
        outs = [o for o in c.get('outputs', []) if not (o['output_type'] == 'stream' and o.get('name') == 'stderr')]
        for o in outs:
            if 'data' in o and 'text/markdown' in o['data']: o['data']['text/markdown'] = _md_text(''.join(o['data']['text/markdown']))
        tags = ['remove-input'] if d.get('echo') == 'false' else []
        if not body.strip() and not outs: continue
        cells.append(dict(cell_type='code', metadata={'tags': tags}, source=body, outputs=outs, execution_count=None))
    title, desc = fm.get('title'), fm.get('description')
    if title: cells.insert(0, dict(cell_type='markdown', metadata={}, source=f'# {title}' + (f'\n\n{{.lead}}\n{desc}' if desc else '')))
    meta = {k: v for k, v in nb.get('metadata', {}).items() if k in ('kernelspec', 'language_info')}
    return dict(cells=cells, metadata=meta, nbformat=4, nbformat_minor=4), fm

# ---------------------------------------------------------------- 4. the site
def _module_of(nb_path:Path)->str:
    "The module a notebook exports to (`#| default_exp`), '' if none"
    for c in json.loads(nb_path.read_text())['cells']:
        m = re.search(r'^#\|\s*default_exp\s+(\S+)', ''.join(c['source']), re.M)
        if m: return '' if m[1] == '__init__' else 'fastmix.' + m[1]
    return ''

def _toctrees(nav:dict)->str:
    "The sidebar as MyST toctrees (hidden: Sphinx's theme shows them), one per group"
    return '\n\n'.join(f"```{{toctree}}\n:hidden:\n:caption: {g}\n\n" + '\n'.join(pages) + '\n```' for g, pages in nav.items())

def write_site_src(proc:Path, dest:Path)->dict:
    "The adapted notebooks in `dest`, named as nbdev names the pages; return the sidebar {group: [page, ...]}"
    if dest.exists(): shutil.rmtree(dest)
    dest.mkdir(parents=True)
    nav, nbs = {'Get started': ['fastmix <self>']}, {}
    files = sorted(proc.glob('*.ipynb'), key=lambda f: (f.stem != 'index', f.stem))
    _labels.clear()
    for f in files:  # the show_doc targets first, so that links can tell a documented name from a page
        md = f.read_text()
        _labels.update(_label(page_name(f.stem), n) for n in re.findall(r'"#{2,4} (\S+?)(?:\\n)+"', md))
    for f in files:
        nbs[f.stem], _ = adapt(json.loads(f.read_text()), _module_of(ROOT/'nbs'/f.name), page_name(f.stem))
        if f.stem != 'index': nav.setdefault(group_of(f.stem), []).append(page_name(f.stem))
    nbs['index']['cells'].append(dict(cell_type='markdown', metadata={}, source=_toctrees(nav)))
    for stem, nb in nbs.items(): (dest/(page_name(stem) + '.ipynb')).write_text(json.dumps(nb, indent=1, ensure_ascii=False))
    return nav

def build_site(src:Path, site:Path=ROOT/'_docs'):
    "Render `src` with Sphinx + MyST-NB (configuration: tools/conf.py) into `site`"
    out = BUILD/'html'  # MyST-NB writes beside Sphinx's output folder (jupyter_execute/): keep that inside _build/
    for d in (out, site):
        if d.exists(): shutil.rmtree(d)
    subprocess.run([sys.executable, '-m', 'sphinx', '-b', 'html', '-q', '-j', '2', '-c', str(ROOT/'tools'), '-d', str(BUILD/'doctrees'),
                    str(src), str(out)], check=True)
    shutil.move(out, site)

def write_md_pages(src:Path, site:Path):
    "Each page as markdown beside its HTML (`<page>.html.md`, where the modules' docstrings point, as nbdev links them)"
    for f in src.glob('*.ipynb'):
        md = [c['source'] if c['cell_type'] == 'markdown' else f"```python\n{c['source']}\n```" for c in json.loads(f.read_text())['cells']
              if c['cell_type'] == 'markdown' or 'remove-input' not in c['metadata'].get('tags', [])]
        (site/f'{f.stem}.html.md').write_text('\n\n'.join(md) + '\n')

def build_html(n_workers:int=2, reuse:bool=False)->bool:
    "The whole site: execute and process the notebooks, adapt them, render; print the time of each step"
    t0 = time.time()
    if not (reuse and (ROOT/'_proc').exists()) and not run_notebooks(ROOT/'nbs', n_workers): return False
    t1 = time.time()
    write_site_src(ROOT/'_proc', BUILD/'site')
    build_site(BUILD/'site')
    write_md_pages(BUILD/'site', ROOT/'_docs')
    t2 = time.time()
    print(f'docs: notebooks executed and processed in {t1-t0:.0f} s, site rendered in {t2-t1:.0f} s -> _docs/index.html')
    return True

def main(args=None):
    p = argparse.ArgumentParser(description="Build README.md and the docs site from the notebooks")
    p.add_argument('--readme', action='store_true', help='write README.md from nbs/index.ipynb')
    p.add_argument('--check', action='store_true', help='fail if README.md differs from what nbs/index.ipynb makes')
    p.add_argument('--html', action='store_true', help='execute the notebooks and build the site in _docs/')
    p.add_argument('--reuse', action='store_true', help="with --html: render the _proc/ of the last build again")
    p.add_argument('--workers', type=int, default=2, help='notebooks executed/processed at once')
    a = p.parse_args(args)
    if not (a.readme or a.check or a.html): p.error('nothing to do: give --readme, --check and/or --html')
    readme = readme_from_index(ROOT/'nbs'/'index.ipynb')
    if a.readme: (ROOT/'README.md').write_text(readme)
    if a.check and (ROOT/'README.md').read_text() != readme:
        sys.exit('README.md differs from nbs/index.ipynb: run `python tools/docs.py --readme`')
    if a.html and not build_html(a.workers, a.reuse): sys.exit('docs: a notebook failed (above)')

if __name__ == '__main__': main()
