"""Names derived from an upload's name (tensor, result) and names made safe for logs.

Derived names must never collide and never exceed a limit, on any backend:

- flat stores (S3, GCS) cap a key at 1,024 bytes; folder buckets cap each path
  component at 255 bytes (NAME_MAX) and cannot hold a file and a folder under one name;
- so ``<name>.npy`` / ``<name>.json`` are used only for a *processable* name: one
  whose derived names fit both limits, whose folder components never end in ``.json``
  or ``.npy`` (so no derived file can sit where another upload's derived folder is),
  that holds no control character or backslash, no hidden (dot) component, and does
  not start with a reserved system folder (``_rejected/``, ``_review/``: any top-level ``_`` folder);
- every other name is answered by a ``rejected`` result at ``_rejected/<sha256>.json``:
  fixed length, and no processable name can ever derive a name in that folder.

The rule is a pure function of the name, so preprocess, predict, the web app and the
event source all agree on it without asking storage.
"""

from __future__ import annotations

import hashlib
import unicodedata

RESULT_SUFFIX = ".json"
TENSOR_SUFFIX = ".npy"
REJECTED_FOLDER = "_rejected"
# top-level folders of the result bucket that belong to the system, never to an upload's derived names:
# ``_rejected/`` (results of unprocessable names) and ``_review/`` (review records, bloodcell.review)
SYSTEM_FOLDER_PREFIX = "_"
MAX_KEY_BYTES = 1024  # S3 and GCS object keys
MAX_COMPONENT_BYTES = 255  # NAME_MAX of Linux and macOS file systems
_RESERVED_FOLDER_SUFFIXES = (RESULT_SUFFIX, TENSOR_SUFFIX)
# control, format (bidi overrides, zero-width) and line/paragraph separators forge log lines
_UNSAFE_CATEGORIES = {"Cc", "Cf", "Cs", "Zl", "Zp"}


def _bytes(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def hidden(name: str) -> bool:
    """A part of the name starts with '.': a dot-file, or a file in a hidden folder."""
    return any(part.startswith(".") for part in name.split("/"))


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot have derived names of its own, as a sentence; None when it can."""
    if not name:
        return "object name is empty"
    if "\\" in name or any(unicodedata.category(c) == "Cc" for c in name):
        return "object name holds control characters or backslashes"
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "object name is not valid UTF-8"
    parts = name.split("/")
    if name.startswith("/") or any(p in ("", ".", "..") for p in parts):
        return "object name is absolute or has empty, '.' or '..' parts"
    if hidden(name):
        return "object name has a hidden part (starting with '.')"
    if parts[0].startswith(SYSTEM_FOLDER_PREFIX) and len(parts) > 1:
        return "top-level folders starting with '_' are reserved (rejected results, review records)"
    if any(p.endswith(_RESERVED_FOLDER_SUFFIXES) for p in parts[:-1]):
        return "folder names ending in .json or .npy are reserved for derived objects"
    longest = max(RESULT_SUFFIX, TENSOR_SUFFIX, key=len)
    if _bytes(name + longest) > MAX_KEY_BYTES:
        return f"object name is longer than {MAX_KEY_BYTES - len(longest)} bytes"
    if any(_bytes(p) > MAX_COMPONENT_BYTES for p in parts[:-1]) or (
        _bytes(parts[-1] + longest) > MAX_COMPONENT_BYTES
    ):
        return f"a part of the object name is longer than {MAX_COMPONENT_BYTES - len(longest)} bytes"
    return None


def processable(name: str) -> bool:
    return name_problem(name) is None


def _digest(name: str) -> str:
    return hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()


def result_name(upload_name: str) -> str:
    """Where the one answer for this upload lives: its own name, or the rejected folder."""
    if processable(upload_name):
        return upload_name + RESULT_SUFFIX
    return f"{REJECTED_FOLDER}/{_digest(upload_name)}{RESULT_SUFFIX}"


def tensor_name(upload_name: str) -> str:
    """Only processable names ever get a tensor; for any other the name of one that never
    exists (in the rejected folder, which predict ignores), so callers need no special case."""
    if processable(upload_name):
        return upload_name + TENSOR_SUFFIX
    return f"{REJECTED_FOLDER}/{_digest(upload_name)}{TENSOR_SUFFIX}"


def upload_of_tensor(tensor: str) -> str | None:
    """The upload a tensor name belongs to, checked exactly as preprocess checks uploads."""
    if not tensor.endswith(TENSOR_SUFFIX):
        return None
    upload = tensor[: -len(TENSOR_SUFFIX)]
    return upload if processable(upload) else None


def displayable(name: str) -> str:
    """The name as people can read it: bytes that were not UTF-8 shown as U+FFFD."""
    try:
        return name.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:
        return name.encode("utf-8", "replace").decode("utf-8")


def escape(name: str) -> str:
    """A name fit for one log line: quoted, with control and invisible characters escaped."""
    out = []
    for char in name:
        if unicodedata.category(char) in _UNSAFE_CATEGORIES or char in '"\\':
            out.append(char.encode("unicode_escape").decode("ascii") if char != '"' else '\\"')
        else:
            out.append(char)
    return '"' + "".join(out) + '"'
