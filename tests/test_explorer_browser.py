"""The explorer (nbs/explore.ipynb) in a real browser: JupyterLab over a temporary outputs tree of two short runs,
headless Chromium driven by Selenium. Runs every cell, moves the step slider and picks another metric, and checks
that the figure is redrawn each time and that the browser console has no errors; the last screen is saved to
tests/artifacts/explorer.png. Skipped (with how to install them) where Chromium or its driver is missing."""
import json, os, shutil, signal, socket, subprocess, sys, time, urllib.request
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
NOTEBOOK = 'nbs/explore.ipynb'
ARTIFACT = ROOT/'tests'/'artifacts'/'explorer.png'

def _which(env:str, *names:str) -> str|None:
    "$env if set (and there), else the first of `names` on the PATH or in /usr/bin."
    if os.environ.get(env): return os.environ[env] if Path(os.environ[env]).is_file() else None
    for n in names:
        if p := shutil.which(n) or shutil.which(n, path='/usr/bin'): return p
    return None

CHROMIUM = _which('UPGD_NB_CHROMIUM', 'chromium', 'chromium-browser', 'google-chrome')
CHROMEDRIVER = _which('UPGD_NB_CHROMEDRIVER', 'chromedriver')
if not (CHROMIUM and CHROMEDRIVER):
    pytest.skip(f"needs Chromium and chromedriver (found browser={CHROMIUM}, driver={CHROMEDRIVER}): on Debian/Ubuntu "
                "`apt-get install -y chromium chromium-driver`; elsewhere point $UPGD_NB_CHROMIUM and $UPGD_NB_CHROMEDRIVER at them",
                allow_module_level=True)

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select, WebDriverWait

# Settings of this JupyterLab only: no autosave (the notebook in nbs/ is never written), every cell kept in the DOM,
# and no news or update checks (this machine is offline; a failed fetch would be a console error of no interest).
SETTINGS = {'@jupyterlab/docmanager-extension/plugin.jupyterlab-settings': {'autosave': False},
            '@jupyterlab/notebook-extension/tracker.jupyterlab-settings': {'windowingMode': 'none'},
            '@jupyterlab/apputils-extension/notification.jupyterlab-settings': {'checkForUpdates': False, 'fetchNews': 'false'}}

def _free_port() -> int:
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

def _outputs(root:Path):
    "Two short runs with series (UPGD and the study's SGD) in root/demo."
    from upgd_nb.run import run
    kw = dict(task='synthetic', n_steps=600, stats='utility:50,units:50,input_curvature:50', stats_series=True,
              out_root=str(root), experiment='demo', progress=False)
    run(kw, learner='upgd', sigma=0.01); run(kw, learner='upgd', sigma=0.0, protect=False)

def _start_lab(tmp:Path, port:int) -> subprocess.Popen:
    for name, d in SETTINGS.items():
        p = tmp/'settings'/name; p.parent.mkdir(parents=True, exist_ok=True); p.write_text(json.dumps(d))
    env = dict(os.environ, UPGD_NB_OUTPUTS=str(tmp/'outputs'), JUPYTER_CONFIG_DIR=str(tmp/'config'), JUPYTER_DATA_DIR=str(tmp/'data'),
               JUPYTER_RUNTIME_DIR=str(tmp/'runtime'), IPYTHONDIR=str(tmp/'ipython'), PYTHONUNBUFFERED='1')
    cmd = [str(BIN/'jupyter'), 'lab', '--no-browser', f'--port={port}', '--ServerApp.ip=127.0.0.1', "--IdentityProvider.token=''",
           "--PasswordIdentityProvider.hashed_password=''", f'--ServerApp.root_dir={ROOT}', '--LabApp.expose_app_in_browser=True',
           f'--LabApp.user_settings_dir={tmp/"settings"}', f'--LabApp.workspaces_dir={tmp/"workspaces"}',
           f'--FileCheckpoints.checkpoint_dir={tmp/"checkpoints"}']   # not nbs/.ipynb_checkpoints/
    if os.geteuid() == 0: cmd.append('--allow-root')   # containers and CI machines often run as root
    with open(tmp/'lab.log', 'wb') as log:
        return subprocess.Popen(cmd, env=env, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)

def _wait_lab(proc:subprocess.Popen, port:int, tmp:Path, timeout:float=60):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if proc.poll() is not None: raise RuntimeError(f'jupyter lab exited ({proc.returncode}):\n' + (tmp/'lab.log').read_text()[-3000:])
        try:
            with urllib.request.urlopen(f'http://127.0.0.1:{port}/api/status', timeout=2) as r:
                if r.status == 200: return
        except OSError: time.sleep(0.3)
    raise TimeoutError(f'jupyter lab did not answer in {timeout}s:\n' + (tmp/'lab.log').read_text()[-3000:])

def _kernels(runtime:Path) -> list[int]:
    "Pids of the kernels this server started (their connection files are in `runtime`)."
    pids = []
    for p in Path('/proc').glob('[0-9]*'):
        try: cmd = (p/'cmdline').read_bytes().decode(errors='replace')
        except OSError: continue
        if str(runtime) in cmd and 'ipykernel' in cmd: pids.append(int(p.name))
    return pids

def _stop_lab(proc:subprocess.Popen, runtime:Path):
    kernels = _kernels(runtime)
    if proc.poll() is None:
        proc.terminate()   # SIGTERM: jupyter shuts its kernels down and exits
        try: proc.wait(20)
        except subprocess.TimeoutExpired: proc.kill(); proc.wait()
    for pid in kernels:   # a kernel the server did not manage to shut down
        try: os.kill(pid, signal.SIGKILL)
        except ProcessLookupError: pass

def _driver() -> webdriver.Chrome:
    o = webdriver.ChromeOptions()
    o.binary_location = CHROMIUM
    for a in ('--headless=new', '--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--window-size=1600,1300'): o.add_argument(a)
    o.set_capability('goog:loggingPrefs', {'browser': 'ALL'})
    return webdriver.Chrome(options=o, service=Service(CHROMEDRIVER))

RUN_ALL = """
const done = arguments[arguments.length - 1];
(async () => {
  const app = window.jupyterapp;
  await app.restored;
  let w = app.shell.currentWidget;
  for (let i = 0; i < 300 && !(w && w.sessionContext && w.content && w.content.widgets); i++) {
    await new Promise(r => setTimeout(r, 100)); w = app.shell.currentWidget;
  }
  await w.context.ready; await w.sessionContext.ready;
  for (let i = 0; i < 600 && !w.sessionContext.session?.kernel; i++) await new Promise(r => setTimeout(r, 100));
  await app.commands.execute('notebook:run-all-cells');
  done('ok');
})().catch(e => done('error: ' + e));
"""

CELLS = """
const cells = window.jupyterapp.shell.currentWidget.content.widgets.filter(c => c.model.type === 'code');
const errors = cells.flatMap(c => c.model.toJSON().outputs.filter(o => o.output_type === 'error').map(o => o.ename + ': ' + o.evalue));
return {pending: cells.filter(c => !c.model.executionCount || c.promptNode?.textContent.includes('*')).length, errors: errors};
"""   # the code cells not run yet (or running), and the errors of those run

def _figure(d) -> str:
    "The src of the explorer's figure (the image in its output), '' while there is none."
    return d.execute_script("const i = document.querySelector('.upgd-explorer .widget-output img'); return i ? i.src : '';")

IDLE = "return window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status === 'idle';"

def _changed(d, before:str, what:str, timeout:float=30) -> str:
    "Wait for the figure to differ from `before`, then for the kernel to be idle and the figure to stay as it is for a second."
    try: WebDriverWait(d, timeout, 0.2).until(lambda d: _figure(d) not in ('', before))
    except Exception: raise AssertionError(f'the figure was not redrawn after {what}') from None
    last, since = _figure(d), time.time()
    while time.time() - since < 1:
        time.sleep(0.2)
        if _figure(d) != last or not d.execute_script(IDLE): last, since = _figure(d), time.time()
    return last

def test_explorer_in_jupyterlab(tmp_path):
    t0 = time.time()
    nb_before, checkpoints = (ROOT/NOTEBOOK).read_bytes(), (ROOT/'nbs'/'.ipynb_checkpoints').exists()
    _outputs(tmp_path/'outputs')
    port = _free_port()
    lab, d = _start_lab(tmp_path, port), None
    try:
        _wait_lab(lab, port, tmp_path)
        d = _driver()
        d.set_script_timeout(120)
        d.get(f'http://localhost:{port}/lab/tree/{NOTEBOOK}')
        WebDriverWait(d, 60, 0.2).until(lambda d: d.execute_script('return !!(window.jupyterapp && window.jupyterapp.shell)'))
        assert d.execute_async_script(RUN_ALL) == 'ok'
        WebDriverWait(d, 120, 0.3).until(lambda d: (c := d.execute_script(CELLS))['errors'] or not c['pending'])
        errors = d.execute_script(CELLS)['errors']
        assert not errors, 'a cell failed:\n' + '\n'.join(errors)
        # the explorer of the last cell, over the temporary outputs (its demo experiment), has drawn its figure
        WebDriverWait(d, 30, 0.2).until(lambda d: _figure(d) != '')
        ui = d.find_element(By.CSS_SELECTOR, '.upgd-explorer')
        assert 'demo' in Select(ui.find_element(By.CSS_SELECTOR, 'select')).first_selected_option.text
        first = _figure(d)

        # move the step slider with the keyboard, as a person would: focus its handle, one step left
        handle = ui.find_element(By.CSS_SELECTOR, '.upgd-explorer-step .noUi-handle')
        readout = ui.find_element(By.CSS_SELECTOR, '.upgd-explorer-step .widget-readout')
        assert readout.text == '599'
        d.execute_script('arguments[0].scrollIntoView({block: "center"})', handle)
        handle.click(); handle.send_keys(Keys.ARROW_LEFT)
        second = _changed(d, first, 'moving the step slider')
        assert readout.text == '549'

        # pick another metric in its dropdown
        metric = next(s for s in ui.find_elements(By.CSS_SELECTOR, '.widget-dropdown')
                      if s.find_element(By.CSS_SELECTOR, 'label').text == 'metric')
        Select(metric.find_element(By.CSS_SELECTOR, 'select')).select_by_visible_text('utility/tail_share')
        _changed(d, second, 'choosing another metric')

        d.execute_script("window.jupyterapp.shell.collapseLeft()")   # room for the explorer in the screenshot
        time.sleep(0.5)
        d.execute_script('arguments[0].scrollIntoView({block: "start"})', ui)
        ARTIFACT.parent.mkdir(exist_ok=True)
        d.save_screenshot(str(ARTIFACT))
        d.execute_script("console.warn('upgd-explorer-test: the console is captured')")
        log = d.get_log('browser')
        assert any('the console is captured' in e['message'] for e in log), 'the browser console was not captured'
        print('browser console:', *(f"{e['level']}: {e['message'][:300]}" for e in log), sep='\n  ')
        severe = [e for e in log if e['level'] == 'SEVERE']
        assert not severe, 'errors in the browser console:\n' + '\n'.join(e['message'] for e in severe)
    finally:
        if d is not None: d.quit()
        _stop_lab(lab, tmp_path/'runtime')
    assert (ROOT/NOTEBOOK).read_bytes() == nb_before, 'the notebook was written'
    assert checkpoints or not (ROOT/'nbs'/'.ipynb_checkpoints').exists(), 'jupyter wrote nbs/.ipynb_checkpoints/'
    print(f'browser test: {time.time() - t0:.1f}s')
