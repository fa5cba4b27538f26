"""The repository checks of nbdev-ci: the package is exactly what the notebooks export, the notebooks are clean,
and README.md is generated from nbs/index.ipynb."""
import subprocess, sys
from pathlib import Path
from readme import readme

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

def _snapshot(pattern):
    return {p: p.read_bytes() for p in sorted(ROOT.glob(pattern))}

def _changed(before, after): return sorted(str(p.relative_to(ROOT)) for p in set(before) | set(after) if before.get(p) != after.get(p))

def test_nbdev_export_is_a_noop():
    before = _snapshot('upgd_nb/**/*.py')
    subprocess.run([BIN/'nbdev_export'], cwd=ROOT, check=True, capture_output=True)
    assert not _changed(before, _snapshot('upgd_nb/**/*.py')), 'upgd_nb/ is out of sync with nbs/: run nbdev_export and commit'

def test_nbdev_clean_is_a_noop():
    before = _snapshot('nbs/**/*.ipynb')
    subprocess.run([BIN/'nbdev_clean'], cwd=ROOT, check=True, capture_output=True)
    assert not _changed(before, _snapshot('nbs/**/*.ipynb')), 'notebooks were not clean: run nbdev_clean and commit'

def test_parameters_tag_survives_cleaning():
    import json
    nb = json.loads((ROOT/'nbs'/'run.ipynb').read_text())
    assert sum('parameters' in c['metadata'].get('tags', []) for c in nb['cells']) == 1

def test_readme_is_generated_from_index():
    assert (ROOT/'README.md').read_text() == readme(), 'README.md is stale: run `make readme`'

def test_headline_table_is_current():
    from upgd_nb.headlines import stale
    assert stale(ROOT) is None, stale(ROOT)
