#!/usr/bin/env python3
"""Import loops between the modules of a crate's src/ (issue 15: none inside the trainer).
Counts `crate::a::b` paths, `crate::a::{b, c}` groups and `super::` paths outside comments and
unit tests; a parent module's `pub mod` lines are not imports.
Usage: scripts/check-import-cycles.py trainer/src   (exit 1 when a cycle exists)"""
import re, os, sys
os.chdir(sys.argv[1])
mods={}
for root,_,files in os.walk('.'):
    for f in files:
        if not f.endswith('.rs') or root.startswith('./bin') or f=='main.rs': continue
        p=os.path.join(root,f)[2:]
        name=p[:-3].replace('/mod','').replace('/','::')
        if name=='lib': continue
        mods[name]=open(p).read()
def resolve(ref):
    parts=ref.split('::')
    for i in range(len(parts),0,-1):
        cand='::'.join(parts[:i])
        if cand in mods: return cand
    return None
edges={m:set() for m in mods}
for m,src in mods.items():
    src=re.sub(r'#\[cfg\(test\)\][\s\S]*','',src)
    src=re.sub(r'//.*','',src)
    refs=re.findall(r'crate::([a-z_0-9]+(?:::[a-z_0-9]+)*)',src)
    for base,inner in re.findall(r'crate::([a-z_0-9]+(?:::[a-z_0-9]+)*)::\{([^}]*)\}',src):
        refs += [base+'::'+x.strip().split('::')[0] for x in inner.split(',') if x.strip()]
    for ref in refs:
        t=resolve(ref)
        if t and t!=m and not t.startswith(m+'::'): edges[m].add(t)
    for ref in re.findall(r'super::([a-z_0-9]+(?:::[a-z_0-9]+)*)',src):
        parent='::'.join(m.split('::')[:-1])
        t=resolve((parent+'::' if parent else '')+ref)
        if t and t!=m: edges[m].add(t)
cycles=set()
def dfs(start,node,path):
    for n in edges[node]:
        if n==start: cycles.add(tuple(path+[n]))
        elif n not in path and len(path)<10: dfs(start,n,path+[n])
for m in mods: dfs(m,m,[m])
print(len(cycles), "import cycles among", len(mods), "modules")
for c in sorted(cycles,key=len)[:15]: print(' -> '.join(c))
sys.exit(1 if cycles else 0)
