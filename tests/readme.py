"""Print README.md from nbs/index.ipynb: its markdown cells, in order (`make readme`; tests/test_repo.py checks it)."""
import json
from pathlib import Path

def readme() -> str:
    nb = json.loads((Path(__file__).resolve().parents[1]/'nbs'/'index.ipynb').read_text())
    cells = [''.join(c['source']).strip() for c in nb['cells'] if c['cell_type'] == 'markdown']
    return '<!-- generated from nbs/index.ipynb by `make readme`: edit the notebook, not this file -->\n\n' + '\n\n'.join(cells) + '\n'

if __name__ == '__main__': print(readme(), end='')
