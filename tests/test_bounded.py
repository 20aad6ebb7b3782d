"""``common.bounded``: user regular expressions and jq programs with a deadline (issue 13).

RE2 runs what it can in linear time; what only a backtracking engine runs (backreferences,
lookaround: Java's regex, hence Kestra's flows, have them) and every jq program run in a helper
process killed at its deadline. No timing is asserted: a catastrophic case must end with the
error, whatever the machine's speed."""

from __future__ import annotations

import re

import pytest

from common import bounded
from common.storage.namespace_files import path_matcher


@pytest.fixture(autouse=True)
def _short_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bounded, "MAX_REGEX_SECONDS", 0.3)
    monkeypatch.setattr(bounded, "MAX_JQ_SECONDS", 0.3)


@pytest.mark.parametrize(
    ("pattern", "template", "text"),
    [
        ("a", r"\n", "xa"),
        ("(a)", r"<\g<1>>", "aa"),
        ("(?P<n>a)", r"\g<n>\g<0>", "ba"),
        ("x*", "-", "abc"),
        ("(a)|b", r"[\1]", "ab"),
        (r"\d", "#", "a1\u0663"),  # ASCII classes, as Java's default
        (r"(a)\1", "b", "aaa"),  # a backreference: the helper's engine
        (r"a(?=b)", "x", "abac"),  # lookahead: the helper's engine
    ],
)
def test_sub_is_pythons_sub_with_ascii_classes(pattern: str, template: str, text: str) -> None:
    assert bounded.sub(pattern, template, text, 1000) == re.sub(
        pattern, template, text, flags=re.ASCII
    )


def test_catastrophic_patterns_end() -> None:
    text = "a" * 64 + "b"
    assert bounded.fullmatch(r"(a+)+$", text) is False  # RE2: linear
    assert bounded.search(r"(a|aa)*c", text) is False
    with pytest.raises(bounded.LimitExceeded, match=r"did not finish within 0\.3 s \(limit\)"):
        bounded.fullmatch(r"(a+)+\1$", text)
    with pytest.raises(bounded.LimitExceeded):
        bounded.search(r"(?=(a|aa)+$)", text[:-1] + "!")
    assert bounded.fullmatch(r"(a)\1", "aa") is True  # the helper was replaced


def test_bad_patterns_and_group_references() -> None:
    with pytest.raises(re.error):
        bounded.check("(")
    with pytest.raises(bounded.ProgramError):
        bounded.sub("(a)", r"\2", "a", 100)
    assert bounded.sub("a", "bb", "a" * 100, 150) is None  # measured before it is built


def test_jq_runs_in_a_helper_with_no_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LANNER_BOUNDED_CANARY", "canary-3b1f")
    assert bounded.run_jq(".a + 1", '{"a": 1}') == [2]
    assert "canary-3b1f" not in str(bounded.run_jq("env", "null"))
    with pytest.raises(bounded.ProgramError, match="boom"):
        bounded.run_jq('error("boom")', "null")
    with pytest.raises(bounded.LimitExceeded, match="did not finish"):
        bounded.run_jq("def f: f; f", "null")
    assert bounded.run_jq(".", "[1]") == [[1]]


def test_path_patterns_of_users_are_bounded() -> None:
    """Namespace files' ``regex:`` include/exclude patterns run on a worker thread."""
    assert path_matcher(["regex:/a/.*\\.py"]).fullmatch("/a/b.py")
    assert path_matcher([]).fullmatch("/a") is None
    with pytest.raises(ValueError, match="path pattern"):
        path_matcher(["regex:(a+)+\\1$"]).fullmatch("a" * 64 + "b")
