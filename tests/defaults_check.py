#!/usr/bin/env python3
"""Every default is written once: no setting's default value is written in two places.

Scans the member initialisers and the named defaults (`static constexpr double kDefaultLr = 0.05;`)
of the settings structs (those named *Config, *Options, *Settings,
*Spec and *Info, the elements' Settings among them) in trainer/, broker/, plugins/, pipeline/ and bench/:
`type name = literal;`, `type a = 1, b = 2;`, directly in the struct's body.
A name given the same literal in two different files is a default written twice: one of them
should read it from the other (e.g. `double lr = NodeTrainerConfig{}.lr;`). Literals that mean
"off" or "none" (0, false, -1, "") are not defaults of a tuning and are not compared; a text
literal is compared by its value alone, under any name. Fails with
the places found; prints `N passed, N failed` for the settings it compared.
"""
import pathlib
import re
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
FOLDERS = ["trainer", "broker", "plugins", "pipeline", "bench"]
# A declaration inside a struct/class body: an indented type, then name = literal [, name = literal]...
DECL = re.compile(r"^\s+(?:static\s+)?(?:constexpr\s+)?(?:const\s+)?[A-Za-z_][\w:<>]*\s+"
                  r"(\w+(?:\[\])?\s*=\s*[^;{}()]+(?:,\s*\w+\s*=\s*[^;{}()]+)*);")
ITEM = re.compile(r"(\w+)(?:\[\])?\s*=\s*(\"[^\"]*\"|'[^']*'|[-+]?[0-9][0-9.eE+\-x]*[a-zA-Z]*)\s*$")
OFF = {"0", "0.0", "0.0f", "false", "-1", '""', "0u", "0ll"}
STRUCT = re.compile(r"^\s*(?:struct|class)\s+(\w+)[^;]*\{\s*(//.*)?$")
SETTINGS = re.compile(r"(Config|Options|Settings|Spec|Info)$")
# Settings that share a name and a value and are still not one setting, with the reason.
SAME_NAME_ONLY = {
    ("seed", "1", "trainer/sparsify.h"): "the sampling seed of the selection, not the weights' seed "
                                         "(NodeTrainerConfig includes SparsifierConfig, so it cannot read that one)",
    ("test_limit", "2000", "bench/bench_compression.h"): "the quick preset's test set, not the broker's evaluation",
}


def literals(path):
    depth = 0
    body = []  # brace depth of each open settings struct's body
    for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        code = line.split("//")[0]
        s = STRUCT.match(line)
        if s and SETTINGS.search(s.group(1)):
            body.append(depth + 1)
        m = DECL.match(code) if body and depth == body[-1] else None
        depth += code.count("{") - code.count("}")
        while body and depth < body[-1]:
            body.pop()
        if not m:
            continue
        for part in re.split(r",\s*(?=\w+\s*=)", m.group(1)):
            item = ITEM.match(part.strip())
            rel = str(path.relative_to(ROOT))
            if item and item.group(2) not in OFF and (item.group(1), item.group(2), rel) not in SAME_NAME_ONLY:
                yield item.group(1), item.group(2), f"{rel}:{n}"


def main():
    seen = {}
    for folder in FOLDERS:
        for path in sorted((ROOT / folder).glob("*.[ch]*")):
            if path.suffix not in (".h", ".cpp"):
                continue
            for name, value, where in literals(path):
                # A text default is compared by its value alone: the same text under two names
                # (kDefaultModelId and model_id = "default") is still written twice.
                seen.setdefault(("(text)" if value.startswith('"') else name, value), []).append(where)
    twice = {k: v for k, v in seen.items() if len({w.split(":")[0] for w in v}) > 1}
    for (name, value), places in sorted(twice.items()):
        print(f"default written twice: {name} = {value} in " + ", ".join(places))
    print(f"{len(seen) - len(twice)} passed, {len(twice)} failed")
    return 1 if twice else 0


if __name__ == "__main__":
    sys.exit(main())
