"The one list of mixers: every entry is a mixer users can import, built with the arguments the tools give it, and the command line takes it"
import pytest
import fastmix.all
from fastmix.core import MixHandler
from fastmix.mixers import MIXERS
from fastmix.cli import parser

@pytest.mark.parametrize('name', MIXERS)
def test_every_mixer_is_exported_and_builds_as_asked(name):
    m = MIXERS[name]
    assert m.name == name and issubclass(m.cls, MixHandler)
    assert getattr(fastmix.all, m.cls.__name__) is m.cls  # what the tools run, users can `from fastmix.all import`
    cb = m(mode='sample', p=.5, seed=3)
    assert type(cb) is m.cls and (cb.mode, cb.p, cb.seed) == ('sample', .5, 3)


def test_the_command_line_takes_every_mixer():
    assert parser().parse_args(['demo', '--methods', ','.join(MIXERS)]).methods == list(MIXERS)
    assert [parser().parse_args(['preview', '--method', n]).method for n in MIXERS] == list(MIXERS)
