"""The expression tree and its C spelling: the checker builds trees, only codegen writes C."""

from __future__ import annotations

import pytest

from runner.check.arith import Typed, parse_condition
from runner.check.expr import ExprError
from runner.codegen.c_expr import c_type, spell
from runner.kinds.builtins import BUILTINS
from runner.kinds.registry import UnknownKind
from runner.model.expr import BuiltinRef, Cast, Compare, Const, Group, Logic, Not
from runner.model.types import parse_type


def _parse(text):
    """(tree, the names it used), built-ins only."""
    used = []

    def resolve(name, col):
        used.append(name)
        return Typed(BuiltinRef(name), BUILTINS[name].type)
    return parse_condition(text, resolve), used


def test_a_condition_becomes_a_tree_of_names_and_numbers():
    tree, used = _parse("uid == 0 && !(pid > 0x10 || syscall_nr != -1)")
    assert used == ["uid", "pid", "syscall_nr"]
    assert tree == Logic("&&", (
        Compare("==", BuiltinRef("uid"), Const(0)),
        Not(Group(Logic("||", (Compare(">", BuiltinRef("pid"), Const(16)),
                               Compare("!=", BuiltinRef("syscall_nr"), Const(-1))))))))


def test_codegen_spells_the_tree_with_every_operand_bracketed():
    tree, _ = _parse("uid == 0 && !(pid > 0x10 || cpu != 18446744073709551615)")
    assert spell(tree) == ("(((u32)er_uid_gid) == 0LL) && !((((u32)(er_pid_tgid >> 32)) > 16LL)"
                           " || ((bpf_get_smp_processor_id()) != 18446744073709551615ULL))")


def test_values_spell_with_their_width():
    assert spell(Const(7)) == "7LL"
    assert spell(Const(7, wide=False)) == "7"
    assert spell(Cast("u32", BuiltinRef("ktime"))) == "(u32)(bpf_ktime_get_ns())"


def test_types_spell_as_bcc_wants_them():
    assert c_type(None) == "u32"
    assert c_type(parse_type("s64")) == "s64"
    assert c_type(parse_type("key_t")) == "struct key_t"


def test_an_unknown_node_is_an_internal_error():
    with pytest.raises(UnknownKind, match="no C spelling for str"):
        spell("uid")  # type: ignore[arg-type]


@pytest.mark.parametrize("text,column", [("uid ==", 6), ("(uid == 1", 9), ("01 == uid", 0),
                                         ("uid = 1", 4), ("", 0)])
def test_bad_conditions_name_their_column(text, column):
    with pytest.raises(ExprError) as e:
        _parse(text)
    assert e.value.column == column


def test_an_unsigned_builtin_against_a_negative_number_is_refused_where_c_gets_it_wrong():
    _parse("arg0 == -1")  # a u64 holding (u64)-1: C's conversion is what the spec means
    for text, col in (("ktime > -1", 8), ("-5 <= arg0", 0), ("uid == -1", 7)):
        with pytest.raises(ExprError) as info:
            _parse(text)
        assert info.value.column == col
