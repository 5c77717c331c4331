#!/usr/bin/env python3
"""Disassembly of a C2-compiled method without hsdis: HotSpot's -XX:+PrintAssembly prints the machine code as hex
when the hsdis library is missing; this turns the last C2 (non-OSR) compile in such a log into objdump's listing.

    java --add-modules jdk.incubator.vector -XX:+UnlockDiagnosticVMOptions \\
         -XX:CompileCommand=print,dev.qvlm.cpu.Int8Matmul::dot -cp java/target/qvlm.jar \\
         dev.qvlm.bench.DecodeKernels 1 256 2 4096x4096 > log.txt 2>&1
    python3 benchmarks/asm/hexdis.py log.txt [N]     # N: the N-th compile from the end (default 1)

Needs binutils' objdump. Used to find the int8 kernel's loop overhead (README "### Decode kernels").
"""
import re
import subprocess
import sys
import tempfile

text = open(sys.argv[1]).read()
parts = re.split(r'(?m)^(?=Compiled method \(c2\))', text)
c2 = [p for p in parts if p.startswith('Compiled method (c2)') and not re.match(r'Compiled method \(c2\)\s+\d+\s+\d+\s+%', p)]
if not c2:
    sys.exit("no C2 compile in " + sys.argv[1] + " (was the method hot enough, and -XX:CompileCommand=print given?)")
sel = c2[-int(sys.argv[2]) if len(sys.argv) > 2 else -1]
print('####', sel.splitlines()[0])
cur, blocks = None, []
for ln in sel.splitlines():
    m = re.match(r'\s*0x([0-9a-f]+): ((?:[0-9a-f]{2,4} ?\|? ?)+)\s*$', ln)
    if m:
        addr, hx = int(m.group(1), 16), re.sub(r'[ |]', '', m.group(2))
        if cur and cur[0] + len(cur[1]) // 2 == addr:
            cur[1] += hx
        else:
            cur = [addr, hx]
            blocks.append(cur)
for addr, hx in blocks:
    with tempfile.NamedTemporaryFile(suffix='.bin') as f:
        f.write(bytes.fromhex(hx))
        f.flush()
        out = subprocess.run(['objdump', '-D', '-b', 'binary', '-mi386:x86-64', '--adjust-vma=%#x' % addr, f.name],
                             capture_output=True, text=True).stdout
        print('\n'.join(out.splitlines()[7:]))
