"""Fault injection on the run store (issue 21): damaged, cut-off, half-written and planted files, stale locks, racing
launchers, a full disk and a damaged Optuna study, each tried on small synthetic runs. Every case must end in a clear
error or a clean recovery (a resumed run equal to the uninterrupted one), with no finished result lost and no damaged
state used. The suite's figure is printed at the end of pytest's report:
`faults tried: N, detected or recovered: N, silent: 0` (a case that fails its checks counts as silent)."""
import errno, os, random, shutil, signal, subprocess, sys, time
from contextlib import contextmanager
from pathlib import Path
import pandas as pd
import pytest
from upgd_nb import store
from upgd_nb.store import CKPT, DamagedFile, Recovered, RunLocked, checkpoint_step, load_run, read_config
from upgd_nb.config import RunConfig, run_dir
from upgd_nb.run import run, run_many, plan, _run_group

OUTCOMES = {}   # case -> 'detected' (a clear error) | 'recovered' (a clean recovery) | 'silent'
# module engine, UPGD with noise, a statistics series: checkpoints at every 100 steps, series parts with them
CFG = dict(task='synthetic', n_steps=600, checkpoint_every=100, lr=0.05, learner='upgd', sigma=0.01, engine='module',
           stats='norms:10', stats_series=True, progress=False)
KILL_AFTER = 4   # the killed run dies right after its 4th checkpoint: checkpoint.pt at step 400, checkpoint.prev.pt at 300

@pytest.fixture(scope='module', autouse=True)
def figure(request):
    "Print the suite's figure in pytest's terminal summary."
    class Figure:
        def pytest_terminal_summary(self, terminalreporter):
            n, ok = len(OUTCOMES), sum(v != 'silent' for v in OUTCOMES.values())
            terminalreporter.write_line(f'faults tried: {n}, detected or recovered: {ok}, silent: {n - ok}')
    request.config.pluginmanager.register(Figure(), 'upgd-nb-faults-figure')
    yield

@contextmanager
def fault(name:str):
    "One fault case: silent unless its body ends and names its outcome."
    OUTCOMES[name] = 'silent'
    class Case: outcome = 'silent'
    c = Case(); yield c
    assert c.outcome in ('detected', 'recovered'), name
    OUTCOMES[name] = c.outcome

# ---------------------------------------------------------------- fixtures: an uninterrupted run and a killed one
@pytest.fixture(scope='module')
def ref(tmp_path_factory):
    return run(**CFG, experiment='ref', out_root=str(tmp_path_factory.mktemp('ref')))

KILLED = '''
import os, signal, sys, torch
torch.set_num_threads(1)
import upgd_nb.run as R
save, n = R.save_checkpoint, [0]
def killing(*a):
    save(*a); n[0] += 1
    if n[0] == {k}: os.kill(os.getpid(), signal.SIGKILL)   # SIGKILL right after a checkpoint
R.save_checkpoint = killing
R.run(**{cfg!r}, experiment='k', out_root=sys.argv[1])
'''

@pytest.fixture(scope='module')
def killed(tmp_path_factory):
    "The folder of a run killed with SIGKILL right after its 4th checkpoint (its lock left behind)."
    root = tmp_path_factory.mktemp('killed')
    p = subprocess.run([sys.executable, '-c', KILLED.format(k=KILL_AFTER, cfg=CFG), str(root)], capture_output=True, text=True, timeout=120)
    assert p.returncode == -signal.SIGKILL, p.stderr[-2000:]
    rd = run_dir(RunConfig(**CFG, experiment='k', out_root=str(root)))
    assert read_config(rd)['status'] == 'running' and (rd/'.lock').exists()
    return rd

def copy(rd:Path, root:Path) -> Path:
    "A copy of run folder `rd` under out_root `root`, same experiment and run id."
    dst = root/rd.parent.name/rd.name; shutil.copytree(rd, dst); return dst

def again(root:Path, experiment:str='k', **kw):
    return run(**{**CFG, **kw}, experiment=experiment, out_root=str(root))

def same(r, ref):
    "The run `r` equals the uninterrupted one, metrics and series, and finished cleanly."
    assert r.status == 'done'
    pd.testing.assert_frame_equal(r.metrics, ref.metrics)
    pd.testing.assert_frame_equal(r.series, ref.series)
    assert not [p for p in r.dir.rglob('*') if p.name.endswith('.tmp') or p.name in CKPT or p.name == '.lock']

def flip(p:Path, n:int=8, seed:int=0):
    raw = bytearray(p.read_bytes())
    for i in random.Random(seed).sample(range(len(raw)), n): raw[i] ^= 0xFF
    p.write_bytes(bytes(raw))

def truncate(p:Path): p.write_bytes(p.read_bytes()[:p.stat().st_size // 2])

def zero64(p:Path, at:int|None=None):
    raw = bytearray(p.read_bytes()); at = len(raw) // 2 if at is None else at
    raw[at:at + 64] = bytes(64); p.write_bytes(bytes(raw))

def files(rd:Path) -> dict:
    return {str(p.relative_to(rd)): p.read_bytes() for p in sorted(rd.rglob('*')) if p.is_file()}

# ---------------------------------------------------------------- checkpoints
@pytest.mark.parametrize('how', ['zero64', 'flip', 'truncate'])
def test_checkpoint_damaged_falls_back(killed, ref, tmp_path, how):
    "The newest checkpoint damaged (the issue's case: 64 bytes zeroed): resumed from the previous one, said, and equal to the uninterrupted run."
    with fault(f'checkpoint.pt of a killed run: {how}') as f:
        rd = copy(killed, tmp_path)
        dict(zero64=zero64, flip=flip, truncate=truncate)[how](rd/'checkpoint.pt')
        with pytest.warns(Recovered, match='checkpoint.pt'): r = again(tmp_path)
        (rec,) = r.info['recovered']
        assert (rec['file'], rec['resumed_from'], rec['step']) == ('checkpoint.pt', 'checkpoint.prev.pt', 300), rec
        assert r.info['resumed'][-1]['step'] == 300
        same(r, ref); f.outcome = 'recovered'

def test_both_checkpoints_damaged_refuses(killed, tmp_path):
    with fault('checkpoint.pt and checkpoint.prev.pt both damaged') as f:
        rd = copy(killed, tmp_path); zero64(rd/'checkpoint.pt'); truncate(rd/'checkpoint.prev.pt')
        before = files(rd)
        with pytest.raises(DamagedFile, match=r"no intact checkpoint in .*checkpoint\.pt.*checkpoint\.prev\.pt.*if_exists='overwrite'"): again(tmp_path)
        assert files(rd) == before   # refused before anything was written
        f.outcome = 'detected'

class Planted:
    "An object whose unpickling writes a marker file."
    def __init__(self, marker): self.marker = str(marker)
    def __reduce__(self): return (exec, (f"open({self.marker!r}, 'w').write('ran')",))

def plant(p:Path, marker:Path, with_digest:bool):
    import io, torch
    buf = io.BytesIO(); torch.save(dict(step=400, rows=[], x=Planted(marker)), buf); data = buf.getvalue()
    p.write_bytes(store._HEAD + store.sha256(data).encode() + b'\n' + data if with_digest else data)

def test_planted_pickle_refused(killed, ref, tmp_path):
    "A checkpoint with a valid SHA-256 whose pickle would run code: refused (torch.load weights_only=True), the marker never written."
    with fault('checkpoint.pt replaced by a planted pickle with a valid SHA-256') as f:
        rd = copy(killed, tmp_path); marker = tmp_path/'marker'
        plant(rd/'checkpoint.pt', marker, True)
        with pytest.warns(Recovered, match='was refused: it is not plain data'): r = again(tmp_path)
        assert not marker.exists()
        same(r, ref); f.outcome = 'recovered'

def test_planted_pickles_only(killed, tmp_path):
    with fault('both checkpoints planted pickles (one with a SHA-256 line, one a bare torch file)') as f:
        rd = copy(killed, tmp_path); marker = tmp_path/'marker'
        plant(rd/'checkpoint.pt', marker, True); plant(rd/'checkpoint.prev.pt', marker, False)
        with pytest.raises(DamagedFile, match='no intact checkpoint'): again(tmp_path)
        with pytest.raises(DamagedFile): store.read_checkpoint(rd/'checkpoint.pt')
        assert not marker.exists(); f.outcome = 'detected'

# ---------------------------------------------------------------- killed between a temporary write and its rename
def test_killed_before_rename(killed, ref, tmp_path):
    "Temporary files left (half-written) next to every kind of file: never read, removed, the run resumes from its newest checkpoint."
    with fault('killed between the temporary write and the rename (.tmp left, no rename)') as f:
        rd = copy(killed, tmp_path)
        for name in ('checkpoint.pt.tmp', 'metrics.parquet.tmp', 'config.json.tmp', 'series/part-0000000409.parquet.tmp'):
            (rd/name).write_bytes(b'half-written' * 10)
        r = again(tmp_path)
        assert r.info['recovered'] == [] and r.info['resumed'][-1]['step'] == 400
        same(r, ref); f.outcome = 'recovered'

def test_killed_while_rotating(killed, ref, tmp_path):
    "Killed between renaming checkpoint.pt to checkpoint.prev.pt and renaming the new one in: the kept one is used."
    with fault('killed between the two renames of a checkpoint rotation') as f:
        rd = copy(killed, tmp_path)
        (rd/'checkpoint.pt.tmp').write_bytes((rd/'checkpoint.prev.pt').read_bytes())
        os.replace(rd/'checkpoint.pt', rd/'checkpoint.prev.pt')
        with pytest.warns(Recovered, match='checkpoint.pt is missing'): r = again(tmp_path)
        assert r.info['recovered'][0]['step'] == 400
        same(r, ref); f.outcome = 'recovered'

# ---------------------------------------------------------------- metrics.parquet, config.json, series parts
@pytest.mark.parametrize('how', ['flip', 'truncate'])
def test_metrics_of_killed_run(killed, ref, tmp_path, how):
    with fault(f'metrics.parquet of a killed run: {how}') as f:
        rd = copy(killed, tmp_path); (flip if how == 'flip' else truncate)(rd/'metrics.parquet')
        with pytest.raises(DamagedFile, match=r'metrics\.parquet is damaged.*run the same command again'): load_run(rd)
        same(again(tmp_path), ref)   # the partial metrics are rebuilt from the checkpoint
        f.outcome = 'recovered'

@pytest.mark.parametrize('what,how', [('metrics.parquet', 'flip'), ('metrics.parquet', 'truncate'), ('config.json', 'flip'),
                                      ('config.json', 'truncate'), ('series/part-0000000309.parquet', 'flip'),
                                      ('series/part-0000000009.parquet', 'truncate')])
def test_finished_run_damaged(ref, tmp_path, what, how):
    "A finished run's file damaged: reading it raises naming the file, running it again does not use or overwrite it."
    with fault(f'{what} of a finished run: {how}') as f:
        rd = copy(ref.dir, tmp_path); (flip if how == 'flip' else truncate)(rd/what)
        before = files(rd)
        with pytest.raises(DamagedFile, match=what.replace('.', r'\.')):
            r = load_run(rd); r.series
        if what != 'config.json':
            with pytest.raises(DamagedFile, match="if_exists='overwrite'"): r = again(tmp_path, 'ref'); r.series
        else:
            with pytest.raises(DamagedFile, match="config.json is damaged"): again(tmp_path, 'ref')
        assert files(rd) == before   # nothing of the finished run was touched
        f.outcome = 'detected'

def test_config_of_killed_run(killed, ref, tmp_path):
    "config.json of a killed run damaged: refused; the advice (delete it, run again) resumes from the checkpoint."
    with fault('config.json of a killed run: flip') as f:
        rd = copy(killed, tmp_path); flip(rd/'config.json')
        with pytest.raises(DamagedFile, match=r'config\.json is damaged.*delete config\.json and run the same command again'): again(tmp_path)
        (rd/'config.json').unlink()
        same(again(tmp_path), ref); f.outcome = 'detected'

def test_series_part_after_previous_checkpoint(killed, ref, tmp_path):
    "The series part written with the newest checkpoint damaged: that checkpoint is passed over, the part recomputed."
    with fault('series part of a killed run, written with the newest checkpoint: flip') as f:
        rd = copy(killed, tmp_path); flip(rd/'series'/'part-0000000309.parquet')
        with pytest.warns(Recovered, match='part-0000000309.parquet does not match'): r = again(tmp_path)
        assert r.info['recovered'][0]['step'] == 300
        same(r, ref); f.outcome = 'recovered'

def test_series_part_before_previous_checkpoint(killed, tmp_path):
    with fault('series part of a killed run, older than both checkpoints: truncate') as f:
        rd = copy(killed, tmp_path); truncate(rd/'series'/'part-0000000109.parquet')
        with pytest.raises(DamagedFile, match=r'no intact checkpoint.*part-0000000109\.parquet does not match'): again(tmp_path)
        f.outcome = 'detected'

# ---------------------------------------------------------------- locks and racing launchers
def test_stale_lock(killed, ref, tmp_path):
    with fault('stale lock of a dead pid (the killed run\'s)') as f:
        rd = copy(killed, tmp_path)
        import json; pid = json.loads((rd/'.lock').read_text())['pid']
        with pytest.raises(ProcessLookupError): os.kill(pid, 0)
        same(again(tmp_path), ref); f.outcome = 'recovered'

def test_finished_meanwhile(ref, tmp_path):
    "A launcher that planned a run which another process then finished does not start it again."
    with fault('a launcher takes the lock of a run another one finished meanwhile') as f:
        cs = plan([dict(CFG, experiment='ref', out_root=str(tmp_path))])
        rd = copy(ref.dir, tmp_path); before = files(rd)
        with pytest.raises(RunLocked, match='was finished \\(done\\) by another process meanwhile'): _run_group(cs[0])
        assert files(rd) == before; f.outcome = 'detected'

RACER = '''
import sys, time, pathlib, torch
torch.set_num_threads(1)
from upgd_nb.store import RunLocked
from upgd_nb.run import run
from upgd_nb.sweep import run_sweep
pathlib.Path(sys.argv[2]).touch(); go = pathlib.Path(sys.argv[1])
while not go.exists(): time.sleep(0.005)
try: {action}
except RunLocked as e: print('RunLocked:', e); sys.exit(3)
'''

def test_racing_launchers(tmp_path):
    "Two processes launch the same run, two others the same sweep: in each pair one is refused with RunLocked, the other finishes it."
    long = dict(CFG, n_steps=3000, stats='', stats_series=False)
    sweep = dict(name='race', base=dict(task='synthetic', n_steps=3000, progress=False, out_root=str(tmp_path)), grid=dict(lr=[0.01, 0.05]))
    actions = [f"run(**{long!r}, experiment='race', out_root={str(tmp_path)!r})"] * 2 + [f'run_sweep({sweep!r})'] * 2
    go = tmp_path/'go'
    ps = [subprocess.Popen([sys.executable, '-c', RACER.format(action=a), str(go), str(tmp_path/f'ready{i}')], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True) for i, a in enumerate(actions)]
    t0 = time.time()
    while not all((tmp_path/f'ready{i}').exists() for i in range(4)) and time.time() - t0 < 60: time.sleep(0.01)
    go.touch()
    outs = [p.communicate(timeout=120) for p in ps]
    for pair, name in ((slice(0, 2), 'two launchers racing for one run'), (slice(2, 4), 'two launchers racing for one sweep point')):
        with fault(name) as f:
            codes = sorted(p.returncode for p in ps[pair])
            assert codes == [0, 3], (codes, [o[1][-1500:] for o in outs[pair]])
            assert 'is being run by pid' in next(o[0] for p, o in zip(ps[pair], outs[pair]) if p.returncode == 3)
            f.outcome = 'detected'
    r = run(**long, experiment='race', out_root=str(tmp_path))
    assert r.status == 'done' and len(r.info['resumed']) == 0
    from upgd_nb.sweep import summary
    assert (summary(sweep, write=False).status == 'done').all()

# ---------------------------------------------------------------- a full disk
def full_disk(monkeypatch, when):
    "Make the store's writer raise ENOSPC for the writes `when(path, data)` picks."
    real = store._write_file
    def write(path, data):
        if when(path, data): raise OSError(errno.ENOSPC, 'No space left on device')
        real(path, data)
    monkeypatch.setattr(store, '_write_file', write)

def test_enospc_on_checkpoint(ref, tmp_path, monkeypatch):
    with fault('ENOSPC while writing the 3rd checkpoint') as f:
        n = [0]
        def third_checkpoint(path, data):
            n[0] += path.name == 'checkpoint.pt.tmp'
            return path.name == 'checkpoint.pt.tmp' and n[0] == 3
        full_disk(monkeypatch, third_checkpoint)
        with pytest.raises(OSError, match=r'no space left on the device writing .*checkpoint\.pt: it was not replaced') as e: again(tmp_path, 'full')
        assert e.value.errno == errno.ENOSPC
        monkeypatch.undo()
        rd = run_dir(RunConfig(**CFG, experiment='full', out_root=str(tmp_path)))
        info = read_config(rd)
        assert info['status'] == 'failed' and 'no space left' in info['error'].lower()
        assert checkpoint_step(rd) == 200 and not list(rd.rglob('*.tmp'))
        same(again(tmp_path, 'full'), ref); f.outcome = 'recovered'

def test_enospc_on_final_config(ref, tmp_path, monkeypatch):
    "The disk fills while the finished run's config.json is written: an error, and the run is finished by running it again."
    with fault("ENOSPC while writing a finished run's config.json") as f:
        full_disk(monkeypatch, lambda path, data: path.name == 'config.json.tmp' and b'"status": "done"' in data)
        with pytest.raises(OSError, match=r'no space left on the device writing .*config\.json'): again(tmp_path, 'full2')
        monkeypatch.undo()
        rd = run_dir(RunConfig(**CFG, experiment='full2', out_root=str(tmp_path)))
        assert read_config(rd)['status'] == 'running' and checkpoint_step(rd) == 500
        same(again(tmp_path, 'full2'), ref); f.outcome = 'recovered'

# ---------------------------------------------------------------- populations (flat engine)
def test_population_member_falls_back(tmp_path):
    "One member's newest checkpoint damaged: it is planned apart (its intact checkpoint stands at another step) and each member continues from its own."
    with fault("a population member's newest checkpoint damaged") as f:
        grid = [dict(task='synthetic', n_steps=600, checkpoint_every=100, lr=lr, progress=False, out_root=str(tmp_path)) for lr in (0.01, 0.05)]
        whole = run_many([dict(g, experiment='whole') for g in grid])
        part = run_many([dict(g, experiment='paused') for g in grid], until=400)
        zero64(part[0].dir/'checkpoint.pt')
        pl = plan([dict(g, experiment='paused') for g in grid])
        assert sorted(len(g) for g in pl) == [1, 1]   # never one population at two steps
        with pytest.warns(Recovered): fin = run_many([dict(g, experiment='paused') for g in grid])
        assert [len(r.info['recovered']) for r in fin] == [1, 0] and fin[0].info['recovered'][0]['step'] == 300
        for a, b in zip(fin, whole):   # a population regrouped computes the same to float rounding (47_population)
            assert a.status == 'done'; pd.testing.assert_series_equal(a.metrics.loss, b.metrics.loss, atol=1e-4, rtol=0)
        f.outcome = 'recovered'

# ---------------------------------------------------------------- the Optuna study
@pytest.mark.parametrize('how', ['header', 'truncate'])
def test_damaged_study(tmp_path, how):
    from upgd_nb.tune import study_of, trials_table, StudyDamaged
    with fault(f'Optuna SQLite study: {how}') as f:
        sw = dict(name='study', base=dict(task='synthetic', n_steps=300, out_root=str(tmp_path)), search='tpe',
                  space=dict(lr={'log': [0.001, 0.1]}), n=2, batch=2, seeds=[0])
        st = study_of(sw)
        for lr in (0.01, 0.02): st.enqueue_trial(dict(lr=lr))
        db = tmp_path/'study'/'study.db'
        if how == 'header': raw = bytearray(db.read_bytes()); raw[:16] = bytes(b ^ 0xFF for b in raw[:16]); db.write_bytes(bytes(raw))
        else: db.write_bytes(db.read_bytes()[:db.stat().st_size // 3])
        with pytest.raises(StudyDamaged, match=r'study/study\.db is damaged .*move it aside'): trials_table(sw)
        f.outcome = 'detected'
