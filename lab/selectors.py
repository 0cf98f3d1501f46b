"""Label and field selectors with the apiserver's syntax and the fields it supports."""

from __future__ import annotations

import re
from collections.abc import Callable

Predicate = Callable[[dict], bool]

# Field selectors the real apiserver accepts per resource (besides metadata.name/namespace).
FIELDS: dict[str, dict[str, Callable[[dict], str]]] = {
    "pods": {
        "spec.nodeName": lambda o: o["spec"].get("nodeName", ""),
        "spec.restartPolicy": lambda o: o["spec"].get("restartPolicy", ""),
        "spec.schedulerName": lambda o: o["spec"].get("schedulerName", ""),
        "spec.serviceAccountName": lambda o: o["spec"].get("serviceAccountName", ""),
        "spec.hostNetwork": lambda o: str(bool(o["spec"].get("hostNetwork"))).lower(),
        "status.phase": lambda o: o.get("status", {}).get("phase", ""),
        "status.podIP": lambda o: o.get("status", {}).get("podIP", ""),
        "status.nominatedNodeName": lambda o: o.get("status", {}).get("nominatedNodeName", ""),
    },
    "nodes": {
        "spec.unschedulable": lambda o: str(bool(o["spec"].get("unschedulable"))).lower(),
    },
}
COMMON_FIELDS: dict[str, Callable[[dict], str]] = {
    "metadata.name": lambda o: o["metadata"]["name"],
    "metadata.namespace": lambda o: o["metadata"].get("namespace", ""),
}


class SelectorError(ValueError):
    pass


def _split_terms(text: str) -> list[str]:
    """Split on commas that are not inside an `in (...)` set."""
    terms, depth, current = [], 0, []
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            terms.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    if current:
        terms.append("".join(current).strip())
    return [t for t in terms if t]


_SET_TERM = re.compile(r"^([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)$")
_EQ_TERM = re.compile(r"^([\w./-]+)\s*(==|=|!=)\s*([\w./-]*)$")
_EXISTS_TERM = re.compile(r"^(!?)\s*([\w./-]+)$")


def parse_label_selector(text: str | None) -> Predicate:
    if not text:
        return lambda _o: True
    checks: list[Callable[[dict[str, str]], bool]] = []
    for term in _split_terms(text):
        if match := _SET_TERM.match(term):
            key, op, values = match[1], match[2], {v.strip() for v in match[3].split(",")}
            if op == "in":
                checks.append(lambda labels, k=key, vs=values: labels.get(k) in vs)
            else:
                checks.append(lambda labels, k=key, vs=values: labels.get(k) not in vs)
        elif match := _EQ_TERM.match(term):
            key, op, value = match[1], match[2], match[3]
            if op == "!=":
                checks.append(lambda labels, k=key, v=value: labels.get(k) != v)
            else:
                checks.append(lambda labels, k=key, v=value: labels.get(k) == v)
        elif match := _EXISTS_TERM.match(term):
            negate, key = match[1] == "!", match[2]
            checks.append(lambda labels, k=key, n=negate: (k in labels) != n)
        else:
            raise SelectorError(f"unable to parse requirement: {term!r}")

    def accepts(obj: dict) -> bool:
        labels = obj["metadata"].get("labels") or {}
        return all(check(labels) for check in checks)

    return accepts


def parse_field_selector(resource: str, text: str | None) -> tuple[Predicate, dict[str, str]]:
    """A predicate plus the exact-match terms (so callers can use an index for them)."""
    if not text:
        return (lambda _o: True), {}
    fields = {**COMMON_FIELDS, **FIELDS.get(resource, {})}
    checks: list[Predicate] = []
    exact: dict[str, str] = {}
    for term in _split_terms(text):
        match = re.match(r"^([\w.]+)\s*(==|=|!=)\s*(.*)$", term)
        if not match:
            raise SelectorError(f"invalid selector: '{text}'; can't understand '{term}'")
        field, op, value = match[1], match[2], match[3]
        getter = fields.get(field)
        if getter is None:
            raise SelectorError(f'field label not supported: {field}')
        if op == "!=":
            checks.append(lambda o, g=getter, v=value: g(o) != v)
        else:
            exact[field] = value
            checks.append(lambda o, g=getter, v=value: g(o) == v)
    return (lambda o: all(check(o) for check in checks)), exact


def selector_matches(selector: dict | None, labels: dict[str, str] | None) -> bool:
    """A metav1.LabelSelector against labels; an empty selector matches everything."""
    labels = labels or {}
    selector = selector or {}
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], set(expr.get("values") or [])
        if op == "In" and labels.get(key) not in values:
            return False
        if op == "NotIn" and labels.get(key) in values:
            return False
        if op == "Exists" and key not in labels:
            return False
        if op == "DoesNotExist" and key in labels:
            return False
    return True


def pdb_selects(selector: dict | None, labels: dict[str, str] | None) -> bool:
    """Whether a policy/v1 PodDisruptionBudget's selector takes in a pod: no selector takes in
    none, an empty one (`{}`) every pod of the namespace. (policy/v1beta1 read `{}` as none; since
    policy/v1 both the eviction subresource and the disruption controller read it as all.)"""
    return selector is not None and selector_matches(selector, labels)
