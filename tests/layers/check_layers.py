#!/usr/bin/env python3
"""tests/layers/check_layers.py -- nothing below includes anything above it.

The layers of README "Architecture", bottom first. A source file may include
headers of its own layer or of layers below; an include of a layer above is
printed as FILE:LINE: "header" (layer A includes layer B) and fails the check.
Run by ctest (unit label) with the source directory as argument."""

import os
import re
import sys

# (folder prefix, rank); the longest matching prefix decides. Folders of one
# rank may include each other only where listed in SIDEWAYS.
LAYERS = [
    ("mail/", 0),
    ("runtime/", 1),
    ("conf/", 2),
    ("policy/", 3),
    ("queue/", 3),
    ("mta/smtp/", 4),
    ("mta/dkim/", 5),
    ("mta/dns/", 5),
    ("mta/milter/", 5),
    ("mta/inbound/", 6),
    ("mta/outbound/", 6),
    ("mta/", 7),
    ("admin-api/", 8),
]
SIDEWAYS = {("policy/", "queue/"), ("queue/", "policy/")}
INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"')


def layer_of(path):
    best = None
    for prefix, rank in LAYERS:
        if path.startswith(prefix) and (best is None or len(prefix) > len(best[0])):
            best = (prefix, rank)
    return best


def main(root):
    problems = []
    checked = 0
    for prefix, _ in LAYERS:
        top = os.path.join(root, prefix)
        if not os.path.isdir(top):
            continue
        for dirpath, _, names in os.walk(top):
            for name in names:
                if not name.endswith((".h", ".cc")):
                    continue
                rel = os.path.relpath(os.path.join(dirpath, name), root)
                own = layer_of(rel)
                if own[0] != prefix:
                    continue  # a sub-folder with its own entry
                checked += 1
                with open(os.path.join(root, rel), errors="replace") as f:
                    for n, line in enumerate(f, 1):
                        m = INCLUDE.match(line)
                        if not m:
                            continue
                        other = layer_of(m.group(1))
                        if other is None or other[0] == own[0]:
                            continue
                        if other[1] > own[1] or (other[1] == own[1] and
                                                 (own[0], other[0]) not in SIDEWAYS):
                            problems.append('%s:%d: "%s" (%s includes %s, a layer above)'
                                            % (rel, n, m.group(1), own[0], other[0]))
    for p in problems:
        print(p)
    print("layers: %d files checked, %d includes of a layer above" % (checked, len(problems)))
    return 1 if problems or checked == 0 else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "."))
