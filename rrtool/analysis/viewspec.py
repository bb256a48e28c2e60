"""The views of a trace, defined once and rendered twice: as Polars lazy frames and as DuckDB SQL.

The events table is one wide table with typed nullable columns per kind; a
view picks one kind's rows and columns, names them for what they mean
(`direction`, `latency_ns`, `host_wait_ns`) and adds what is tedious to
derive by hand (a block request's completion, a warp's real waiting time).
`Trace.packets` and friends are Polars, `rrtool sql` is DuckDB, and neither
engine can run the other's definitions well: Polars' SQL has no binary
functions and no ASOF join, and a view computed in one engine and handed to
the other through Arrow is several times slower than either alone (DuckDB
reading a Polars frame cannot push its projection down). So each view is
written here once, as a list of columns in a small expression language, and
every construct of that language (a column, a hex preview, the UTF-8 text
of some bytes, the completion of a block request) carries both its
renderings side by side. `rrtool.analysis.frames` turns a view into a
LazyFrame, `rrtool.analysis.views` into a DuckDB view; a test runs every
view in both engines over real recordings and compares the rows.

A view's rows are the events of its kinds in `seq` order. An expression
sees one such row (`Col`) and may look at other rows of the events table
through a `Join`: the checkpoint row of its checkpoint (or the next one),
the number of events in its checkpoint, a block request's completion.
"""

from __future__ import annotations

import errno
import functools
import operator
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import polars as pl

from rrtool.schemas import events as ev

#: Bytes of `data` shown in hex in `data_hex`.
HEX_PREVIEW_BYTES = 32


def quote(name: str) -> str:
    """A SQL identifier, quoted (column names such as `order` are keywords)."""
    return '"' + name.replace('"', '""') + '"'


def sql_literal(value: object) -> str:
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return repr(value)


class Render:
    """Where an expression is rendered: the SQL alias or the Polars column prefix of each join, and the keys.

    `keys` are the columns that tell one trace's rows from another's in a
    table of many (a corpus: `trace`). Every join matches on them too, and
    `Prev` looks back only within the row's own trace, so a view over a
    corpus is each trace's view with the keys in front.
    """

    def __init__(self, joins: dict[Join, str], keys: tuple[str, ...] = ()) -> None:
        self.joins = joins
        self.keys = keys

    def partition_sql(self, alias: str = "v") -> str:
        """`PARTITION BY` the keys of `alias`, with a trailing space; empty without keys."""
        return f"PARTITION BY {', '.join(f'{alias}.{quote(k)}' for k in self.keys)} " if self.keys else ""

    def on_keys_sql(self, alias: str) -> str:
        """`AND`-joined conditions that `alias`'s rows have the view row's keys, with a leading AND."""
        return "".join(f" AND {alias}.{quote(k)} = v.{quote(k)}" for k in self.keys)


# -- expressions ---------------------------------------------------------------------------------------------


class Expr:
    """A value computed from one row of a view, in SQL (`v` is the row) and in Polars."""

    def sql(self, r: Render) -> str:
        raise NotImplementedError

    def polars(self, r: Render) -> pl.Expr:
        raise NotImplementedError

    def parts(self) -> tuple[Expr, ...]:
        return ()

    def lookups(self) -> Iterator[Joined]:
        """The joined columns this expression reads, so the renderers can add their joins."""
        for part in self.parts():
            yield from part.lookups()

    def __add__(self, other: Expr) -> Expr:
        return BinOp("+", self, other)

    def __sub__(self, other: Expr) -> Expr:
        return BinOp("-", self, other)

    def __mul__(self, other: Expr) -> Expr:
        return BinOp("*", self, other)


@dataclass(frozen=True, eq=False)
class Col(Expr):
    """A column of the row itself."""

    name: str

    def sql(self, r: Render) -> str:
        return f"v.{quote(self.name)}"

    def polars(self, r: Render) -> pl.Expr:
        return pl.col(self.name)


@dataclass(frozen=True, eq=False)
class Lit(Expr):
    value: int | float | str

    def sql(self, r: Render) -> str:
        return sql_literal(self.value)

    def polars(self, r: Render) -> pl.Expr:
        return pl.lit(self.value)


_OPS: dict[str, Callable[[pl.Expr, pl.Expr], pl.Expr]] = {"+": operator.add, "-": operator.sub, "*": operator.mul}


@dataclass(frozen=True, eq=False)
class BinOp(Expr):
    """Arithmetic. No division: Polars divides a column by a constant sometimes exactly and sometimes as a
    multiplication by the reciprocal (it depends on the kernel, so on the frame), one ulp apart at times; a
    multiplication is the same double in both engines."""

    op: str
    left: Expr
    right: Expr

    def parts(self) -> tuple[Expr, ...]:
        return (self.left, self.right)

    def sql(self, r: Render) -> str:
        return f"({self.left.sql(r)} {self.op} {self.right.sql(r)})"

    def polars(self, r: Render) -> pl.Expr:
        return _OPS[self.op](self.left.polars(r), self.right.polars(r))


@dataclass(frozen=True, eq=False)
class ByteLen(Expr):
    """Length in bytes of a binary value."""

    x: Expr

    def parts(self) -> tuple[Expr, ...]:
        return (self.x,)

    def sql(self, r: Render) -> str:
        return f"octet_length({self.x.sql(r)})"

    def polars(self, r: Render) -> pl.Expr:
        return self.x.polars(r).bin.size().cast(pl.Int64)


@dataclass(frozen=True, eq=False)
class Hex(Expr):
    """Bytes [start, start + length) of a binary value in lower-case hex (fewer when the value is shorter)."""

    x: Expr
    start: int
    length: int

    def parts(self) -> tuple[Expr, ...]:
        return (self.x,)

    def sql(self, r: Render) -> str:
        return f"lower(hex({self.x.sql(r)}[{self.start + 1}:{self.start + self.length}]))"

    def polars(self, r: Render) -> pl.Expr:
        return self.x.polars(r).bin.slice(self.start, self.length).bin.encode("hex")


@dataclass(frozen=True, eq=False)
class Mac(Expr):
    """Six bytes from `start` as a MAC address, `aa:bb:cc:dd:ee:ff` (fewer groups when the value is shorter)."""

    x: Expr
    start: int

    def parts(self) -> tuple[Expr, ...]:
        return (self.x,)

    def sql(self, r: Render) -> str:
        return rf"rtrim(regexp_replace({Hex(self.x, self.start, 6).sql(r)}, '(..)', '\1:', 'g'), ':')"

    def polars(self, r: Render) -> pl.Expr:
        return Hex(self.x, self.start, 6).polars(r).str.replace_all("(..)", "$1:").str.strip_chars_end(":")


@dataclass(frozen=True, eq=False)
class BigEndian16(Expr):
    """The unsigned big-endian 16-bit number at byte `start` (an ethertype); null when the value is shorter."""

    x: Expr
    start: int

    def parts(self) -> tuple[Expr, ...]:
        return (self.x,)

    def sql(self, r: Render) -> str:
        x, s = self.x.sql(r), self.start
        return f"CASE WHEN octet_length({x}) >= {s + 2} THEN ('0x' || hex({x}[{s + 1}:{s + 2}]))::INTEGER END"

    def polars(self, r: Render) -> pl.Expr:
        two = self.x.polars(r).bin.slice(self.start, 2)
        return two.bin.reinterpret(dtype=pl.UInt16, endianness="big").cast(pl.Int32)


# UTF-8 decoding with every ill-formed part replaced by U+FFFD, as Python's bytes.decode("utf-8", "replace")
# does it (one U+FFFD per maximal subpart, Unicode 15 section 3.9), from functions both engines have: the
# bytes in hex, checked against the well-formed sequences; when they are not all well-formed, a regular
# expression matches, at every byte boundary, either one well-formed sequence (group 1, kept) or one
# maximal ill-formed part (group 2, marked), and the marks become EF BF BD.
_CONT = "[89ab][0-9a-f]"
_WELL_FORMED = "|".join((  # Unicode table 3-7, byte by byte in lower-case hex
    "[0-7][0-9a-f]", f"(?:c[2-9a-f]|d[0-9a-f]){_CONT}", f"e0[ab][0-9a-f]{_CONT}", f"e[1-9a-cef]{_CONT}{_CONT}",
    f"ed[89][0-9a-f]{_CONT}", f"f0[9ab][0-9a-f]{_CONT}{_CONT}", f"f[1-3]{_CONT}{_CONT}{_CONT}",
    f"f48[0-9a-f]{_CONT}{_CONT}",
))  # fmt: skip
_ILL_FORMED = "|".join((  # a truncated well-formed sequence (longest first), else any one byte
    "e0(?:[ab][0-9a-f])?", f"e[1-9a-cef](?:{_CONT})?", "ed(?:[89][0-9a-f])?", f"f0(?:[9ab][0-9a-f](?:{_CONT})?)?",
    f"f[1-3](?:{_CONT}(?:{_CONT})?)?", f"f4(?:8[0-9a-f](?:{_CONT})?)?", "[0-9a-f]{2}",
))  # fmt: skip
UTF8_VALID = f"(?:{_WELL_FORMED})*"
UTF8_UNITS = f"({_WELL_FORMED})|({_ILL_FORMED})"
_REPLACEMENT_HEX = "efbfbd"


@dataclass(frozen=True, eq=False)
class Utf8(Expr):
    """A binary value decoded as UTF-8, every ill-formed part shown as U+FFFD.

    Valid values (nearly all) take the fast path, a plain decode; the
    capturing regular expression, several times slower, runs on the others.
    """

    x: Expr

    def parts(self) -> tuple[Expr, ...]:
        return (self.x,)

    def sql(self, r: Render) -> str:
        x = self.x.sql(r)
        marked = rf"regexp_replace(lower(hex({x})), '{UTF8_UNITS}', '\1<\2>', 'g')"
        fixed = f"regexp_replace(regexp_replace({marked}, '<>', '', 'g'), '<[0-9a-f]+>', '{_REPLACEMENT_HEX}', 'g')"
        valid = f"regexp_full_match(lower(hex({x})), '{UTF8_VALID}')"
        return f"CASE WHEN {valid} THEN decode({x}) ELSE decode(unhex({fixed})) END"  # CASE: ELSE on the rest only

    def polars(self, r: Render) -> pl.Expr:
        x = self.x.polars(r)
        hexed = x.bin.encode("hex")
        valid = hexed.str.contains(f"^{UTF8_VALID}$")
        rest = pl.when(valid).then(pl.lit("")).otherwise(hexed)  # Polars computes every branch on every row
        marked = rest.str.replace_all(UTF8_UNITS, "${1}<${2}>")
        fixed = marked.str.replace_all("<>", "", literal=True).str.replace_all("<[0-9a-f]+>", _REPLACEMENT_HEX)
        text = pl.when(valid).then(x).otherwise(pl.lit(b"")).cast(pl.String)  # the cast checks every value
        return pl.when(valid).then(text).otherwise(fixed.str.decode("hex").cast(pl.String))


@dataclass(frozen=True, eq=False)
class Map(Expr):
    """A string column's values mapped to others (null for a value not listed)."""

    x: Expr
    mapping: tuple[tuple[str, str], ...]

    def parts(self) -> tuple[Expr, ...]:
        return (self.x,)

    def sql(self, r: Render) -> str:
        cases = " ".join(f"WHEN {sql_literal(k)} THEN {sql_literal(v)}" for k, v in self.mapping)
        return f"CASE {self.x.sql(r)} {cases} END"

    def polars(self, r: Render) -> pl.Expr:
        return self.x.polars(r).cast(pl.String).replace_strict(dict(self.mapping), default=None, return_dtype=pl.String)


@dataclass(frozen=True, eq=False)
class Names(Expr):
    """An integer column's values named (null for a value not listed): `Map` for numbers such as an errno."""

    x: Expr
    mapping: tuple[tuple[int, str], ...]

    def parts(self) -> tuple[Expr, ...]:
        return (self.x,)

    def sql(self, r: Render) -> str:
        cases = " ".join(f"WHEN {k} THEN {sql_literal(v)}" for k, v in self.mapping)
        return f"CASE {self.x.sql(r)} {cases} END"

    def polars(self, r: Render) -> pl.Expr:
        return self.x.polars(r).replace_strict(dict(self.mapping), default=None, return_dtype=pl.String)


@dataclass(frozen=True, eq=False)
class Item(Expr):
    """Element `index` (from 0) of a list value; null when the list is shorter (or null)."""

    x: Expr
    index: int

    def parts(self) -> tuple[Expr, ...]:
        return (self.x,)

    def sql(self, r: Render) -> str:
        return f"{self.x.sql(r)}[{self.index + 1}]"  # DuckDB lists count from 1, and are null out of range

    def polars(self, r: Render) -> pl.Expr:
        return self.x.polars(r).list.get(self.index, null_on_oob=True)


#: Linux returns an error as -errno in RAX, from -4095 to -1; anything else is a result (an mmap address above
#: 2^63 would look negative too, but user space never gets one on x86-64).
MAX_ERRNO = 4095


@dataclass(frozen=True, eq=False)
class Errno(Expr):
    """The errno of a system call's result: -ret when it is in Linux's error range, else null."""

    ret: Expr

    def parts(self) -> tuple[Expr, ...]:
        return (self.ret,)

    def sql(self, r: Render) -> str:
        ret = self.ret.sql(r)
        return f"CASE WHEN {ret} BETWEEN {-MAX_ERRNO} AND -1 THEN -{ret} END"

    def polars(self, r: Render) -> pl.Expr:
        ret = self.ret.polars(r)
        return pl.when(ret.is_between(-MAX_ERRNO, -1)).then(-ret)


@dataclass(frozen=True, eq=False)
class IsNull(Expr):
    x: Expr

    def parts(self) -> tuple[Expr, ...]:
        return (self.x,)

    def sql(self, r: Render) -> str:
        return f"({self.x.sql(r)} IS NULL)"

    def polars(self, r: Render) -> pl.Expr:
        return self.x.polars(r).is_null()


@dataclass(frozen=True, eq=False)
class IsNotNull(Expr):
    x: Expr

    def parts(self) -> tuple[Expr, ...]:
        return (self.x,)

    def sql(self, r: Render) -> str:
        return f"({self.x.sql(r)} IS NOT NULL)"

    def polars(self, r: Render) -> pl.Expr:
        return self.x.polars(r).is_not_null()


@dataclass(frozen=True, eq=False)
class In(Expr):
    """Whether a value is one of `values` (null for a null value)."""

    x: Expr
    values: tuple[str, ...]

    def parts(self) -> tuple[Expr, ...]:
        return (self.x,)

    def sql(self, r: Render) -> str:
        return f"({self.x.sql(r)} IN ({', '.join(sql_literal(v) for v in self.values)}))"

    def polars(self, r: Render) -> pl.Expr:
        return self.x.polars(r).cast(pl.String).is_in(list(self.values))


@dataclass(frozen=True, eq=False)
class Not(Expr):
    x: Expr

    def parts(self) -> tuple[Expr, ...]:
        return (self.x,)

    def sql(self, r: Render) -> str:
        return f"(NOT {self.x.sql(r)})"

    def polars(self, r: Render) -> pl.Expr:
        return ~self.x.polars(r)


@dataclass(frozen=True, eq=False)
class And(Expr):
    """Every condition holds (SQL's three-valued AND, which Polars' `&` also follows)."""

    terms: tuple[Expr, ...]

    def parts(self) -> tuple[Expr, ...]:
        return self.terms

    def sql(self, r: Render) -> str:
        return "(" + " AND ".join(t.sql(r) for t in self.terms) + ")"

    def polars(self, r: Render) -> pl.Expr:
        return functools.reduce(operator.and_, (t.polars(r) for t in self.terms))


@dataclass(frozen=True, eq=False)
class Or(Expr):
    """Some condition holds (three-valued, as `And`)."""

    terms: tuple[Expr, ...]

    def parts(self) -> tuple[Expr, ...]:
        return self.terms

    def sql(self, r: Render) -> str:
        return "(" + " OR ".join(t.sql(r) for t in self.terms) + ")"

    def polars(self, r: Render) -> pl.Expr:
        return functools.reduce(operator.or_, (t.polars(r) for t in self.terms))


@dataclass(frozen=True, eq=False)
class IntEq(Expr):
    """An integer value equal to a constant (null for a null value)."""

    x: Expr
    value: int

    def parts(self) -> tuple[Expr, ...]:
        return (self.x,)

    def sql(self, r: Render) -> str:
        return f"({self.x.sql(r)} = {self.value})"

    def polars(self, r: Render) -> pl.Expr:
        return self.x.polars(r) == self.value


@dataclass(frozen=True, eq=False)
class HasBits(Expr):
    """Whether an unsigned value has any of the bits of `mask` set (clone's flags)."""

    x: Expr
    mask: int

    def parts(self) -> tuple[Expr, ...]:
        return (self.x,)

    def sql(self, r: Render) -> str:
        return f"(({self.x.sql(r)} & {self.mask}) <> 0)"

    def polars(self, r: Render) -> pl.Expr:
        return (self.x.polars(r) & self.mask) != 0


@dataclass(frozen=True, eq=False)
class When(Expr):
    """`then` where the condition holds, else `otherwise` (null without one)."""

    condition: Expr
    then: Expr
    otherwise: Expr | None = None

    def parts(self) -> tuple[Expr, ...]:
        return (self.condition, self.then) if self.otherwise is None else (self.condition, self.then, self.otherwise)

    def sql(self, r: Render) -> str:
        rest = "" if self.otherwise is None else f" ELSE {self.otherwise.sql(r)}"
        return f"CASE WHEN {self.condition.sql(r)} THEN {self.then.sql(r)}{rest} END"

    def polars(self, r: Render) -> pl.Expr:
        chosen = pl.when(self.condition.polars(r)).then(self.then.polars(r))
        return chosen if self.otherwise is None else chosen.otherwise(self.otherwise.polars(r))


@dataclass(frozen=True, eq=False)
class Coalesce(Expr):
    """The first of the values that is not null."""

    terms: tuple[Expr, ...]

    def parts(self) -> tuple[Expr, ...]:
        return self.terms

    def sql(self, r: Render) -> str:
        return f"coalesce({', '.join(t.sql(r) for t in self.terms)})"

    def polars(self, r: Render) -> pl.Expr:
        return pl.coalesce([t.polars(r) for t in self.terms])


#: Integer types a value can be narrowed to, in both engines.
_INT_TYPES: dict[str, tuple[str, type[pl.DataType]]] = {"int32": ("INTEGER", pl.Int32), "int64": ("BIGINT", pl.Int64)}


@dataclass(frozen=True, eq=False)
class ToInt(Expr):
    """An integer value as `int32` or `int64`; null where it does not fit (`value` is uint64, a task id int32)."""

    x: Expr
    to: str

    def parts(self) -> tuple[Expr, ...]:
        return (self.x,)

    def sql(self, r: Render) -> str:
        return f"TRY_CAST({self.x.sql(r)} AS {_INT_TYPES[self.to][0]})"

    def polars(self, r: Render) -> pl.Expr:
        return self.x.polars(r).cast(_INT_TYPES[self.to][1], strict=False)


@dataclass(frozen=True, eq=False)
class WaitStatus(Expr):
    """A part of a Linux wait status (int64): the `exit_code` (status >> 8 when the low seven bits are 0, a
    normal exit) or the `signal` that killed the task (those seven bits when they are not 0); null otherwise."""

    status: Expr
    part: str

    def parts(self) -> tuple[Expr, ...]:
        return (self.status,)

    def sql(self, r: Render) -> str:
        s = self.status.sql(r)
        if self.part == "exit_code":
            return f"CASE WHEN ({s} & 127) = 0 THEN {s} // 256 END"  # // on integers: exact, as `>> 8`
        return f"CASE WHEN ({s} & 127) <> 0 THEN {s} & 127 END"

    def polars(self, r: Render) -> pl.Expr:
        s = self.status.polars(r)
        if self.part == "exit_code":
            return pl.when((s & 127) == 0).then(s // 256)
        return pl.when((s & 127) != 0).then(s & 127)


@dataclass(frozen=True, eq=False)
class Prev(Expr):
    """The value on the view's previous row (in `seq` order); null on the first."""

    x: Expr

    def parts(self) -> tuple[Expr, ...]:
        return (self.x,)

    def sql(self, r: Render) -> str:
        return f"lag({self.x.sql(r)}) OVER ({r.partition_sql()}ORDER BY v.{quote('seq')})"

    def polars(self, r: Render) -> pl.Expr:
        shifted = self.x.polars(r).shift(1)  # the frame is sorted by keys and seq before its columns are computed
        return shifted.over(list(r.keys)) if r.keys else shifted


# -- joins: other rows of the events table, looked up for each row of a view -------------------------------------


class Join:
    """Rows of the events table joined to a view's rows; `Joined(join, column)` reads one of their columns.

    Each join adds at most one row per view row, so the view keeps its rows.
    """

    def sql(self, events: str, alias: str, columns: list[str], r: Render) -> str:
        """The JOIN clause, `alias` naming the joined rows, which must carry `columns` (and `r.keys`)."""
        raise NotImplementedError

    def polars(
        self, frame: pl.LazyFrame, events: pl.LazyFrame, prefix: str, columns: list[str], keys: tuple[str, ...]
    ) -> pl.LazyFrame:
        """`frame` with the joined rows' `columns` added as `prefix + column`, matched on `keys` too."""
        raise NotImplementedError

    def value_sql(self, alias: str, column: str, r: Render) -> str:
        return f"{alias}.{quote(column)}"

    def value_polars(self, prefix: str, column: str) -> pl.Expr:
        return pl.col(prefix + column)


@dataclass(frozen=True, eq=False)
class Joined(Expr):
    join: Join
    column: str

    def lookups(self) -> Iterator[Joined]:
        yield self

    def sql(self, r: Render) -> str:
        return self.join.value_sql(r.joins[self.join], self.column, r)

    def polars(self, r: Render) -> pl.Expr:
        return self.join.value_polars(r.joins[self.join], self.column)


@dataclass(frozen=True)
class CheckpointRow(Join):
    """The checkpoint row of checkpoint `checkpoint + delta` (checkpoint ids are unique in a trace)."""

    delta: int = 0

    def sql(self, events: str, alias: str, columns: list[str], r: Render) -> str:
        cols = ", ".join(quote(c) for c in (*r.keys, *columns))
        cp = quote("checkpoint")
        rows = f"(SELECT {cp}, {cols} FROM {events} WHERE kind = {sql_literal(ev.KIND_CHECKPOINT)})"
        return f"LEFT JOIN {rows} AS {alias} ON {alias}.{cp} = v.{cp} + {self.delta}{r.on_keys_sql(alias)}"

    def polars(
        self, frame: pl.LazyFrame, events: pl.LazyFrame, prefix: str, columns: list[str], keys: tuple[str, ...]
    ) -> pl.LazyFrame:
        rows = events.filter(pl.col("kind") == ev.KIND_CHECKPOINT).select(
            *keys,
            (pl.col("checkpoint") - self.delta).alias("checkpoint"),
            *(pl.col(c).alias(prefix + c) for c in columns),
        )
        return frame.join(rows, on=[*keys, "checkpoint"], how="left")


@dataclass(frozen=True)
class EventsPerCheckpoint(Join):
    """The number of events (all kinds, the checkpoint row included) in the row's checkpoint, as column `n`."""

    def sql(self, events: str, alias: str, columns: list[str], r: Render) -> str:
        by = ", ".join(quote(c) for c in (*r.keys, "checkpoint"))
        rows = f"(SELECT {by}, count(*) AS n FROM {events} GROUP BY {by})"
        cp = quote("checkpoint")
        return f"LEFT JOIN {rows} AS {alias} ON {alias}.{cp} = v.{cp}{r.on_keys_sql(alias)}"

    def polars(
        self, frame: pl.LazyFrame, events: pl.LazyFrame, prefix: str, columns: list[str], keys: tuple[str, ...]
    ) -> pl.LazyFrame:
        by = [*keys, "checkpoint"]
        counts = events.group_by(by).agg(pl.len().cast(pl.Int64).alias(prefix + "n"))
        return frame.join(counts, on=by, how="left")


@dataclass(frozen=True)
class Completion(Join):
    """A block request's completion: the first blk_complete with the same device and tag after the submission.

    A tag (`req_id`) is unique only among requests in flight, so the
    completion counts only if no later submission reused the tag before it
    (a request lost to a guest reset stays incomplete); otherwise every
    joined column is null.
    """

    def _next_submit_sql(self, r: Render) -> str:
        by = ", ".join(f"v.{quote(c)}" for c in (*r.keys, "device", "req_id"))
        return f"lead(v.{quote('seq')}) OVER (PARTITION BY {by} ORDER BY v.{quote('seq')})"

    def sql(self, events: str, alias: str, columns: list[str], r: Render) -> str:
        dev, req, seq = quote("device"), quote("req_id"), quote("seq")
        cols = ", ".join(quote(c) for c in dict.fromkeys([*r.keys, *columns, "seq"]))
        rows = f"(SELECT {dev}, {req}, {cols} FROM {events} WHERE kind = {sql_literal(ev.KIND_BLK_COMPLETE)})"
        on = f"{alias}.{dev} = v.{dev} AND {alias}.{req} = v.{req}{r.on_keys_sql(alias)} AND {alias}.{seq} >= v.{seq}"
        return f"ASOF LEFT JOIN {rows} AS {alias} ON {on}"

    def value_sql(self, alias: str, column: str, r: Render) -> str:
        seq, nxt = f"{alias}.{quote('seq')}", self._next_submit_sql(r)
        return f"CASE WHEN {seq} IS NOT NULL AND ({nxt} IS NULL OR {seq} < {nxt}) THEN {alias}.{quote(column)} END"

    def polars(
        self, frame: pl.LazyFrame, events: pl.LazyFrame, prefix: str, columns: list[str], keys: tuple[str, ...]
    ) -> pl.LazyFrame:
        by = [*keys, "device", "req_id"]
        completions = (
            events.filter(pl.col("kind") == ev.KIND_BLK_COMPLETE)
            .select(*by, *(pl.col(c).alias(prefix + c) for c in dict.fromkeys([*columns, "seq"])))
            .sort(prefix + "seq")
        )
        submissions = frame.sort("seq").with_columns(pl.col("seq").shift(-1).over(by).alias(prefix + "next_submit"))
        return submissions.join_asof(
            completions, left_on="seq", right_on=prefix + "seq", by=by, strategy="forward", check_sortedness=False
        )

    def value_polars(self, prefix: str, column: str) -> pl.Expr:
        seq, nxt = pl.col(prefix + "seq"), pl.col(prefix + "next_submit")
        return pl.when(seq.is_not_null() & (nxt.is_null() | (seq < nxt))).then(pl.col(prefix + column))


def _partition_by(keys: tuple[str, ...], *more: str) -> str:
    """`PARTITION BY` the keys of the rows aliased `v`, then `more` (SQL expressions)."""
    return "PARTITION BY " + ", ".join([*(f"v.{quote(k)}" for k in keys), *more])


@dataclass(frozen=True)
class TaskRow(Join):
    """The first (or `last`) row of the events table, in `seq` order, that satisfies `where` and whose `by`
    column equals the view row's `task`: a task's exit row (`by="task"`), its last execve, the call that
    created it (`by="ret"`: fork and clone return the new task's id). Task ids are never reused in a trace.
    """

    where: Expr
    by: str = "task"
    last: bool = False

    def sql(self, events: str, alias: str, columns: list[str], r: Render) -> str:
        plain = Render({}, r.keys)
        cols = ", ".join(f"v.{quote(c)}" for c in dict.fromkeys([*r.keys, *columns]))
        key = f"TRY_CAST(v.{quote(self.by)} AS BIGINT)"
        order = f"ORDER BY v.{quote('seq')}" + (" DESC" if self.last else "")
        first = f"row_number() OVER ({_partition_by(r.keys, key)} {order})"
        rows = (f"(SELECT {cols}, {key} AS {quote('_task')} FROM {events} AS v WHERE {self.where.sql(plain)} "
                f"QUALIFY {first} = 1)")  # fmt: skip
        return f"LEFT JOIN {rows} AS {alias} ON {alias}.{quote('_task')} = v.{quote('task')}{r.on_keys_sql(alias)}"

    def polars(
        self, frame: pl.LazyFrame, events: pl.LazyFrame, prefix: str, columns: list[str], keys: tuple[str, ...]
    ) -> pl.LazyFrame:
        task = prefix + "_task"
        rows = (
            events.filter(self.where.polars(Render({}, keys)))
            .sort([*keys, "seq"])
            .unique(subset=[*keys, self.by], keep="last" if self.last else "first", maintain_order=True)
            .select(
                *keys,
                pl.col(self.by).cast(pl.Int64, strict=False).alias(task),
                *(pl.col(c).alias(prefix + c) for c in columns),
            )
        )
        with_key = frame.with_columns(pl.col("task").cast(pl.Int64).alias(task))
        return with_key.join(rows, on=[*keys, task], how="left").drop(task)


#: What a sched row's `text` says when it records a task's creation or its end, not a scheduling decision.
SCHED_START, SCHED_EXIT = "start", "exit"
#: A successful exec of another program: an exec of /proc/self/exe (busybox's shell runs its applets so) runs
#: the same program again, so it changes nothing a task runs.
SELF_EXE = "/proc/self/exe"
_EXECUTED = And((
    In(Col("kind"), (ev.KIND_SYSCALL,)), In(Col("syscall"), ("execve", "execveat")), IntEq(Col("ret"), 0),
    IsNotNull(Col("task")), IsNotNull(Col("path")), Not(In(Col("path"), (SELF_EXE,))),
))  # fmt: skip
_STARTED = And((In(Col("kind"), (ev.KIND_SCHED,)), In(Col("text"), (SCHED_START,))))


@dataclass(frozen=True)
class StartProgram(Join):
    """The program a task started with, as column `path`: what its creator ran when it was created, so the
    creator's last exec of another program before that (`_EXECUTED`), else what the creator started with, and so
    on up to the first task, which runs the trace's own program (the machine record's `exe`, which no view
    sees): null there.

    That is a walk down the tree of creators: a recursive CTE in DuckDB, a fold over the (few) start rows in
    Polars. A creator counts only if it started before its child (so a damaged trace cannot loop), and a task
    only by its first start row.
    """

    def _starts_sql(self, events: str, r: Render) -> str:
        plain = Render({}, r.keys)
        keys = "".join(f"v.{quote(k)}, " for k in r.keys)
        task, seq = quote("task"), quote("seq")
        first = f"row_number() OVER ({_partition_by(r.keys, f'v.{task}')} ORDER BY v.{seq})"
        return (f"SELECT {keys}v.{task}, TRY_CAST(v.{quote('value')} AS INTEGER) AS parent, v.{seq} "
                f"FROM {events} AS v WHERE {_STARTED.sql(plain)} QUALIFY {first} = 1")  # fmt: skip

    def sql(self, events: str, alias: str, columns: list[str], r: Render) -> str:
        plain = Render({}, r.keys)
        task, seq, path = quote("task"), quote("seq"), quote("path")

        def keys(a: str) -> str:
            return "".join(f"{a}.{quote(k)}, " for k in r.keys)

        def same(a: str, b: str) -> str:
            return "".join(f" AND {a}.{quote(k)} = {b}.{quote(k)}" for k in r.keys)

        execs = f"SELECT {keys('v')}v.{task}, v.{seq}, v.{path} FROM {events} AS v WHERE {_EXECUTED.sql(plain)}"
        inherited = (
            f"SELECT {keys('s')}s.{task}, s.parent, s.{seq}, e.{path} FROM starts AS s "
            f"ASOF LEFT JOIN execs AS e ON e.{task} = s.parent{same('e', 's')} AND s.{seq} > e.{seq}"
        )
        # From the tasks whose creator is no started task (the first task, or none before them) down to their
        # children: each task is reached once, from its creator, so the walk is as long as the start rows.
        roots = (
            f"NOT EXISTS (SELECT 1 FROM inherited AS p WHERE p.{task} = i.parent{same('p', 'i')} AND p.{seq} < i.{seq})"
        )
        walk = (
            f"SELECT {keys('i')}i.{task}, i.{seq}, i.{path} FROM inherited AS i WHERE {roots} "
            f"UNION ALL SELECT {keys('i')}i.{task}, i.{seq}, coalesce(i.{path}, w.{path}) FROM walk AS w "
            f"JOIN inherited AS i ON i.parent = w.{task}{same('i', 'w')} AND i.{seq} > w.{seq}"
        )
        by = ", ".join(quote(c) for c in (*r.keys, "task"))
        rows = (f"(WITH RECURSIVE starts AS ({self._starts_sql(events, r)}), execs AS ({execs}), "
                f"inherited AS ({inherited}), walk AS ({walk}) SELECT {by}, {path} FROM walk)")  # fmt: skip
        return f"LEFT JOIN {rows} AS {alias} ON {alias}.{task} = v.{task}{r.on_keys_sql(alias)}"

    def polars(
        self, frame: pl.LazyFrame, events: pl.LazyFrame, prefix: str, columns: list[str], keys: tuple[str, ...]
    ) -> pl.LazyFrame:
        plain = Render({}, keys)
        by = [*keys, "task"]
        starts = (
            events.filter(_STARTED.polars(plain))
            .sort([*keys, "seq"])
            .unique(subset=by, keep="first", maintain_order=True)
            .select(*by, pl.col("value").cast(pl.Int32, strict=False).alias("parent"), "seq")
        )
        execs = (
            events.filter(_EXECUTED.polars(plain))
            .select(*keys, pl.col("task").alias("parent"), pl.col("seq").alias("_exec_seq"), "path")
            .sort("_exec_seq")
        )
        inherited = starts.sort("seq").join_asof(
            execs, left_on="seq", right_on="_exec_seq", by=[*keys, "parent"], strategy="backward",
            allow_exact_matches=False, check_sortedness=False,
        ).select(*by, "parent", "seq", pl.col("path").cast(pl.String))  # fmt: skip

        def walk(rows: pl.DataFrame) -> pl.DataFrame:
            """Each task's start program, in `seq` order: its own inherited exec, else its creator's."""
            rows = rows.sort([*keys, "seq"])
            known: dict[tuple[object, ...], str | None] = {}
            paths: list[str | None] = []
            for row in rows.iter_rows(named=True):
                trace = tuple(row[k] for k in keys)
                got = row["path"] if row["path"] is not None else known.get((*trace, row["parent"]))
                known.setdefault((*trace, row["task"]), got)
                paths.append(got)
            return rows.with_columns(pl.Series("path", paths, dtype=pl.String))

        programs = inherited.map_batches(walk).select(*by, pl.col("path").alias(prefix + "path"))
        return frame.join(programs, on=by, how="left")


# -- the views -----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class View:
    """A view: the events of `kinds` (those of them for which `where` holds), in `seq` order, as `columns`
    (name, expression)."""

    name: str
    doc: str
    kinds: tuple[str, ...]
    columns: tuple[tuple[str, Expr], ...]
    where: Expr | None = None

    def joins(self) -> dict[Join, list[str]]:
        """Each join the columns read, with the columns they read of it, in order of first use."""
        out: dict[Join, list[str]] = {}
        for _, expr in self.columns:
            for looked_up in expr.lookups():
                cols = out.setdefault(looked_up.join, [])
                if looked_up.column not in cols:
                    cols.append(looked_up.column)
        return out


def _columns(*items: str | tuple[str, Expr]) -> tuple[tuple[str, Expr], ...]:
    """A plain name is that column of the row, kept under its name."""
    return tuple((item, Col(item)) if isinstance(item, str) else item for item in items)


#: Columns added to the raw events table to make the `events` view (and frame).
EVENTS_DERIVED: tuple[tuple[str, Expr], ...] = (
    ("vclock_s", Col("vclock_ns") * Lit(1e-9)),  # not `/ 1e9`: see BinOp
    ("data_len", ByteLen(Col("data"))),
    ("data_hex", Hex(Col("data"), 0, HEX_PREVIEW_BYTES)),
)

_TIME = ("seq", "checkpoint", "icount", "vclock_ns", "vclock_s")
_NEXT_CHECKPOINT, _THIS_CHECKPOINT, _DONE = CheckpointRow(1), CheckpointRow(0), Completion()


def _done(column: str) -> Expr:
    return Joined(_DONE, column)


PACKETS = View(
    "packets",
    "Frames received (rx), sent (tx) and dropped (drop), with their Ethernet header fields.",
    (ev.KIND_NET_RX, ev.KIND_NET_TX, ev.KIND_NET_DROP),
    _columns(
        *_TIME, "kind", "device", "card",
        ("direction", Map(Col("kind"), ((ev.KIND_NET_RX, "rx"), (ev.KIND_NET_TX, "tx"), (ev.KIND_NET_DROP, "drop")))),
        "length", "flags", "status",
        ("eth_dst", Mac(Col("data"), 0)), ("eth_src", Mac(Col("data"), 6)), ("ethertype", BigEndian16(Col("data"), 12)),
        "data_len", "data_hex", "data",
    ),
)  # fmt: skip

BLOCK_OPS = View(
    "block_ops",
    "One row per block request: its submission joined to its completion (see `Completion`), with the latency.",
    (ev.KIND_BLK_SUBMIT,),
    _columns(
        "device", "req_id", "op", "sector", "sectors", "length", "data_digest",
        ("submit_seq", Col("seq")), ("submit_checkpoint", Col("checkpoint")), ("submit_icount", Col("icount")),
        ("submit_vclock_ns", Col("vclock_ns")),
        ("complete_seq", _done("seq")), ("complete_checkpoint", _done("checkpoint")),
        ("complete_icount", _done("icount")), ("complete_vclock_ns", _done("vclock_ns")),
        ("latency_ns", _done("vclock_ns") - Col("vclock_ns")), ("latency_insns", _done("icount") - Col("icount")),
        ("status", _done("status")), ("order", _done("order")), ("generation", _done("flags")),
        ("data_len", _done("data_len")), ("completed", IsNotNull(_done("seq"))),
    ),
)  # fmt: skip

CLOCK = View(
    "clock",
    "Clock warps: where the CPU slept, how far virtual time jumped, and how long the host really waited.",
    (ev.KIND_CLOCK_WARP,),
    _columns(
        *_TIME, "warp_ns",
        ("end_vclock_ns", Col("vclock_ns") + Col("warp_ns")),
        ("host_wait_ns", Joined(_NEXT_CHECKPOINT, "host_ns") - Joined(_THIS_CHECKPOINT, "host_ns")),
    ),
)  # fmt: skip

CHECKPOINTS = View(
    "checkpoints",
    "Checkpoint rows with why they happened, the instructions since the previous one and their event count.",
    (ev.KIND_CHECKPOINT,),
    _columns(
        *_TIME, "cp_kind", "pc", "reg_digest", "dev_digest", "mem_digest", "host_ns",
        ("exit_code", Col("value")), "text",
        ("insns", Col("icount") - Prev(Col("icount"))),
        ("events", Joined(EventsPerCheckpoint(), "n")),
    ),
)  # fmt: skip

INTERRUPTS = View(
    "interrupts",
    "Interrupts delivered: where (icount, interrupted pc) and which lines (`mask`).",
    (ev.KIND_IRQ,),
    _columns(*_TIME, "device", "pc", ("mask", Col("value"))),
)

CONSOLE = View(
    "console",
    "Console input and output, with the bytes decoded as UTF-8 (bad bytes shown as U+FFFD); `device` tells the "
    "board's console from a Linux program's stdout and stderr.",
    (ev.KIND_CONSOLE_IN, ev.KIND_CONSOLE_OUT),
    _columns(
        *_TIME, "device",
        ("direction", Map(Col("kind"), ((ev.KIND_CONSOLE_IN, "in"), (ev.KIND_CONSOLE_OUT, "out")))),
        "data_len", ("text", Utf8(Col("data"))), "data",
    ),
)  # fmt: skip

#: Where two errno names share a number, the one strace and glibc's headers lead with (`errorcode` may hold the
#: alias: EDEADLOCK, ENOTSUP, EWOULDBLOCK).
_PREFERRED_ERRNO_NAMES = ("EAGAIN", "EDEADLK", "EOPNOTSUPP")
#: Every errno name of the host's Python, the numbers the Linux platform's kernel returns (it raises them from
#: `errno` too), built into the view as a fixed table: a Python function in SQL would make DuckDB import numpy.
ERRNO_NAMES: tuple[tuple[int, str], ...] = tuple(
    sorted({**errno.errorcode, **{getattr(errno, n): n for n in _PREFERRED_ERRNO_NAMES if hasattr(errno, n)}}.items())
)

_RET = Col("ret")

SYSCALLS = View(
    "syscalls",
    "A Linux program's system calls, one row each, as strace -f shows them: the task that made it, the name, the "
    "six argument registers (as a list and one by one), the result and its errno, the file descriptor and path, "
    "and the bytes the host gave the program (`bytes_in`, `data`) or the program passed out (`bytes_out`).",
    (ev.KIND_SYSCALL,),
    _columns(
        *_TIME, "task", "sysno", ("name", Col("syscall")), "args",
        *((f"arg{i}", Item(Col("args"), i)) for i in range(6)),
        "ret", ("errno", Errno(_RET)), ("errno_name", Names(Errno(_RET), ERRNO_NAMES)), ("ok", IsNull(Errno(_RET))),
        "fd", "path", ("bytes_in", ByteLen(Col("data"))), ("bytes_out", Col("length")), "data_digest",
        "data",
    ),
)  # fmt: skip

SCHED = View(
    "sched",
    "The Linux scheduler's decisions, one row each: the task that ran until then (`from_task`), the one that runs "
    "next (`to_task`), its time slice in instructions (`slice`) and why (`reason`: exited, blocked: <on what>, "
    "sleep, slice ended, a task became ready, the task yielded, a sleeping task woke).",
    (ev.KIND_SCHED,),
    _columns(
        *_TIME, ("from_task", Col("task")), ("to_task", ToInt(Col("value"), "int32")), ("slice", Col("length")),
        ("reason", Col("text")),
    ),
    where=Not(In(Col("text"), (SCHED_START, SCHED_EXIT))),
)  # fmt: skip

#: clone's flag for a new thread of the same process (rather than a new process).
CLONE_THREAD = 0x10000
#: The last exit row of the id: when a thread execs it goes on as the leader, whose id has one exit row for the
#: old leader (killed) and one for the process at its end.
_EXIT = TaskRow(And((In(Col("kind"), (ev.KIND_SCHED,)), In(Col("text"), (SCHED_EXIT,)))), last=True)
_LAST_EXEC = TaskRow(_EXECUTED, last=True)
#: The calls that create a task; they return its id.
CREATE_CALLS = ("fork", "vfork", "clone", "clone3")
_CREATED_BY = TaskRow(And((In(Col("kind"), (ev.KIND_SYSCALL,)), In(Col("syscall"), CREATE_CALLS))), by="ret")
_STATUS = ToInt(Joined(_EXIT, "value"), "int64")
_FIRST = In(Col("kind"), (ev.KIND_CHECKPOINT,))  # the first task's row is the init checkpoint

TASKS = View(
    "tasks",
    "The tasks (processes and threads) of a Linux trace, one row each, in the order they started: the first "
    "task (its row is the init checkpoint's, at icount 0) and every task with a start row (`seq` and the start "
    "columns are that row's; in a window, only the tasks that started in it). `parent` created it "
    "(null for the first); `program` is what it runs: the path of its last successful execve of another "
    "program, else what its creator ran when it was created, null for the trace's own program (the machine "
    "record's `exe`; an exec of /proc/self/exe runs that again); `thread` tells a clone with CLONE_THREAD from "
    "a new process (null for clone3, whose flags the row does not hold). The end columns and `exit_status` (the "
    "wait status: exit code << 8, or the signal) come from its exit row, null while it still ran at the end; "
    "`exit_code` is set for a normal exit, `signal` for a task a signal killed.",
    (ev.KIND_CHECKPOINT, ev.KIND_SCHED),
    _columns(
        "task", ("parent", When(In(Col("kind"), (ev.KIND_SCHED,)), ToInt(Col("value"), "int32"))),
        ("program", Coalesce((Joined(_LAST_EXEC, "path"), Joined(StartProgram(), "path")))),
        ("thread", When(_FIRST, Lit(False), When(In(Joined(_CREATED_BY, "syscall"), ("fork", "vfork")), Lit(False),
                        When(In(Joined(_CREATED_BY, "syscall"), ("clone",)),
                             HasBits(Item(Joined(_CREATED_BY, "args"), 0), CLONE_THREAD))))),
        "seq", ("start_checkpoint", Col("checkpoint")), ("start_icount", Col("icount")),
        ("start_vclock_ns", Col("vclock_ns")),
        ("end_seq", Joined(_EXIT, "seq")), ("end_checkpoint", Joined(_EXIT, "checkpoint")),
        ("end_icount", Joined(_EXIT, "icount")), ("end_vclock_ns", Joined(_EXIT, "vclock_ns")),
        ("exit_status", _STATUS), ("exit_code", WaitStatus(_STATUS, "exit_code")),
        ("signal", WaitStatus(_STATUS, "signal")), ("ended", IsNotNull(Joined(_EXIT, "seq"))),
    ),
    where=Or((And((_FIRST, In(Col("cp_kind"), (ev.CP_INIT,)), IsNotNull(Col("task")))), _STARTED)),
)  # fmt: skip

#: The per-kind views, in the order `.tables` lists them (after `events`).
VIEWS: dict[str, View] = {
    v.name: v for v in (PACKETS, BLOCK_OPS, CLOCK, CHECKPOINTS, INTERRUPTS, CONSOLE, SYSCALLS, SCHED, TASKS)
}


# -- rendering -----------------------------------------------------------------------------------------------


def events_sql(raw: str, keys: tuple[str, ...] = ()) -> str:
    """The SELECT of the `events` view over the raw rows named `raw`; `keys` (a corpus's `trace`) come first."""
    r = Render({}, keys)
    derived = ", ".join(f"{e.sql(r)} AS {quote(name)}" for name, e in EVENTS_DERIVED)
    if not keys:
        return f"SELECT v.*, {derived} FROM {raw} AS v"
    first = ", ".join(f"v.{quote(k)}" for k in keys)
    return f"SELECT {first}, v.* EXCLUDE ({', '.join(quote(k) for k in keys)}), {derived} FROM {raw} AS v"


def events_polars(raw: pl.LazyFrame) -> pl.LazyFrame:
    """The `events` frame over the raw rows (which `frames.normalize` has given their enum types)."""
    r = Render({})
    return raw.with_columns(e.polars(r).alias(name) for name, e in EVENTS_DERIVED)


def view_sql(view: View, events: str, keys: tuple[str, ...] = ()) -> str:
    """The SELECT of `view` over the `events` view named `events`; `keys` (a corpus's `trace`) come first."""
    joins = view.joins()
    r = Render({join: f"j{i}" for i, join in enumerate(joins)}, keys)
    columns = ", ".join(
        [*(f"v.{quote(k)}" for k in keys), *(f"{e.sql(r)} AS {quote(name)}" for name, e in view.columns)]
    )
    kinds = ", ".join(sql_literal(k) for k in view.kinds)
    where = "" if view.where is None else f" AND {view.where.sql(Render({}, keys))}"
    clauses = "".join(f"\n  {join.sql(events, r.joins[join], cols, r)}" for join, cols in joins.items())
    order = ", ".join(f"v.{quote(c)}" for c in (*keys, "seq"))
    rows = f"(SELECT * FROM {events} AS v WHERE v.kind IN ({kinds}){where}) AS v"
    return f"SELECT {columns}\nFROM {rows}{clauses}\nORDER BY {order}"


def view_polars(view: View, events: pl.LazyFrame, keys: tuple[str, ...] = ()) -> pl.LazyFrame:
    """`view` as a LazyFrame over the `events` frame; `keys` (a corpus's `trace`) come first."""
    joins = view.joins()
    r = Render({join: f"_j{i}_" for i, join in enumerate(joins)}, keys)
    frame = events.filter(pl.col("kind").is_in(list(view.kinds)))
    if view.where is not None:
        frame = frame.filter(view.where.polars(Render({}, keys)))
    for join, cols in joins.items():
        frame = join.polars(frame, events, r.joins[join], cols, keys)
    selected = [*(pl.col(k) for k in keys), *(e.polars(r).alias(name) for name, e in view.columns)]
    return frame.sort([*keys, "seq"]).select(selected)
