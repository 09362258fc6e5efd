#!/usr/bin/python3
"""docs.examples: every YAML configuration shown in the given Markdown files, and every given
.yaml file (or those in the given directories), passes `sluice check`.

A block counts as a configuration when it is fenced as ```yaml and has an `inputs:` or `outputs:`
line; a block with only one of them gets a minimal other half, so fragments are checked too.
${env:...} placeholders are given dummy values."""
import os
import re
import subprocess
import sys
import tempfile

sluice = sys.argv[1]
files = []
for arg in sys.argv[2:]:
    if os.path.isdir(arg):
        files += [os.path.join(arg, n) for n in sorted(os.listdir(arg))
                  if n.endswith((".md", ".yaml"))]
    else:
        files.append(arg)
env = dict(os.environ, ES_PASSWORD="x", ES_API_KEY="x", FWD_KEY="x", KAFKA_PASSWORD="x")
bad = checked = 0
for name in files:
    text = open(name, encoding="utf-8").read()
    if name.endswith(".yaml"):
        blocks = [(text, 1)]
    else:
        blocks = [(m.group(1), text[:m.start()].count("\n") + 2)
                  for m in re.finditer(r"^```yaml\n(.*?)^```", text, re.S | re.M)]
    for block, line in blocks:
        has_in = re.search(r"^inputs:", block, re.M)
        has_out = re.search(r"^outputs:", block, re.M)
        if not (has_in or has_out):
            continue
        if not has_in:
            block += "inputs:\n  - {type: kafka, brokers: 'k:9092', topics: [t]}\n"
        if not has_out:
            block += "outputs:\n  - {type: elasticsearch}\n"
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
            f.write(block)
        r = subprocess.run([sluice, "check", "-c", f.name], env=env, capture_output=True, text=True)
        os.unlink(f.name)
        checked += 1
        if r.returncode != 0:
            bad += 1
            print(f"{name}:{line}: example does not pass sluice check:\n"
                  f"{r.stdout}{r.stderr}", end="")
print(f"{checked} examples checked, {bad} failed")
sys.exit(1 if bad or not checked else 0)
