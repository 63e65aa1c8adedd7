"The benchmark scripts measure fastmix as users run it: a batch handed over as fastai's loop hands it, mixed in place"
import sys, torch
from pathlib import Path
sys.path.insert(0, str(Path(__file__).parents[1] / 'benchmarks'))
from contenders import fastmix_mix_contenders
from runner import run_interleaved

def test_the_benchmark_hands_batches_over_as_fastais_loop_does():
    """fastmix mixes in place only a batch nothing else holds; a runner that kept its clone while timing would time the
    copy into new memory instead (5-8x slower at 64x3x224x224, as the table showed before `handed`)"""
    x, y = torch.rand(16, 3, 48, 48), torch.randint(0, 10, (16,))  # above the small-batch gather into new memory
    cs = [c for c in fastmix_mix_contenders() if c.name in ('fastmix MixUp(batch)', 'fastmix CutMix(batch)', 'fastmix FMix(sample)')]
    pairs = []
    def timer(fn, box):
        p = box[0].data_ptr(); out = fn(box)
        pairs.append((p, out[0][0].data_ptr())); return 0, out
    run_interleaved(cs, (x, y), x.clone, reps=3, warmup=1, timer=timer)
    assert len(cs) == 3 and len(pairs) == 12 and all(a == b for a, b in pairs)
