"""Distributed data-parallel training with every fastmix method: one process per rank, run by `tests/test_distributed.py`

Each rank builds a fastai `Learner` on the synthetic data of `tests/helpers.py`, fits one short epoch inside
`learn.distrib_ctx()` with every mixer of `fastmix.mixers.MIXERS` in turn, and writes what it saw to `OUT_DIR/rank{RANK}.json`:
the dataset indices of every training batch it mixed, the mix it drew, whether the mixed batch is the mix of its own
batch, and whether `learn.loss_func` is the same object after the fit.

On CPUs (what the test runs; gloo backend, which accelerate picks when there is no GPU):

    python -m torch.distributed.run --nproc_per_node 2 --master_port 29512 tests/dist_script.py OUT_DIR

On GPUs (nccl backend; one process per GPU; accelerate picks nccl and puts each rank on `cuda:LOCAL_RANK`):

    torchrun --nproc_per_node 2 tests/dist_script.py OUT_DIR      # or: accelerate launch tests/dist_script.py OUT_DIR

`fastai.distributed` needs the `accelerate` package (`distrib_ctx` wraps the model with `accelerate.Accelerator`).
"""
import os, sys, json, warnings
warnings.filterwarnings('ignore')
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import torch, torch.distributed as dist
from fastai.basics import *
from fastai.distributed import *
from fastai.distributed import DistributedDL
from fastmix.all import *
from fastmix.core import *
from fastmix.geometry import *
from fastmix.testing import *
from fastmix.mixers import MIXERS
from helpers import X, synth_learner

HANG_S = 150  # from the start: the whole run takes about 10 s on 2 CPU cores (the test's own limit is 180 s)

def _broadcast(self, t, rank):
    """Shim for `DistributedDL._broadcast` in fastai 2.8: it calls `.cuda()` unconditionally, since nccl only takes CUDA
    tensors. gloo takes CPU tensors: keep the tensor on the CPU there, and go through CUDA only for nccl."""
    t = LongTensor(t)
    if dist.get_backend() == 'nccl': t = t.cuda()
    dist.broadcast(t, rank)
    return t.cpu().tolist()
DistributedDL._broadcast = _broadcast

def dataset_index(img):
    "Index in the synthetic data set `X` of a (C, H, W) image (every image there is distinct)"
    hit = (X.view(len(X), -1) == img.detach().cpu().float().view(1, -1)).all(1).nonzero().flatten().tolist()
    assert len(hit) == 1, hit
    return hit[0]

class Record(Callback):
    "Before the mixer: the dataset indices of this rank's batch, and the batch itself"
    order = -1
    def __init__(self, mixer, log): self.mixer,self.log = mixer,log
    def before_batch(self):
        if not self.training: return
        self.log.append({'idxs': [dataset_index(x) for x in self.xb[0]], 'x0': self.xb[0].clone()})

class After(Callback):
    "After the mixer: the mix it drew, and whether the mixed batch is that mix of this rank's own batch"
    order = 1
    def __init__(self, mixer, log): self.mixer,self.log = mixer,log
    def before_batch(self):
        if not self.training: return
        rec, mix = self.log[-1], self.mixer.mix
        x0 = rec.pop('x0')
        rec['mixed'] = mix is not None
        if mix is None: return
        rec['weights'] = mix.weights.tolist()
        rec['idx'] = mix.idx.tolist()
        # the mixed batch is exactly the mix of this rank's own batch: nothing from another rank's shard
        # (a mixer of hidden activations leaves the input as it is)
        rec['own_shard'] = bool(torch.equal(self.xb[0], mix.geom.apply(x0) if self.mixer.mixes_input else x0))
        rec['in_range'] = bool((mix.idx >= 0).all() and (mix.idx < len(x0)).all())

def made_on_rank_0(make):
    "A mixer made in a process of rank 0, as a learner exported there and loaded on every rank holds"
    rank = os.environ['RANK']; os.environ['RANK'] = '0'
    try: return make()
    finally: os.environ['RANK'] = rank

def main(out_dir):
    rank, world = rank_distrib(), num_distrib()
    res = {'rank': rank, 'world': world, 'methods': {}}
    for name, m in [*MIXERS.items(), ('mixup made on rank 0', lambda seed: made_on_rank_0(lambda: MIXERS['mixup'](seed=seed)))]:
        mixer = m(seed=0)
        log = []
        learn = synth_learner(cbs=[mixer, Record(mixer, log), After(mixer, log)])
        if hasattr(learn, 'progress'): learn.remove_cb(learn.progress)
        lf = learn.loss_func
        # no GPU: accelerate must be told to run on the CPU (it then wraps the model in DDP over gloo), and the
        # model's BatchNorm layers stay as they are (SyncBatchNorm runs on GPUs only)
        gpu = torch.cuda.is_available()
        with learn.distrib_ctx(sync_bn=gpu, cpu=not gpu):
            res['backend'] = dist.get_backend()
            learn.fit(1, 1e-2)
        res['methods'][name] = {'batches': log, 'loss_func_same': learn.loss_func is lf,
                                'losses_finite': bool(all(np.isfinite(float(l)) for l in learn.recorder.losses)),
                                'n_losses': len(learn.recorder.losses),
                                'model_unwrapped': not hasattr(learn.model, 'module'),
                                # DDP averaged the gradients of the mixed losses: every rank ends with the same weights
                                'params': [float(p.double().sum()) for p in learn.model.parameters()]}
    with open(os.path.join(out_dir, f'rank{rank}.json'), 'w') as f: json.dump(res, f)
    dist.barrier()

if __name__ == '__main__':
    import faulthandler  # a rank stuck in a collective prints where every thread is, and exits (the test says which)
    faulthandler.dump_traceback_later(HANG_S, exit=True)
    main(sys.argv[1])
    if dist.is_initialized(): dist.destroy_process_group()
