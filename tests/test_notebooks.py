"""Every notebook in nbs/ executed as `nbdev_test` would (cells flagged with settings.ini's `tst_flags` skipped),
one pytest item each, so that the suite ends with pytest's summary line. Each passing notebook leaves its executed copy
in _build/executed/ (upgd_nb.site.execute_notebook), which the site check that follows shows on the pages.
Set UPGD_NB_TEST_FLAGS="slow" (space separated) to also run the cells with those flags."""
import os
from pathlib import Path
import pytest
from nbdev.config import get_config
from upgd_nb.site import execute_notebook, executed_notebooks

ROOT = Path(__file__).resolve().parents[1]
CFG = get_config(path=ROOT)
NBS = ROOT/CFG.nbs_path
NOTEBOOKS = executed_notebooks(ROOT)   # nbdev's glob of nbs/, minus folders with a .notest file: the ones the site shows executed

@pytest.mark.parametrize('nb', NOTEBOOKS, ids=[str(p.relative_to(NBS)) for p in NOTEBOOKS])
def test_notebook(nb):
    ok, secs = execute_notebook(nb, ROOT, skip_flags=CFG.tst_flags.split(), force_flags=os.environ.get('UPGD_NB_TEST_FLAGS', '').split(),
                                basepath=CFG.config_path)
    assert ok, f'{nb.name} failed: the traceback is in the captured stderr above'
