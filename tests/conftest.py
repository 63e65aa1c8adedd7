"Shared by every test file: `helpers` importable, warnings quiet, fastcore's star-imported `test_*` not collected, one thread"
import sys, os, warnings, pytest, torch
sys.path.insert(0, os.path.dirname(__file__))
warnings.filterwarnings('ignore', category=FutureWarning)

def pytest_collection_modifyitems(items):
    "Star imports from fastai bring fastcore's `test_*` helpers along: collect only tests defined in the test files"
    items[:] = [i for i in items if getattr(getattr(i, 'function', None), '__module__', i.module.__name__) == i.module.__name__]

@pytest.fixture(autouse=True, scope='session')
def one_thread():
    "2 shared cores (and `-n 2` workers): one intra-op thread is faster than two contending ones for these tiny tensors"
    n = torch.get_num_threads(); torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
