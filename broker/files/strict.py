"""Files an operator hands to `mappa`, and the deployment's own: one strict reader.

Whatever a file holds, reading it ends in its content or in one ``FileRefused`` that
says what is wrong and where (the path, a line where there is one), never in a
traceback and never quoting what the file holds: an agreement or a key file may be
someone's mistake, a directory document may be an attacker's.

Text is UTF-8 with no byte-order mark, no NUL and no control characters but tab, line
feed and carriage return: anything else was saved by the wrong tool or is not text.
YAML is read with a loader that refuses a duplicate key (two parsers could each take a
different copy), nesting deeper than ``MAX_DEPTH``, a whole number beyond
``MAX_SAFE_INTEGER`` (JSON and its canonical form cannot carry it exactly), a number
that is not finite, a date that is not in the calendar, and aliases that expand past
``MAX_EXPANDED_CHARS``. JSON documents are held to ``strict_json``'s rules before
their own parser sees them.
"""

from __future__ import annotations

import codecs
import math
import os
import re
import stat
from collections.abc import Hashable
from pathlib import Path
from typing import Any

import yaml

from broker.crypto.encoding import MAX_SAFE_INTEGER, strict_json
from broker.errors import ConfigurationError, SchemaError

# Far beyond any agreement, directory or key file of ours; a bound on what is read.
MAX_FILE_BYTES = 16 * 1024 * 1024
# Our documents nest a handful of levels; a hostile one must not cost a RecursionError.
MAX_DEPTH = 32
# YAML aliases expand when the data is used (validated, dumped): a billion laughs is a few
# KiB on disk and tens of GB in memory. Without aliases a document's expanded size is
# about its size, so twice the largest file is never reached by an honest one.
MAX_EXPANDED_CHARS = 2 * MAX_FILE_BYTES
# More digits than any whole number within MAX_SAFE_INTEGER has, sign and "_" included:
# longer ones are refused before Python is asked to convert them.
_MAX_INTEGER_CHARS = 40
# UTF-32's first: its little-endian mark begins with UTF-16's.
_BOMS = (
    codecs.BOM_UTF32_LE,
    codecs.BOM_UTF32_BE,
    codecs.BOM_UTF8,
    codecs.BOM_UTF16_LE,
    codecs.BOM_UTF16_BE,
)
# C0 controls but tab, line feed and carriage return; DEL; C1 controls.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# A key named in a message only if it is plainly an identifier, never arbitrary text.
_NAMEABLE = re.compile(r"[A-Za-z0-9_.-]{1,64}")


class FileRefused(ConfigurationError):
    """A file `mappa` cannot take: ``problem`` says what is wrong with it, ``line`` (from
    1) where, if known; the message names the file too."""

    code = "file.invalid"

    def __init__(self, where: str, problem: str, *, code: str, line: int | None = None) -> None:
        at = f"{where}:{line}" if line is not None else where
        super().__init__(f"{at}: {problem}", code=code)
        self.problem = problem
        self.line = line


def read_bytes(path: Path, *, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of the regular file at ``path``, at most ``max_bytes``. Raises
    ``FileRefused`` (``file.unreadable``, ``file.too-large``)."""
    where = str(path)
    try:
        # Non-blocking: opening a named pipe must not wait for a writer that never comes.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as handle:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise FileRefused(
                    where, "not a regular file (a folder, a pipe, a device)", code="file.unreadable"
                )
            data = handle.read(max_bytes + 1)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise FileRefused(where, f"cannot read it: {reason}", code="file.unreadable") from None
    if len(data) > max_bytes:
        raise FileRefused(where, f"larger than {max_bytes} bytes", code="file.too-large")
    return data


def decode_text(data: bytes, where: str) -> str:
    """``data`` as text: UTF-8 without a byte-order mark, NUL or control characters (but
    tab, line feed, carriage return). Raises ``FileRefused`` (``file.encoding``)."""
    if data.startswith(_BOMS):
        raise FileRefused(
            where,
            "starts with a byte-order mark (UTF-16 or UTF-32 text, or UTF-8 with a BOM): "
            "save it as UTF-8 without one",
            code="file.encoding",
        )
    nul = data.find(b"\x00")
    if nul >= 0:
        raise FileRefused(
            where,
            f"holds a NUL byte (at byte {nul}): UTF-16 text, or not a text file",
            code="file.encoding",
            line=data.count(b"\n", 0, nul) + 1,
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise FileRefused(
            where,
            f"not UTF-8 text (first bad byte at byte {exc.start})",
            code="file.encoding",
            line=data.count(b"\n", 0, exc.start) + 1,
        ) from None
    control = _CONTROL.search(text)
    if control is not None:
        raise FileRefused(
            where,
            f"holds control character U+{ord(control.group()):04X}",
            code="file.encoding",
            line=text.count("\n", 0, control.start()) + 1,
        )
    return text


def read_text(path: Path, *, max_bytes: int = MAX_FILE_BYTES) -> str:
    """The text of the file at ``path`` (see ``decode_text``). Raises ``FileRefused``."""
    return decode_text(read_bytes(path, max_bytes=max_bytes), str(path))


def check_json(data: bytes, where: str) -> bytes:
    """``data`` if it is one JSON object by ``strict_json``'s rules (UTF-8 text, no
    duplicate key, no float, bounded nesting and numbers), for a parser that would
    otherwise take the last of two keys. Raises ``FileRefused``."""
    decode_text(data, where)
    try:
        strict_json(data)
    except SchemaError as exc:
        # strict_json's messages name a key at most, never a value.
        raise FileRefused(where, f"not acceptable JSON: {exc}", code="file.invalid-json") from None
    except (ValueError, RecursionError):
        raise FileRefused(where, "not acceptable JSON", code="file.invalid-json") from None
    return data


def read_json(path: Path, *, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of the JSON object in the file at ``path`` (see ``check_json``)."""
    return check_json(read_bytes(path, max_bytes=max_bytes), str(path))


# -- YAML ----------------------------------------------------------------------------------


class _Refused(yaml.MarkedYAMLError):
    """A document the strict loader will not take, at ``problem_mark``."""

    def __init__(self, problem: str, mark: yaml.Mark | None, code: str) -> None:
        super().__init__(problem=problem, problem_mark=mark)
        self.code = code


class StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, held to the rules in the module's docstring."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        # The composer recurses once per level: count the levels before Python's limit.
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise _Refused(f"nested deeper than {MAX_DEPTH} levels", mark, "file.too-deep")
            node: yaml.Node | None = super().compose_node(parent, index)
            return node
        finally:
            self._depth -= 1

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue  # a merge (<<) may override; only written keys must be unique
            key = self.construct_object(key_node, deep=deep)
            try:
                repeated = key in seen
            except TypeError:
                continue  # unhashable: the safe constructor refuses it in its own words
            if repeated:
                name = f" {key!r}" if isinstance(key, str) and _NAMEABLE.fullmatch(key) else ""
                raise _Refused(f"duplicate key{name}", key_node.start_mark, "file.duplicate-key")
            seen.add(key)
        mapping: dict[Hashable, Any] = super().construct_mapping(node, deep=deep)
        return mapping

    def construct_yaml_int(self, node: yaml.ScalarNode) -> int:
        if len(str(node.value)) > _MAX_INTEGER_CHARS:
            raise _Refused(self._beyond(), node.start_mark, "file.number")
        try:
            value: int = super().construct_yaml_int(node)
        except ValueError:
            raise _Refused("not a whole number", node.start_mark, "file.number") from None
        if abs(value) > MAX_SAFE_INTEGER:
            raise _Refused(self._beyond(), node.start_mark, "file.number")
        return value

    @staticmethod
    def _beyond() -> str:
        return f"a whole number beyond the safe range (-{MAX_SAFE_INTEGER} to {MAX_SAFE_INTEGER})"

    def construct_yaml_float(self, node: yaml.ScalarNode) -> float:
        try:
            value: float = super().construct_yaml_float(node)
        except (ValueError, OverflowError):
            value = math.nan
        if not math.isfinite(value):
            raise _Refused("not a finite number", node.start_mark, "file.number")
        return value

    def construct_yaml_timestamp(self, node: yaml.ScalarNode) -> Any:
        try:
            return super().construct_yaml_timestamp(node)
        except (ValueError, OverflowError):
            raise _Refused(
                "not a real date or time (no such day, or out of range)",
                node.start_mark,
                "file.date",
            ) from None


StrictLoader.add_constructor("tag:yaml.org,2002:int", StrictLoader.construct_yaml_int)
StrictLoader.add_constructor("tag:yaml.org,2002:float", StrictLoader.construct_yaml_float)
StrictLoader.add_constructor("tag:yaml.org,2002:timestamp", StrictLoader.construct_yaml_timestamp)


def expanded_size(root: yaml.Node) -> int:
    """Roughly how many characters the document has with every alias expanded, computed
    without expanding it: an alias is the same node object, so each node is sized once
    (and a node that contains itself counts once)."""
    sizes: dict[int, int] = {}

    def size(node: yaml.Node) -> int:
        if id(node) in sizes:
            return sizes[id(node)]
        sizes[id(node)] = 0
        if isinstance(node, yaml.ScalarNode):
            total = len(str(node.value)) + 2
        elif isinstance(node, yaml.SequenceNode):
            total = 2 + sum(size(child) + 1 for child in node.value)
        else:
            total = 2 + sum(size(k) + size(v) + 2 for k, v in node.value)
        sizes[id(node)] = total
        return total

    return size(root)


def _line(exc: yaml.MarkedYAMLError) -> int | None:
    mark = exc.problem_mark or exc.context_mark
    return mark.line + 1 if mark is not None else None


def _problem(exc: yaml.YAMLError) -> str:
    # PyYAML's own words, bounded; a syntax error quotes a character at most.
    text = str(getattr(exc, "problem", None) or "").strip() or "cannot be read"
    return " ".join(text.split())[:120]


def compose_yaml(
    text: str, where: str, *, max_expanded: int = MAX_EXPANDED_CHARS
) -> tuple[Any, yaml.Node | None]:
    """The data of the one YAML document in ``text`` and its node tree (which keeps each
    node's line), by the strict loader, its aliases expanding to at most ``max_expanded``
    characters. Raises ``FileRefused`` (``file.syntax``, ``file.duplicate-key``,
    ``file.too-deep``, ``file.number``, ``file.date``, ``file.too-large``) with the line
    where there is one."""
    loader = StrictLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None, None
        if expanded_size(root) > max_expanded:
            raise FileRefused(
                where, "expands to too large a document (YAML aliases)", code="file.too-large"
            )
        return loader.construct_document(root), root
    except _Refused as exc:
        raise FileRefused(where, _problem(exc), code=exc.code, line=_line(exc)) from None
    except yaml.MarkedYAMLError as exc:
        problem = f"not valid YAML: {_problem(exc)}"
        raise FileRefused(where, problem, code="file.syntax", line=_line(exc)) from None
    except yaml.YAMLError as exc:
        problem = f"not valid YAML: {_problem(exc)}"
        raise FileRefused(where, problem, code="file.syntax") from None
    finally:
        loader.dispose()


def parse_yaml(text: str, where: str, *, max_expanded: int = MAX_EXPANDED_CHARS) -> Any:
    """The data of the YAML document in ``text`` (see ``compose_yaml``)."""
    return compose_yaml(text, where, max_expanded=max_expanded)[0]


def read_yaml(
    path: Path, *, max_bytes: int = MAX_FILE_BYTES, max_expanded: int = MAX_EXPANDED_CHARS
) -> Any:
    """The data of the YAML (or JSON) document in the file at ``path``, read by
    ``read_text`` and the strict loader. Raises ``FileRefused``."""
    return parse_yaml(read_text(path, max_bytes=max_bytes), str(path), max_expanded=max_expanded)
