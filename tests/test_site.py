"""The Quarto site's offline check on this repository (`make site-check`): every page of `_quarto.yml` rendered with
pandoc, every citation key, relative link and anchor resolved, every cell that should show an output showing one (the
notebooks that tests/test_notebooks.py executed are shown with the outputs of that run). The check's own tests (a
fixture site that passes, and broken copies that fail) are in nbs/90_site.ipynb.

Then Home and a library page (35_optim) as a reader sees them: the check's HTML previews opened in headless Chromium,
screenshots saved to tests/artifacts/ (kept out of git), and the pages must carry their outputs (the headline table on
Home; on 35_optim the values that end its lesson cells). Skipped where Chromium or its driver is missing."""
import os, re, shutil, time
from pathlib import Path
import pytest
from upgd_nb.site import check, pages

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT/'tests'/'artifacts'

@pytest.fixture(scope='module')
def site(tmp_path_factory):
    t, dest = time.time(), tmp_path_factory.mktemp('site')/'build'
    problems = check(ROOT, dest)
    print(f'site check: {len(pages(ROOT))} pages, {len(problems)} problem(s), {time.time() - t:.1f} s', *problems, sep='\n')
    return dest, problems

def test_site_check(site):
    _, problems = site
    assert not problems, f'{len(problems)} problem(s) in the site (python -m upgd_nb.site check):\n' + '\n'.join(problems)

def _which(env:str, *names:str) -> str|None:
    if os.environ.get(env): return os.environ[env] if Path(os.environ[env]).is_file() else None
    return next((p for n in names if (p := shutil.which(n) or shutil.which(n, path='/usr/bin'))), None)

def test_pages_in_a_browser(site):
    chromium, driver = _which('UPGD_NB_CHROMIUM', 'chromium', 'chromium-browser', 'google-chrome'), _which('UPGD_NB_CHROMEDRIVER', 'chromedriver')
    if not (chromium and driver): pytest.skip(f'needs Chromium and chromedriver (found browser={chromium}, driver={driver})')
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    dest, _ = site
    o = webdriver.ChromeOptions(); o.binary_location = chromium
    for a in ('--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--window-size=1400,1800'): o.add_argument(a)
    b = webdriver.Chrome(options=o, service=Service(driver))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        b.get((dest/'_check'/'nbs'/'index.html').as_uri())
        rows = b.find_elements(By.CSS_SELECTOR, 'table tbody tr')
        text = b.find_element(By.TAG_NAME, 'body').text
        b.save_screenshot(str(ARTIFACTS/'site-home.png'))
        assert any('I-P MNIST: upgd' in r.text for r in rows), 'Home shows no headline table'
        assert re.search(r'0\.\d{4} ± 0\.\d{4} \(\d+ seeds\)', text), 'Home shows no result numbers'
        b.get((dest/'_check'/'nbs'/'optim.html').as_uri())
        blocks = b.find_elements(By.CSS_SELECTOR, 'pre')
        b.save_screenshot(str(ARTIFACTS/'site-35_optim.png'))
        codes = len(b.find_elements(By.CSS_SELECTOR, 'pre.python, div.sourceCode.python, pre.sourceCode.python'))
        print(f'35_optim page: {len(blocks)} <pre> blocks ({codes} of code); screenshots in {ARTIFACTS}')
        assert len(blocks) - codes >= 5, f'35_optim shows {len(blocks) - codes} output blocks: its lesson outputs are missing'
    finally: b.quit()
