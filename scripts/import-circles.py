#!/usr/bin/env python3
"""Lists import circles between source files of the workspace's crates.

An edge A -> B means file A names an item of module B (a `use` or an inline path: `crate::x::Y`,
`super::x::Y`, `self::x::Y`). Edges between a module and its own ancestors are not counted: a
parent declares and re-exports its children, and a child reaching its parent's items through
`super::` is how Rust modules nest. A circle is a strongly connected set of two or more files.
Exits 1 when there is one. Usage: scripts/import-circles.py [CRATE_DIR ...]"""
import pathlib, re, sys

def module_files(src):
    mods = {}
    for f in src.rglob('*.rs'):
        rel = f.relative_to(src).with_suffix('')
        parts = list(rel.parts)
        if parts in (['lib'], ['main']):
            parts = []
        elif parts[-1] == 'mod':
            parts = parts[:-1]
        mods[tuple(parts)] = f
    return mods

def strip(text):
    text = re.sub(r'//[^\n]*', '', text)
    # #[cfg(test)] mod tests { ... } blocks: test code may use anything
    out, i = [], 0
    for m in re.finditer(r'#\[cfg\(test\)\]\s*mod \w+ \{', text):
        if m.start() < i:
            continue
        out.append(text[i:m.start()])
        depth, j = 0, m.end() - 1
        while j < len(text):
            depth += {'{': 1, '}': -1}.get(text[j], 0)
            if depth == 0:
                break
            j += 1
        i = j + 1
    out.append(text[i:])
    return ''.join(out)

def paths_in(text):
    # expand `use a::{b, c::{d}}` groups into flat paths
    found = []
    for m in re.finditer(r'\buse\s+([^;]+);', text):
        found += expand(m.group(1).replace('\n', ' '))
    for m in re.finditer(r'\b((?:crate|super|self)(?:::\w+)+)', text):
        found.append(m.group(1))
    return found

def expand(tree):
    tree = tree.strip()
    m = re.match(r'^(.*?)::\{(.*)\}$', tree, re.S)
    if not m:
        return [tree.split(' as ')[0].strip()]
    prefix, inner = m.group(1), m.group(2)
    items, depth, cur = [], 0, ''
    for ch in inner:
        if ch == ',' and depth == 0:
            items.append(cur); cur = ''
            continue
        depth += (ch == '{') - (ch == '}')
        cur += ch
    items.append(cur)
    out = []
    for it in items:
        it = it.strip()
        if not it:
            continue
        out += [prefix if it == 'self' else p for p in expand(prefix + '::' + it)]
    return out

def resolve(path, here, mods):
    parts = path.split('::')
    if parts[0] == 'crate':
        base, rest = [], parts[1:]
    elif parts[0] in ('super', 'self'):
        base = list(here)
        rest = parts
        while rest and rest[0] in ('super', 'self'):
            if rest[0] == 'super':
                base = base[:-1]
            rest = rest[1:]
    else:
        return None
    best = tuple(base) if tuple(base) in mods else None
    cur = list(base)
    for p in rest:
        cur.append(p)
        if tuple(cur) in mods:
            best = tuple(cur)
        else:
            break
    return best

def circles(crate):
    src = pathlib.Path(crate) / 'src'
    mods = module_files(src)
    edges = {m: set() for m in mods}
    for m, f in mods.items():
        for p in paths_in(strip(f.read_text())):
            t = resolve(p, m, mods)
            if t is None or t == m or t == m[:len(t)] or m == t[:len(m)]:
                continue
            edges[m].add(t)
    # Tarjan
    index, low, stack, on, out, n = {}, {}, [], set(), [], [0]
    def visit(v):
        index[v] = low[v] = n[0]; n[0] += 1; stack.append(v); on.add(v)
        for w in edges[v]:
            if w not in index:
                visit(w); low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop(); on.discard(w); comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted('/'.join(c) or 'lib' for c in comp))
    sys.setrecursionlimit(10000)
    for v in mods:
        if v not in index:
            visit(v)
    return out

crates = sys.argv[1:] or ['vault-core', 'vault-sync', 'vault-mirror', 'vault-cli', 'tests']
bad = 0
for c in crates:
    for comp in circles(c):
        print(f'{c}: ' + ', '.join(comp))
        bad += 1
sys.exit(1 if bad else 0)
