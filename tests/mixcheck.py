"Exact checks of one mixed batch, for every method: label weights, pixel provenance, untouched images"
import numpy as np, torch
from torch import Tensor
from fastmix.all import *
from fastmix.core import *
from fastmix.geometry import *
from fastmix.testing import *

def check_weights(mix, bs:int):
    "Weights (B, K) in [0, 1] with rows summing to 1; indices (K, B) inside the batch"
    w = mix.weights.double()
    assert w.shape == (bs, mix.K) and mix.idx.shape == (mix.K, bs)
    assert ((w >= 0) & (w <= 1)).all(), w
    torch.testing.assert_close(w.sum(1), torch.ones(bs, dtype=torch.float64), rtol=0, atol=1e-6)
    assert ((mix.idx >= 0) & (mix.idx < bs)).all(), mix.idx

def _rect(geom, n, k):
    r = geom.rects
    return r[min(n, len(r) - 1), k]

def check_provenance(x:Tensor, xm:Tensor, mix):
    """`x` is a `provenance_batch`. Cut methods: every output pixel is one source pixel (the same for all channels),
    painted by the layer `Paste.owner` says, moved rigidly by that layer's offset, from that layer's source image;
    the label weight of a layer is exactly its share of the pixels, and so is the summed weight of each source image.
    Blends: the output is `Σ_k w_k · x[idx_k]`."""
    bs, c, h, w = x.shape
    assert xm.shape == x.shape and xm.dtype == x.dtype
    check_weights(mix, bs)
    wts = mix.weights.double()
    if not mix.geom.cuts:
        exp = sum(wts[:, k].view(-1, 1, 1, 1) * x.double()[mix.idx[k]] for k in range(mix.K))
        torch.testing.assert_close(xm.double(), exp, rtol=1e-6, atol=1e-6 * float(x.abs().max()))
        return
    b, i, j = decode_provenance(xm, h, w)
    assert (b == b[:, :1]).all() and (i == i[:, :1]).all() and (j == j[:, :1]).all()  # channels move together
    b, i, j = b[:, 0], i[:, 0], j[:, 0]
    assert ((b >= 0) & (b < bs) & (i >= 0) & (i < h) & (j >= 0) & (j < w)).all()
    own = mix.geom.owner(h, w, torch.device('cpu')).long()
    rows, cols = torch.arange(h).view(h, 1).expand(h, w), torch.arange(w).view(1, w).expand(h, w)
    for n in range(bs):
        o = own[min(n, len(own) - 1)]
        for k in range(mix.K):
            m = o == k
            assert abs(wts[n, k].item() - m.double().mean().item()) < 1e-6, (n, k)
            if not m.any(): continue
            y0, y1, x0, x1, sy, sx = _rect(mix.geom, n, k).tolist()
            assert (b[n][m] == mix.idx[k, n]).all(), (n, k)
            assert ((i[n] - rows)[m] == sy - y0).all() and ((j[n] - cols)[m] == sx - x0).all(), (n, k)
        for s in mix.idx[:, n].unique().tolist():  # a source may fill several layers: its weights add up
            share = (b[n] == s).double().mean().item()
            assert abs(wts[n, mix.idx[:, n] == s].sum().item() - share) < 1e-6, (n, s)

def check_untouched_rows(x:Tensor, xm:Tensor, mix):
    "An output whose own image has weight exactly 1 (all others exactly 0) is that image, bit for bit"
    for n in range(x.shape[0]):
        w = mix.weights[n]
        if ((w == 1) & (mix.idx[:, n] == n)).any() and (w == 0).sum() == mix.K - 1: assert torch.equal(xm[n], x[n]), n
