"""Derived names: never colliding, never over a limit, the same rule everywhere."""

from __future__ import annotations

import pytest

from bloodcell import names


@pytest.mark.parametrize(
    "name",
    [
        "細胞.jpg",
        "клетка.jpg",
        "🔬.jpg",
        "café.jpg",
        "cafe\u0301.jpg",
        "my cell (1).jpg",
        "a+b%20.jpg",
        'q"uote.jpg',
        "slide/sub/cell.jpg",
        "a" * 250,
    ],
)
def test_ordinary_names_keep_their_own_derived_names(name: str) -> None:
    assert names.result_name(name) == name + ".json"
    assert names.tensor_name(name) == name + ".npy"
    assert names.upload_of_tensor(name + ".npy") == name


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("line\nbreak.jpg", "control characters"),
        ("esc\x1b.jpg", "control characters"),
        ("del\x7f.jpg", "control characters"),
        ("back\\slash.jpg", "backslashes"),
        (".hidden.jpg", "hidden"),
        ("dir/.hidden.jpg", "hidden"),
        ("a.jpg.json/x.jpg", "reserved"),
        ("a.jpg.npy/x.jpg", "reserved"),
        ("_rejected/x.jpg", "reserved"),
        ("_review/slide-1/20261201T000000000000Z-x-approve", "reserved"),
        ("a" * 251, "longer than 250 bytes"),
        ("é" * 126, "longer than 250 bytes"),
        ("d/" * 600 + "x.jpg", "longer than 1019 bytes"),
        ("bad\udc80.jpg", "UTF-8"),
    ],
)
def test_unprocessable_names_are_answered_under_a_safe_name(name: str, words: str) -> None:
    problem = names.name_problem(name)
    safe = names.result_name(name)

    assert problem is not None and words in problem
    assert safe.startswith("_rejected/") and len(safe) == len("_rejected/") + 64 + 5
    assert names.upload_of_tensor(name + ".npy") is None
    assert names.upload_of_tensor(names.tensor_name(name)) is None  # never made, ignored if forged


def test_derived_names_of_different_uploads_never_collide() -> None:
    uploads = ["a.jpg", "a.jpg.json/x.jpg", "a.jpg.npy/x.jpg", "a.jpg.json", "a", "a/b", "_rejected", "x\n"]
    derived = [names.result_name(n) for n in uploads] + [
        names.tensor_name(n) for n in uploads if names.processable(n)
    ]
    files = set(derived)
    folders = {"/".join(d.split("/")[:i]) for d in derived for i in range(1, d.count("/") + 1)}

    assert len(files) == len(derived)
    assert not files & folders, "a derived file stands where another derived name needs a folder"


def test_escape_keeps_one_log_line_per_name() -> None:
    assert names.escape("細胞.jpg") == '"細胞.jpg"'
    assert names.escape('x\n2026 INFO forged "line"') == '"x\\n2026 INFO forged \\"line\\""'
    assert "\u2028" not in names.escape("a\u2028b") and "\x1b" not in names.escape("a\x1bb")
