#!/usr/bin/env bash
# Packaging as users get it: build the sdist and the wheel (`python -m build`), install the wheel into a fresh virtual
# environment (plain venv: no system site-packages, no editable install; run from a temporary folder, so nothing of
# the repository is on the path) with its dependencies as pip resolves them here, and run tests/wheel_smoke.py there:
# the file lists of both archives, the import, and one training batch with every mixer.
#
# torch, torchvision, triton and the CUDA libraries (about 6 GB, 6 to 16 minutes to download and unpack here; pip's
# cache does not keep them on this machine) are lent read-only from PYTHON's environment: their folders are linked
# into a folder the new venv reads through a .pth file (which adds the folder and nothing else: no .pth file in it is
# run, so the repository's editable install is not seen). pip still resolves and installs everything else the wheel
# needs (fastai, numpy, matplotlib, ...), so an undeclared dependency fails here as it would for a user.
# FASTMIX_WHEEL_FULL=1 installs torch too, exactly as a user's `pip install` does.
# Usage: .ci/wheel_check.sh [PYTHON]   (PYTHON: an interpreter with `build` and torch; default .venv/bin/python)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
py="${1:-$root/.venv/bin/python}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
t0=$SECONDS
if ! "$py" -m build --outdir "$work/dist" "$root" > "$work/build.log" 2>&1; then
  tail -n 40 "$work/build.log"; echo "wheel check: python -m build failed"; exit 1
fi
rm -rf "$root/build"  # setuptools' scratch folder
whl=("$work"/dist/fastmix-*.whl) sdist=("$work"/dist/fastmix-*.tar.gz)
t1=$SECONDS
cp "$root/tests/wheel_smoke.py" "$work/"
cd "$work"
"$py" -m venv "$work/venv"  # a plain venv on the base interpreter: nothing of PYTHON's packages
if [ "${FASTMIX_WHEEL_FULL:-0}" != 1 ]; then
  mkdir "$work/lent"
  "$py" - "$work/lent" <<'EOF'
import importlib.metadata as md, os, re, sys, sysconfig
lent, site = sys.argv[1], sysconfig.get_paths()['purelib']
heavy = re.compile(r'(torch|torchvision|triton|nvidia-.*|cuda-.*)')
tops = {f.parts[0] for d in md.distributions() if heavy.fullmatch(d.metadata['Name'].lower().replace('_', '-'))
        for f in d.files or [] if f.parts[0] != '..'}
for t in sorted(tops): os.symlink(os.path.join(site, t), os.path.join(lent, t))
EOF
  echo "$work/lent" > "$("$work/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/_lent_torch.pth"
fi
"$work/venv/bin/pip" install -q --disable-pip-version-check "${whl[0]}" > "$work/pip.log" 2>&1 || { tail -n 40 "$work/pip.log"; exit 1; }
t2=$SECONDS
MPLBACKEND=Agg PYTHONWARNINGS=ignore "$work/venv/bin/python" wheel_smoke.py "${whl[0]}" "${sdist[0]}"
echo "wheel check: build $((t1 - t0)) s, fresh venv + install $((t2 - t1)) s, smoke test $((SECONDS - t2)) s"
