"""The Quarto site's offline check on this repository (`make site-check`): every page of `_quarto.yml` rendered with
pandoc, every citation key, relative link and anchor resolved. The check's own tests (a fixture site that passes,
and broken copies that fail) are in nbs/90_site.ipynb."""
import time
from pathlib import Path
from upgd_nb.site import check, pages

ROOT = Path(__file__).resolve().parents[1]

def test_site_check(tmp_path):
    t = time.time()
    problems = check(ROOT, tmp_path/'build')
    print(f'site check: {len(pages(ROOT))} pages, {len(problems)} problem(s), {time.time() - t:.1f} s', *problems, sep='\n')
    assert not problems, f'{len(problems)} problem(s) in the site (python -m upgd_nb.site check):\n' + '\n'.join(problems)
