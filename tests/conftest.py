import sys, os, warnings
sys.path.insert(0, os.path.dirname(__file__))
warnings.filterwarnings('ignore', category=FutureWarning)

def pytest_collection_modifyitems(items):
    "Star imports from fastai bring fastcore's `test_*` helpers along: collect only tests defined in the test files"
    items[:] = [i for i in items if getattr(getattr(i, 'function', None), '__module__', i.module.__name__) == i.module.__name__]
