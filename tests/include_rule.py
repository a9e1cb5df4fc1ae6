#!/usr/bin/env python3
"""The include rule of docs/architecture.md: a program's folder (mppd/,
mppqueue/, client/) includes only its own headers and common/'s, and
common/ only its own. tests/ may include any folder and is not read.

A quoted name without a slash can only reach the file's own folder or an
-I folder, so only names with a slash, angle-bracket names under a
program folder, and -I options in the Makefile can break the rule.

    include_rule.py [ROOT]    exit 0, or 1 with one line a breach
"""
import os
import re
import sys

LIBRARY = "common"
PROGRAMS = ("mppd", "mppqueue", "client")
INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]')
MAKE_I = re.compile(r"-I\s*(\S+)")


def allowed(folder):
    return {LIBRARY} if folder == LIBRARY else {folder, LIBRARY}


def target_folder(folder, quote, name):
    """The top folder the include names, or None when it names none of ours."""
    if quote == "<":
        top = name.split("/")[0]
        return top if "/" in name and top in PROGRAMS + (LIBRARY,) else None
    if "/" not in name:
        return None
    path = os.path.normpath(os.path.join(folder, name))
    if path.startswith(".."):
        return path
    return path.split(os.sep)[0]


def file_breaches(root, folder, fname):
    rel = f"{folder}/{fname}"
    with open(os.path.join(root, rel), encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            m = INCLUDE.match(line)
            if not m:
                continue
            top = target_folder(folder, m.group(1), m.group(2))
            if top is not None and top not in allowed(folder):
                yield f"{rel}:{lineno}: includes {m.group(2)} ({top}/ is not {folder}/'s to include)"


def makefile_breaches(root):
    path = os.path.join(root, "Makefile")
    if not os.path.exists(path):
        return
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            for d in MAKE_I.findall(line):
                if d.rstrip("/") in PROGRAMS:
                    yield f"Makefile:{lineno}: -I{d} puts a program's folder on every include path"


def breaches(root):
    for folder in (LIBRARY,) + PROGRAMS:
        d = os.path.join(root, folder)
        if not os.path.isdir(d):
            continue
        for fname in sorted(os.listdir(d)):
            if fname.endswith((".c", ".h")):
                yield from file_breaches(root, folder, fname)
    yield from makefile_breaches(root)


def main(argv):
    root = argv[1] if len(argv) > 1 else os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    found = list(breaches(root))
    for b in found:
        print(b)
    if not found:
        print("include rule: no file includes another program's folder")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
