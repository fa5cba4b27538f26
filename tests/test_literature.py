"""The literature's bibliography check (issue 22): every entry of literature/refs.bib is complete, every key is cited
in a note or a notebook, every citation has an entry; and the check fails on a planted incomplete entry.

A small BibTeX reader is written here (no dependency): entries `@type{key, field = {...} | "..." | bare, ...}` with
nested braces; `@comment`, `@string` and `@preamble` are skipped. Citations are pandoc's: `[@key]`, `[@a; @b]` and
`@key` in running text, read from literature/*.md and nbs/**/*.md (code blocks and inline code removed) and from the
Markdown cells of nbs/**/*.ipynb (code cells hold decorators, not citations)."""
from __future__ import annotations
import json, re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIB = ROOT/'literature'/'refs.bib'

REQUIRED = ('author', 'title', 'year')
VENUE = ('journal', 'booktitle', 'eprint', 'publisher', 'howpublished', 'institution', 'school', 'url')
CROSSREF = ('fig-', 'tbl-', 'sec-', 'eq-', 'lst-', 'thm-', 'lem-', 'cor-', 'prp-', 'cnj-', 'def-', 'exm-', 'exr-')

def _value(text: str, i: int) -> tuple[str, int]:
    "The field value starting at `text[i]` (braced, quoted or bare) and the index after it."
    if text[i] == '{':
        depth, j = 0, i
        while j < len(text):
            depth += {'{': 1, '}': -1}.get(text[j], 0)
            if depth == 0: return text[i + 1:j], j + 1
            j += 1
        raise ValueError(f'unbalanced braces from offset {i}')
    if text[i] == '"':
        j = i + 1
        while j < len(text) and not (text[j] == '"' and text[j - 1] != '\\'): j += 1
        return text[i + 1:j], j + 1
    m = re.compile(r'[^,}\s]*').match(text, i)
    return m.group(0), m.end()

def parse_bib(text: str) -> tuple[dict[str, dict], list[str]]:
    "The entries of a BibTeX text, {key: {'type': ..., field: value}}, and the problems met while reading it."
    entries, problems, pos = {}, [], 0
    head = re.compile(r'@(\w+)\s*\{\s*([^,\s]+)\s*,', re.S)
    field = re.compile(r'\s*([A-Za-z][\w-]*)\s*=\s*', re.S)
    for m in head.finditer(text):
        if m.start() < pos: continue                              # inside an earlier entry
        kind, key, i = m.group(1).lower(), m.group(2), m.end()
        if kind in ('comment', 'string', 'preamble'): continue
        fields = {'type': kind}
        while True:
            f = field.match(text, i)
            if not f: break
            try: v, i = _value(text, f.end())
            except ValueError as e: problems.append(f'{key}: {e}'); break
            fields[f.group(1).lower()] = ' '.join(v.split())
            c = re.compile(r'\s*,?').match(text, i); i = c.end()
        end = re.compile(r'\s*\}').match(text, i)
        if not end: problems.append(f'{key}: entry not closed where a field was expected (offset {i})')
        pos = end.end() if end else i
        if key in entries: problems.append(f'{key}: duplicate key')
        entries[key] = fields
    return entries, problems

def entry_problems(key: str, e: dict) -> list[str]:
    "What is missing from entry `key`: author, title, year (four digits) and a venue or arXiv id."
    out = [f'{key}: no {f}' for f in REQUIRED if not e.get(f, '').strip()]
    if e.get('year') and not re.fullmatch(r'\d{4}', e['year'].strip()): out.append(f"{key}: year {e['year']!r} is not a year")
    if not any(e.get(f, '').strip() for f in VENUE): out.append(f'{key}: no venue ({", ".join(VENUE)})')
    return out

_re_fence = re.compile(r'^(`{3,}|~{3,}).*?^\1\s*$', re.S | re.M)
_re_inline = re.compile(r'(`+)(?!`).*?(?<!`)\1(?!`)', re.S)
_re_cite = re.compile(r'(?<![\w.@/`\\])@([A-Za-z0-9_][\w:.#$%&+?<>~/-]*)')

def citations(markdown: str) -> set[str]:
    "The citation keys in a Markdown text (pandoc syntax), code removed; cross-references (`@fig-...`) left out."
    text = _re_inline.sub(' ', _re_fence.sub(' ', markdown))
    keys = {m.group(1).rstrip(':.#$%&+?<>~/-') for m in _re_cite.finditer(text)}
    return {k for k in keys if k and not k.startswith(CROSSREF)}

def markdown_of(path: Path) -> str:
    "A page's Markdown: the file for .md/.qmd, the Markdown cells for .ipynb."
    if path.suffix == '.ipynb':
        nb = json.loads(path.read_text())
        return '\n\n'.join(''.join(c.get('source', '')) for c in nb.get('cells', []) if c.get('cell_type') == 'markdown')
    return path.read_text()

def cite_sources(root: Path = ROOT) -> list[Path]:
    "The pages whose citations count: literature/*.md (its README included) and the notebooks' pages under nbs/."
    nbs = [p for p in sorted((root/'nbs').rglob('*')) if p.suffix in ('.md', '.qmd', '.ipynb')
           and not any(part.startswith(('.', '_')) for part in p.relative_to(root).parts)] if (root/'nbs').is_dir() else []
    return sorted((root/'literature').glob('*.md')) + nbs

def bib_problems(bib: Path, sources: list[Path]) -> list[str]:
    "Everything wrong with `bib` and its use in `sources`: incomplete entries, keys cited nowhere, citations with no entry."
    entries, problems = parse_bib(bib.read_text())
    for k, e in entries.items(): problems += entry_problems(k, e)
    cited: dict[str, list[str]] = {}
    for p in sources:
        for k in citations(markdown_of(p)): cited.setdefault(k, []).append(p.name)
    problems += [f'{k}: cited nowhere' for k in entries if k not in cited]
    problems += [f"@{k}: cited in {', '.join(sorted(set(f)))} but not in {bib.name}" for k, f in sorted(cited.items()) if k not in entries]
    return problems

# ---------------------------------------------------------------------------------------------------------------
def test_bibliography_complete_and_cited():
    problems = bib_problems(BIB, cite_sources())
    assert not problems, 'bibliography problems:\n' + '\n'.join(problems)

def test_bibliography_size():
    entries, _ = parse_bib(BIB.read_text())
    assert len(entries) >= 110, len(entries)

def test_unverified_entries_say_so():
    "An entry whose note opens with 'unverified' is marked unverified near every citation of it in the notes."
    entries, _ = parse_bib(BIB.read_text())
    notes = {p.name: p.read_text() for p in (ROOT/'literature').glob('*.md')}
    flagged = [k for k, e in entries.items() if e.get('note', '').lower().startswith('unverified')]
    assert flagged
    bad = []
    for k in flagged:
        for n, text in notes.items():
            for m in re.finditer(re.escape('@' + k) + r'(?!\w)', text):
                if 'unverified' not in text[max(0, m.start() - 400):m.end() + 200].lower(): bad.append(f'{n}: @{k} at {m.start()}')
    assert not bad, 'unverified entries cited without saying so:\n' + '\n'.join(bad)

def test_check_fails_on_planted_incomplete_entry(tmp_path):
    bib = tmp_path/'refs.bib'
    bib.write_text('''
@article{complete2020,
  author = {Doe, Jane and Roe, Richard},
  title  = {A complete {entry} with "quotes" and {nested {braces}}},
  journal = {Journal of Tests},
  year   = 2020
}
@misc{notitle2021,
  author = {Doe, Jane},
  year   = {2021},
  eprint = {2101.00001}
}
@misc{novenue2022,
  author = {Doe, Jane},
  title  = {No venue and a bad year},
  year   = {forthcoming}
}
@misc{orphan2023,
  author = {Doe, Jane}, title = {Never cited}, year = {2023}, howpublished = {nowhere}
}
''')
    page = tmp_path/'note.md'
    page.write_text('See @complete2020 and [@notitle2021; @novenue2022, p. 3], and @missing2024. '
                    'Code `@orphan2023` and mail a@b.org do not count; nor does @fig-one.\n\n```\n@orphan2023\n```\n')
    problems = bib_problems(bib, [page])
    assert 'notitle2021: no title' in problems
    assert 'novenue2022: no venue (journal, booktitle, eprint, publisher, howpublished, institution, school, url)' in problems
    assert "novenue2022: year 'forthcoming' is not a year" in problems
    assert 'orphan2023: cited nowhere' in problems
    assert '@missing2024: cited in note.md but not in refs.bib' in problems
    assert not any(p.startswith('complete2020') for p in problems)
    assert len(problems) == 5, problems

def test_parser_reads_the_real_file():
    entries, problems = parse_bib(BIB.read_text())
    assert not problems, problems
    e = entries['elsayed2024upgd']
    assert e['type'] == 'inproceedings' and e['eprint'] == '2404.00781' and e['year'] == '2024'
    assert citations('[@a; @b] and @c. See `@d`.') == {'a', 'b', 'c'}

def test_notebook_citations_are_read_from_markdown_cells(tmp_path):
    nb = tmp_path/'x.ipynb'
    nb.write_text(json.dumps({'cells': [
        {'cell_type': 'markdown', 'source': ['As shown [@elsayed2024upgd].']},
        {'cell_type': 'code', 'source': ['@torch.no_grad()\n', 'def f(): pass']}]}))
    assert citations(markdown_of(nb)) == {'elsayed2024upgd'}
