"""A strict validator for the Prometheus text exposition format (version 0.0.4).

validate(text) returns a list of problems (empty when the text is valid). It checks every line
against the grammar, that a `# TYPE` line comes before each family's first sample, that no
family is typed twice or has its samples split up, and that no series appears twice.
"""

import re

METRIC_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL_NAME = r"[a-zA-Z_][a-zA-Z0-9_]*"
LABEL_VALUE = r'"(?:[^"\\\n]|\\[\\"n])*"'
LABEL = r"(%s)=(%s)" % (LABEL_NAME, LABEL_VALUE)
LABELS = r"\{(?:%s(?:,%s)*,?)?\}" % (LABEL, LABEL)
VALUE = r"(?:[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|NaN|[+-]?Inf)"
TIMESTAMP = r"-?[0-9]+"

SAMPLE_RE = re.compile(r"(%s)(%s)? (%s)(?: (%s))?" % (METRIC_NAME, LABELS, VALUE, TIMESTAMP))
TYPE_RE = re.compile(r"# TYPE (%s) (counter|gauge|histogram|summary|untyped)" % METRIC_NAME)
HELP_RE = re.compile(r"# HELP (%s)(?: .*)?" % METRIC_NAME)
LABEL_RE = re.compile(LABEL)

SUFFIXES = {"histogram": ("_bucket", "_sum", "_count"), "summary": ("_sum", "_count")}


def _family_of(name, types):
    if name in types:
        return name
    for family, kind in types.items():
        for suffix in SUFFIXES.get(kind, ()):
            if name == family + suffix:
                return family
    return None


def validate(text):
    problems = []
    if text and not text.endswith("\n"):
        problems.append("output does not end with a newline")
    types = {}
    finished = set()  # families whose sample group has ended
    current = None
    series = set()
    for lineno, line in enumerate(text.split("\n")[:-1] if text.endswith("\n") else text.split("\n"), 1):
        where = "line %d %r" % (lineno, line[:120])
        if line == "":
            continue
        if line.startswith("#"):
            m = TYPE_RE.fullmatch(line)
            if m:
                name = m.group(1)
                if name in types:
                    problems.append("%s: second TYPE line for %s" % (where, name))
                elif name in finished or name == current:
                    problems.append("%s: TYPE for %s after its samples" % (where, name))
                types[name] = m.group(2)
                continue
            if line.startswith("# TYPE") or line.startswith("# HELP"):
                if not HELP_RE.fullmatch(line):
                    problems.append("%s: malformed %s line" % (where, line[2:6]))
            continue
        m = SAMPLE_RE.fullmatch(line)
        if not m:
            problems.append("%s: not a valid sample line" % where)
            continue
        name, labels = m.group(1), m.group(2) or ""
        family = _family_of(name, types)
        if family is None:
            problems.append("%s: sample of %s without a preceding TYPE line" % (where, name))
            family = name
        if family != current:
            if family in finished:
                problems.append("%s: samples of %s are not grouped together" % (where, family))
            if current is not None:
                finished.add(current)
            current = family
        names = [lm.group(1) for lm in LABEL_RE.finditer(labels)]
        if len(set(names)) != len(names):
            problems.append("%s: repeated label name" % where)
        if any(n.startswith("__") for n in names):
            problems.append("%s: reserved label name" % where)
        key = (name, tuple(sorted(LABEL_RE.findall(labels))))
        if key in series:
            problems.append("%s: duplicate series %s%s" % (where, name, labels))
        series.add(key)
    return problems
