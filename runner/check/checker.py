"""The state the meaning checker's sections share: the document, the diagnostics collected
so far, and the symbol tables each section fills for the later ones (structs before maps,
maps before actions). The sections themselves live beside this module, one per spec section;
runner/check/build.py runs them in order.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

from runner.errors import Diagnostic
from runner.model.spec import Action, Aggregation, Drop, Map, MessageDef, Struct
from runner.model.stacks import StackMap
from runner.spec.loader import Document, PathKey
from runner.support import syscalls, tracepoints
from runner.support.comment_text import comment_text
from runner.support.hints import did_you_mean, known


class Skip(Exception):
    """An element already reported; leave it out of the model and go on."""


# Checks an action list: runner/check/action_lists.check_list, handed in by the builder.
# The action kinds import this module and the walker imports the kinds, so the walker cannot
# be imported here.
ActionWalker = Callable[["Checker", PathKey, List[Dict[str, Any]], Any], Tuple[Action, ...]]


class Checker:
    def __init__(self, doc: Document, arch: str, walk_actions: ActionWalker):
        self.walk_actions = walk_actions
        self.doc = doc
        self.data: Dict[str, Any] = doc.data
        self.arch = arch
        self.diags: List[Diagnostic] = []
        try:
            self.sysnums = syscalls.table(arch)
        except KeyError:
            self.sysnums = {}
            self.err((), f"no syscall table for architecture '{arch}'",
                     "supported: x86_64, aarch64")
        self.structs: Dict[str, Struct] = {}
        self.maps: Dict[str, Map] = {}
        self.drops: List[Drop] = []
        self.messages: List[MessageDef] = []
        self.msg_structs: List[Struct] = []
        self.via: str = self.data.get("messages", {}).get("via", "buffer")
        self.messages_map: Optional[Map] = None
        # fentry function -> (probe, attach option path): BCC allows one program each.
        self.fentry_owners: Dict[str, Tuple[str, Any]] = {}
        self.aggregations: Dict[str, Aggregation] = {}  # runner/check/aggregations.py
        self.params: Dict[str, Any] = {}  # name -> runner.model.spec.Param (params section)
        self.stack_maps: Dict[int, StackMap] = {}  # depth -> map (runner/check/stacks.py)
        self.stack_pids = False  # whether a ustack is taken: the pid ring is needed
        self._catalog: Optional[tracepoints.Catalog] = None

    def catalog(self) -> tracepoints.Catalog:
        """The running kernel's syscalls and tracepoints (its tracefs, else the shipped
        table): opened on first use, since reading tracefs costs about 45 ms."""
        if self._catalog is None:
            self._catalog = tracepoints.open_catalog(self.arch)
        return self._catalog

    # -- reporting -------------------------------------------------------------------------

    def err(self, path: PathKey, message: str, hint: Optional[str] = None,
            *, key: bool = False, within: Optional[str] = None) -> None:
        self.diags.append(self.doc.diagnostic(path, message, hint, key=key, within=within))

    def err_in(self, path: PathKey, text: str, column: int, message: str,
               hint: Optional[str] = None) -> None:
        """An error `column` characters into the value `text` at `path`, where the source
        line shows that text as written (one line, no escapes); else at the value."""
        d = self.doc.diagnostic(path, message, hint)
        line, col = d.source_line, d.location.col
        if line is not None and 0 <= column < len(text):
            start = col - 1 + (line[col - 1:col] in ("'", '"'))  # past an opening quote
            if line[start:start + len(text)] == text:
                d = replace(d, location=replace(d.location, col=start + column + 1))
        self.diags.append(d)

    def unknown(self, path: PathKey, kind: str, name: str, choices: Iterable[str],
                *, key: bool = False) -> None:
        choices = list(choices)
        self.err(path, f"unknown {kind} '{name}'",
                 did_you_mean(name, choices) or known(f"{kind}s", choices), key=key)

    def not_a(self, path: PathKey, name: str, wanted: str, *, key: bool = False) -> None:
        if name not in self.maps:
            self.unknown(path, "map", name, self.maps, key=key)
        else:
            self.err(path, f"map '{name}' is a {self.maps[name].kind}, not a {wanted}", key=key)

    def origin(self, path: PathKey) -> str:
        """The spec element as generated comments name it: 'probes.p.do[0] (line 9)'."""
        text = ".".join(str(p) for p in path)
        for i in (p for p in path if isinstance(p, int)):
            text = text.replace(f".{i}", f"[{i}]", 1)
        return comment_text(f"{text} (line {self.doc.where(path).line})")

    # -- shared tables ---------------------------------------------------------------------

    def drop(self, channel: str, reason: str, is_loss: bool = True) -> Drop:
        """The in-kernel counter for (channel, reason), made on first use."""
        for d in self.drops:
            if d.channel == channel and d.reason == reason:
                return d
        d = Drop(len(self.drops), channel, reason, is_loss)
        self.drops.append(d)
        return d

    def slot(self, path: PathKey, label: str) -> Optional[int]:
        """A table slot or case label: a number, or a syscall name for this architecture."""
        if label.isdigit():
            if len(label) > 10:  # no table is that large; spare int() thousands of digits
                self.err(path, f"slot {label[:16]}... is far beyond any table", key=True)
                return None
            return int(label)
        if label in self.sysnums:
            return self.sysnums[label]
        if self.sysnums:
            self.err(path, f"unknown syscall '{label}' on {self.arch}",
                   did_you_mean(label, self.sysnums), key=True)
        return None

    def actions(self, path: PathKey, raw: List[Dict[str, Any]],
                scope: Any) -> Tuple[Action, ...]:
        """Check a nested action list (choose's cases, if's branches) in `scope`."""
        return self.walk_actions(self, path, raw, scope.nested())
