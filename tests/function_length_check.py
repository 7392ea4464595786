#!/usr/bin/env python3
"""No function in the product is over 120 lines.

Scans the C++ sources of trainer/, broker/, plugins/, pipeline/ and bench/ for function bodies
(a brace block opened by a line with a parameter list, outside any other function) and reports
those longer than the limit, with their first line. Prints `N passed, N failed` (functions).
"""
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
FOLDERS = ["trainer", "broker", "plugins", "pipeline", "bench"]
LIMIT = 120
NAMESPACE = re.compile(r"^\s*(namespace\b[^{]*|extern \"C\"\s*)\{")
SIGNATURE = re.compile(r"\)\s*(const\s*)?(override\s*)?(noexcept\s*)?(->\s*[\w:<>]+\s*)?(:[^;]*)?\{\s*(//.*)?$")


def strip(line):
    line = re.sub(r'"(\\.|[^"\\])*"', '""', line)
    line = re.sub(r"'(\\.|[^'\\])*'", "''", line)
    return line.split("//")[0]


def functions(path):
    lines = path.read_text(errors="replace").splitlines()
    depth = 0
    scopes = []  # ("ns"|"type"|"fn", depth at which it opened, start line)
    pending = ""  # a signature spread over several lines
    for n, raw in enumerate(lines, 1):
        code = strip(raw)
        in_function = any(kind == "fn" for kind, _, _ in scopes)
        opens = code.count("{")
        if opens and not in_function:
            text = (pending + " " + code).strip()
            if NAMESPACE.match(code):
                kind = "ns"
            elif SIGNATURE.search(text) and "(" in text and not re.match(r"^\s*(struct|class|enum|union)\b", text):
                kind = "fn"
            else:
                kind = "type"
            scopes.append((kind, depth, n))
        pending = (pending + " " + code) if code.strip() and not code.rstrip().endswith((";", "{", "}")) else ""
        depth += opens - code.count("}")
        while scopes and depth <= scopes[-1][1]:
            kind, _, start = scopes.pop()
            if kind == "fn":
                yield start, n - start + 1, lines[start - 1].strip()


def main():
    count = failed = 0
    for folder in FOLDERS:
        for path in sorted((ROOT / folder).glob("*.cpp")):
            for start, length, first in functions(path):
                count += 1
                if length > LIMIT:
                    failed += 1
                    print(f"{path.relative_to(ROOT)}:{start}: {length} lines: {first}")
    print(f"{count - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
