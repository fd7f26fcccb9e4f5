"""Checks a ``spec.metrics.queries`` template before any policy runs it: it renders, and it cannot read
series outside the policy's namespace.

A template is a Python format string (PromQL's own braces doubled) with only the documented
placeholders (:data:`PLACEHOLDERS`, docs/operator.md). Two things go wrong with a user's template:

- it does not render (``up{job="x"}`` written as plain PromQL: ``str.format`` raises ``KeyError``),
  which used to make the shared refresh raise for every policy;
- it selects series of other namespaces (``up{{namespace="other"}}``, or a selector without any
  namespace matcher), whose values then land in this tenant's ``status.metrics``.

:func:`check_template` renders the template with sentinel values and walks the PromQL tokens: every
vector selector (``metric{...}`` or ``{...}``) must carry the namespace matcher that the operator
fills in (``{selector}`` or ``namespace="{namespace}"``), and no matcher list may use ``or``
(Prometheus 3's alternative matcher sets, which would bypass it). Templates without any selector
(``vector(1)``, ``label_replace(vector(0.2), ...)``) read no series and are accepted.

This is a lexer, not a PromQL parser: it is conservative (a construct it does not understand is
refused with a message) and Prometheus still parses the rendered query.
"""

from __future__ import annotations

import re
import string

PLACEHOLDERS = ("selector", "window", "namespace", "name", "pod_regex", "burst_window", "burst_step")
"""The documented template fields (controller.prometheus.render_shared / render_for fill them in)."""

_NS = "autocm_sentinel_namespace"
SENTINELS = {"selector": f'namespace="{_NS}"', "window": "60s", "namespace": _NS,
             "name": "autocm-sentinel-name", "pod_regex": "autocm-sentinel-name-[a-z0-9]{5}",
             "burst_window": "10s", "burst_step": "5s"}

MAX_TEMPLATE_CHARS = 4096
"""Long enough for any real query (the defaults are under 150 characters); bounds the work per check."""

_KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring",
                       "group_left", "group_right", "atan2", "inf", "nan", "start", "end", "smoothed", "anchored"})
_GROUPING = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
_AGGREGATORS = frozenset({"sum", "avg", "min", "max", "count", "stddev", "stdvar", "topk", "bottomk", "quantile",
                          "count_values", "group", "limitk", "limit_ratio"})

_TOKEN = re.compile(r"""
    (?P<ws>\s+|\#[^\n]*)
  | (?P<str>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|`[^`]*`)
  | (?P<num>(?:0[xX][0-9a-fA-F]+|[0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)(?:[a-zA-Z0-9_]*))
  | (?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)
  | (?P<op>=~|!~|!=|==|<=|>=|[-+*/%^<>=@,(){}\[\]:])
""", re.VERBOSE)


class TemplateError(ValueError):
    """A query template that does not render or could read outside the policy's namespace."""


def render_fields(template: str) -> list[str]:
    """The placeholder names in ``template``; raises :class:`TemplateError` on any other field."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise TemplateError(f"not a template ({exc}); PromQL braces are written doubled, e.g. "
                            "up{{{selector}}}") from exc
    fields = []
    for _, field, spec, conversion in parsed:
        if field is None:
            continue
        if field not in PLACEHOLDERS or spec or conversion:
            shown = "{" + field + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
            raise TemplateError(f"unknown placeholder {shown}; a template may use only "
                                f"{', '.join('{' + p + '}' for p in PLACEHOLDERS)} (PromQL braces are doubled: "
                                "{{ and }})")
        fields.append(field)
    return fields


def _tokens(text: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise TemplateError(f"cannot read the query at {text[pos:pos + 20]!r}")
        pos = m.end()
        if m.lastgroup != "ws":
            out.append((m.lastgroup or "", m.group()))
    return out


def _skip_group(tokens: list[tuple[str, str]], i: int, open_: str, close: str) -> int:
    """Index after the bracket group that opens at ``tokens[i]``."""
    depth = 0
    for j in range(i, len(tokens)):
        if tokens[j][1] == open_:
            depth += 1
        elif tokens[j][1] == close:
            depth -= 1
            if depth == 0:
                return j + 1
    raise TemplateError(f"unbalanced {open_!r} in the query")


def _matchers(tokens: list[tuple[str, str]], i: int) -> int:
    """Checks the matcher list opening at ``tokens[i]`` (``{``); returns the index after its ``}``."""
    end = _skip_group(tokens, i, "{", "}")
    inner = tokens[i + 1:end - 1]
    if any(kind == "ident" and text == "or" for kind, text in inner):
        raise TemplateError("'or' between label matchers is not allowed: every selector must keep the "
                            "namespace matcher")
    scoped = any(inner[k][1] == "namespace" and inner[k + 1][1] == "=" and inner[k + 2][1] == f'"{_NS}"'
                 for k in range(len(inner) - 2))
    if not scoped:
        shown = " ".join(t for _, t in inner).replace(f'"{_NS}"', '"{namespace}"')
        raise TemplateError(f"the selector {{{shown}}} has no namespace matcher: every "
                            'series selector must carry {selector} or namespace="{namespace}", so that a '
                            "policy reads only its own namespace's series")
    return end


def check_template(template: object) -> list[str]:
    """The template's placeholders, after checking it renders and every selector is namespace-scoped."""
    if not isinstance(template, str) or not template.strip():
        raise TemplateError("expected a PromQL template string")
    if len(template) > MAX_TEMPLATE_CHARS:
        raise TemplateError(f"{len(template)} characters, more than {MAX_TEMPLATE_CHARS}")
    fields = render_fields(template)
    try:
        rendered = template.format(**SENTINELS)
    except (KeyError, IndexError, ValueError) as exc:  # render_fields already refused these; belt and braces
        raise TemplateError(f"does not render: {exc}") from exc
    tokens = _tokens(rendered)
    i = 0
    while i < len(tokens):
        kind, text = tokens[i]
        nxt = tokens[i + 1][1] if i + 1 < len(tokens) else ""
        if text == "{":
            i = _matchers(tokens, i)
        elif text == "[":  # a range or subquery: durations, ':' and numbers only
            i = _skip_group(tokens, i, "[", "]")
        elif kind == "ident" and text in _GROUPING and nxt == "(":
            i = _skip_group(tokens, i + 1, "(", ")")  # label names, not selectors
        elif kind == "ident" and (nxt == "(" or text in _KEYWORDS
                                  or (text in _AGGREGATORS and nxt in ("by", "without"))):
            i += 1  # a function, aggregation or keyword
        elif kind == "ident":  # a metric name: its selector must follow, with the namespace matcher
            if nxt != "{":
                raise TemplateError(f"the series selector {text} has no namespace matcher: write "
                                    f"{text}{{{{{{selector}}}}}} or {text}{{{{namespace=\"{{namespace}}\"}}}}")
            i = _matchers(tokens, i + 1)
        else:
            i += 1
    return fields
