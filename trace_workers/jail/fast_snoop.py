"""snoop's trace, byte for byte, at less cost per event.

Runs inside the jail beside ``zygote.py`` (standard library, snoop and cheap_repr only). snoop
formats every line of the trace; this module only changes how much work each trace event costs
before formatting, where a profile of the PyEdu dev set put snoop's time:

- every event of any code (library code included) goes through snoop's Python-level frame
  chooser, which hashes code objects (bytecode and all) and walks up to ``depth`` frames:
  here only a frame's 'call' asks (a generator's frame that a resume does not trace drops
  the trace function an earlier resume gave it), a dictionary lookup by ``id`` answers for
  code snoop never traces, and one for a frame whose caller is not traced (recursion below
  the depth limit: ~3x less per call);
- every event re-reads ``frame.f_locals`` once per local (each read re-syncs the whole dict),
  sorts the names with ``tuple.index`` and re-computes the repr of every local: here
  ``f_locals`` is read once, the name order is kept per code object, and the repr of a local
  that is provably unchanged is reused (the very same immutable scalar, the same small
  container still holding the very same scalars, the same iterator, function or bound
  built-in method, whose repr depends on its identity and a name that did not change);
- a comprehension's 'line' events print nothing (snoop only collects each variable's values
  for the summary printed when it returns): here a comprehension frame gets a trace function
  of its own that only collects, in place, and skips a variable that is provably unchanged
  (a comprehension over millions of items reprs its iterator once, not once an item); a
  plain scalar (small int, short str, bool) is kept as it is until the summary, which shows
  only the first and last five values, needs its repr;
- cheap_repr's repr of a long list or tuple copies half of it (``x[:n - n // 2]``) to show a
  handful of items: here the same items are read lazily, so a list of 3.6 million
  permutations costs microseconds per line instead of 40 ms;
- the formatter rebuilds the same prefix for a call depth and the same numbered source line
  again and again: here both are memoised.

``tests/test_fast_snoop.py`` holds it to snoop's own output on programs written to reach every
branch, and ``bench/trace_throughput.py --compare-snoop`` on the dev set.
"""

from __future__ import annotations

import inspect
import itertools
import operator
import re
from itertools import compress
from operator import is_not

import cheap_repr
import snoop.tracer
from snoop.formatting import Event
from snoop.utils import ArgDefaultDict, pp_name_prefix, truncate_list

COMPREHENSIONS = frozenset({"<listcomp>", "<dictcomp>", "<setcomp>"})
# types whose repr is fixed by the object itself; a container of them whose items are the
# same objects in the same order has the same repr (up to SNAPSHOT_LIMIT items: checking
# more would cost more than the repr)
STABLE_TYPES = frozenset({int, float, complex, bool, str, bytes, type(None)})
SNAPSHOT_LIMIT = 256
LOCAL_EVENTS = frozenset({"line", "return", "exception"})
# generators, coroutines and async generators: their frames have a 'call' at each resume
RESUMABLE = inspect.CO_GENERATOR | inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR
_MISSING = object()
_SCALAR = object()  # the snapshot of a stable scalar: the object itself says it all
# Py_TPFLAGS_IMMUTABLETYPE: built-in types and most extension types; a class statement's
# class lacks it (its names can change, and its instances' __class__ can be reassigned)
_IMMUTABLE_TYPE = 1 << 8
_identity_reprs: dict[type, bool] = {}


def _repr_is_identity(kind: type) -> bool:
    """Is every repr cheap_repr gives an object of ``kind`` fixed by the object's identity?
    True for immutable types that keep object's own ``<name object at 0x...>`` (iterators,
    map, zip, enumerate...): such a type's name cannot change, nor can an object's class be
    reassigned to or from it."""
    known = _identity_reprs.get(kind)
    if known is None:
        known = _identity_reprs[kind] = (
            bool(kind.__flags__ & _IMMUTABLE_TYPE) and kind.__repr__ is object.__repr__
            and cheap_repr.find_repr_function(kind) is cheap_repr.repr_object)
    return known


class _SameName:
    """The snapshot of a function: its repr changes only with its ``__qualname__``."""

    __slots__ = ("name",)

    def __init__(self, name):
        self.name = name


_FUNCTION_TYPES = (type(_repr_is_identity), type(print), type(re.compile("").match))


# A comprehension's value whose repr is not made until the summary needs it is collected as
# a 1-tuple ``(value,)`` in place of its repr (a repr is always a str): most of a long
# comprehension's values are dropped from the summary, which keeps the first and last five.
# Only plain scalars are kept so (|int| < 10**15, bool, str up to 30 characters): their repr
# is ``repr(value)`` whenever cheap_repr has not suppressed their type, a pure function of
# the value, different whenever the value (or the type) is. zygote._plain's values less
# floats: equal floats may print differently (0.0, -0.0), which would break the
# de-duplication of consecutive values.
_PENDING = tuple
# a comprehension's collected values are truncated to snoop's 11 (first five, '...', last
# five) only when they pass this many, and before anything reads them but the last one
_UNTRUNCATED_LIMIT = 64


def _resolved(item):
    return repr(item[0]) if type(item) is _PENDING else item


# cheap_repr shows a class differently once one of its reprs has raised: a repr remembered
# before such a change is not reused after it
_suppressed = cheap_repr.suppressed_classes


def _snapshot(value):
    """What fixes ``value``'s repr while ``value`` is the same object: ``_SCALAR`` for a stable
    scalar, the items for a small list/tuple/set of stable scalars, the keys and values for
    such a dict; None when nothing short of a new repr will do."""
    kind = type(value)
    if kind in STABLE_TYPES or _repr_is_identity(kind):
        return _SCALAR
    if kind in _FUNCTION_TYPES:
        return _function_snapshot(value)
    if kind in (list, tuple, set, frozenset) and len(value) <= SNAPSHOT_LIMIT:
        items = tuple(value)
        return items if STABLE_TYPES.issuperset(map(type, items)) else None
    if kind is dict and len(value) <= SNAPSHOT_LIMIT:
        keys, values = tuple(value), tuple(value.values())
        if STABLE_TYPES.issuperset(map(type, keys)) and STABLE_TYPES.issuperset(map(type, values)):
            return keys, values
    return None


def _function_snapshot(function):
    """A Python function's repr is ``<function QUALNAME at 0x...>``; a built-in one's is fixed
    unless it is bound to an instance of a mutable type (a class statement's class, whose
    name, and whose instances' class, may change)."""
    if type(function) is _FUNCTION_TYPES[0]:
        return _SameName(function.__qualname__)
    owner = getattr(function, "__self__", None)
    if owner is None or type(owner).__flags__ & _IMMUTABLE_TYPE:
        return _SCALAR
    return None


def _unchanged_by(value, snapshot) -> bool:
    return snapshot is _SCALAR or (snapshot is not None and _unchanged(value, snapshot))


def _getter(names: list):
    """A function of a dict giving the tuple of its values for ``names``."""
    if len(names) > 1:
        return operator.itemgetter(*names)
    if names:
        name = names[0]
        return lambda mapping: (mapping[name],)
    return lambda mapping: ()


def _unchanged(value, snapshot) -> bool:
    if snapshot is _SCALAR:
        return True
    if type(snapshot) is _SameName:
        return value.__qualname__ is snapshot.name
    if type(value) is dict:
        keys, values = snapshot
        return (len(value) == len(keys) and all(map(operator.is_, value, keys))
                and all(map(operator.is_, value.values(), values)))
    return len(value) == len(snapshot) and all(map(operator.is_, value, snapshot))


_name_orders: dict[int, tuple] = {}


def _ordered_names(code, names: tuple) -> list:
    """The locals snoop shows, in snoop's order: the code's own variables by their first
    position in co_varnames + co_cellvars + co_freevars, then the others in f_locals order
    (snoop sorts with ``tuple.index`` over exactly that); remembered per code and name set."""
    known = _name_orders.get(id(code))
    if known is None or known[0] is not code:
        ranks: dict = {}
        for position, name in enumerate(code.co_varnames + code.co_cellvars + code.co_freevars):
            ranks.setdefault(name, position)
        known = _name_orders[id(code)] = (code, ranks, {})
    _, ranks, orders = known
    order = orders.get(names)
    if order is None:
        shown = [name for name in names if not name.startswith(pp_name_prefix)]
        base = len(code.co_varnames) + len(code.co_cellvars) + len(code.co_freevars)
        extra = {name: base + i for i, name in enumerate(shown)}
        order = orders[names] = sorted(shown, key=lambda name: ranks.get(name, extra[name]))
    return order


class FastFrameInfo(snoop.tracer.FrameInfo):
    """snoop's per-frame state; ``update_variables`` without watches, extras or whitelist,
    reusing the repr of a local whose value is provably unchanged."""

    def __init__(self, frame):
        super().__init__(frame)
        self.local_values: dict = {}
        self.local_snapshots: dict = {}
        self.generation = -1
        self.local_tracer = None  # a comprehension's own trace function
        self.last_keys: tuple | None = None  # its locals' names at the last event...
        self.last_order: list = []  # ...in snoop's order...
        self.last_getter = _getter([])  # ...a function of f_locals giving their values...
        self.last_now: tuple = ()  # ...and those values
        self.recheck = True  # whether a value may have changed without being a new object
        self.pending = False  # whether its collected values wait for a repr or a truncation

    def update_variables(self, watch, watch_extras, event, whitelist):
        if self.pending:  # a comprehension's values collected without repr or truncation
            self.local_reprs = {name: _resolved(item) for name, item in self.local_reprs.items()}
            for seen in self.comprehension_variables.values():
                seen[:] = map(_resolved, truncate_list(seen, 11))
            self.pending = False
        frame = self.frame
        self.last_line_no = frame.f_lineno
        current = frame.f_locals  # one sync of the fast locals
        names = _ordered_names(frame.f_code, tuple(current))
        generation = len(_suppressed)
        reuse = generation == self.generation
        old_reprs, old_values, old_snapshots = (
            self.local_reprs, self.local_values, self.local_snapshots)
        reprs, values, snapshots = {}, {}, {}
        for name in names:
            value = values[name] = current[name]
            snapshot = old_snapshots.get(name)
            if not (reuse and snapshot is not None and value is old_values[name]
                    and _unchanged(value, snapshot)):
                snapshot = _snapshot(value)
                reprs[name] = snoop.tracer.my_cheap_repr(value)
            else:
                reprs[name] = old_reprs[name]
            if snapshot is not None:
                snapshots[name] = snapshot
        self.local_reprs, self.local_values, self.local_snapshots = reprs, values, snapshots
        self.generation = generation
        self.recheck = True  # a comprehension's next collect compares with these values

        if self.comprehension_type:
            for name, value_repr in reprs.items():
                seen = self.comprehension_variables.setdefault(name, [])
                if not seen or seen[-1] != value_repr:
                    seen.append(value_repr)
                    seen[:] = truncate_list(seen, 11)
            if event in ("return", "exception"):
                return [(name, ", ".join(seen)) for name, seen in self.comprehension_variables.items()]
            return []
        return [(name, value_repr) for name, value_repr in reprs.items()
                if old_reprs.get(name, _MISSING) != value_repr]

    def collect_comprehension_values(self) -> None:
        """``update_variables`` for a comprehension's 'line' event (which prints nothing: each
        variable's reprs are only collected for the summary). Millions of these events come
        from one comprehension, so the state is updated in place, a variable whose value is
        provably unchanged is skipped outright (its repr is already the last one collected),
        a plain scalar's repr waits for the summary, and the collected values are truncated
        to snoop's eleven in batches; ``update_variables`` settles both before reading.

        While the names are the same as at the last event and every one of them holds a
        value whose repr only a new object changes (``_SCALAR``), the variables to look at
        are found at C speed: those whose value is not the very object it was."""
        frame = self.frame
        self.last_line_no = frame.f_lineno
        current = frame.f_locals
        keys = tuple(current)
        generation = len(_suppressed)
        values, snapshots, reprs = self.local_values, self.local_snapshots, self.local_reprs
        if keys == self.last_keys and generation == self.generation and not self.recheck:
            now = self.last_getter(current)
            changed = compress(self.last_order, map(is_not, now, self.last_now))
        else:
            if keys != self.last_keys:
                order = _ordered_names(frame.f_code, keys)
                self.last_keys, self.last_order, self.last_getter = keys, order, _getter(order)
            reuse = generation == self.generation
            self.generation = generation
            now = self.last_getter(current)
            changed = [name for name, value in zip(self.last_order, now, strict=True) if not (
                reuse and value is values.get(name, _MISSING)
                and _unchanged_by(value, snapshots.get(name)))]
        self.last_now = now
        collected = self.comprehension_variables
        recheck = False
        for name in changed:
            value = values[name] = current[name]
            seen = collected.get(name)
            if seen is None:
                seen = collected[name] = []
            last = seen[-1] if seen else None
            kind = type(value)
            if (last is None or type(last) is _PENDING) and (
                    (kind is int and -10**15 < value < 10**15) or kind is bool
                    or (kind is str and len(value) <= 30)) and kind not in _suppressed:
                snapshots[name] = _SCALAR
                if last is not None and type(last[0]) is kind and last[0] == value:
                    reprs[name] = last  # the same repr as the last value: nothing to add
                    continue
                value_repr = reprs[name] = (value,)
            else:
                snapshot = _snapshot(value)
                if snapshot is None:
                    snapshots.pop(name, None)
                else:
                    snapshots[name] = snapshot
                recheck = recheck or snapshot is not _SCALAR
                value_repr = reprs[name] = snoop.tracer.my_cheap_repr(value)
                if last is not None and _resolved(last) == value_repr:
                    continue
            self.pending = True
            seen.append(value_repr)
            if len(seen) > _UNTRUNCATED_LIMIT:
                seen[:] = truncate_list(seen, 11)
        if type(changed) is list:  # every name was looked at: which may change unseen?
            recheck = any(snapshots.get(name) is not _SCALAR for name in self.last_order)
        self.recheck = recheck


class FastTracer(snoop.tracer.Tracer):
    """snoop's Tracer (decorator use, ``depth`` only) with a cheaper ``trace``.

    Code objects are looked up by ``id`` (hashing a code object hashes its bytecode), and the
    dictionaries hold the code objects themselves so that an id is never reused while cached.
    """

    def __init__(self, depth: int = 1):
        super().__init__(depth=depth)
        self.frame_infos = ArgDefaultDict(FastFrameInfo)
        self._targets: dict[int, object] = {}
        self._never: dict[int, object] = {}  # codes whose frames snoop never traces
        self._internal: dict[int, tuple[object, bool]] = {}

    def __call__(self, function):
        wrapped = super().__call__(function)
        self._targets = {id(code): code for code in self.target_codes}
        return wrapped

    def _internal_code(self, code) -> bool:
        known = self._internal.get(id(code))
        if known is None or known[0] is not code:
            known = self._internal[id(code)] = (
                code, code.co_filename.startswith(snoop.tracer.internal_directories))
        return known[1]

    def _chosen(self, frame) -> bool:
        """Would snoop trace this frame? (its rule, unchanged: a target, or a frame within
        ``depth`` calls of one, comprehension frames not counted, no library frame between)"""
        code = frame.f_code
        targets, target_frames, depth = self._targets, self.target_frames, self.depth
        if targets.get(id(code)) is code or (target_frames and frame in target_frames):
            return True
        if code.co_name not in COMPREHENSIONS and (depth == 1 or self._internal_code(code)):
            if not target_frames:
                self._never[id(code)] = code
            return False
        candidate, steps = frame, 0
        while True:
            code = candidate.f_code
            if code.co_name in COMPREHENSIONS:
                candidate = candidate.f_back
                continue
            steps += 1
            if targets.get(id(code)) is code or (target_frames and candidate in target_frames):
                return True
            if steps >= depth:
                return False
            candidate = candidate.f_back
            if candidate is None or self._internal_code(candidate.f_code):
                return False

    def trace(self, frame, event, arg):
        code = frame.f_code
        # Line, return and exception events come only to frames this method chose on their
        # 'call' (it returned itself as their local trace function), and the answer holds
        # until the frame's next 'call'; 'call', and snoop's own 'enter'/'exit', are asked.
        if event not in LOCAL_EVENTS:
            caller = frame.f_back
            if ((caller is not None and caller not in self.frame_infos
                    and code.co_name not in COMPREHENSIONS
                    and caller.f_code.co_name not in COMPREHENSIONS
                    and self._targets.get(id(code)) is not code and not self.target_frames)
                    # A traced frame is in frame_infos from its 'call' to its 'return'; a
                    # caller that is not, is not traced, and is no nearer a target than this
                    # frame: snoop's walk from here would go over a part of the caller's
                    # walk, which found none, or stop at it, a library frame. (Not so for a
                    # comprehension, whose walk starts at its caller: snoop traces one in a
                    # library function that a traced frame calls.) Recursion below the
                    # depth limit costs a lookup a call, not a walk.
                    or self._never.get(id(code)) is code or not self._chosen(frame)):
                if code.co_flags & RESUMABLE and frame.f_trace is not None:
                    # A generator's frame has a 'call' at each resume, from wherever it is
                    # resumed, and keeps the local trace function an earlier resume got
                    # (Python leaves f_trace alone when this returns None): its events on
                    # this resume must reach nothing, as snoop would ignore them.
                    frame.f_trace = None
                return None
        config = self.config
        thread_local = config.thread_local
        frame_info = self.frame_infos[frame]
        if event in ("call", "enter"):
            thread_local.depth += 1
        elif config.last_frame and config.last_frame is not frame:
            switched = Event(frame_info, event, arg, thread_local.depth,
                             line_no=frame_info.last_line_no)
            config.write(config.formatter.format_line_only(switched))
        if event == "exception":
            frame_info.had_exception = True
        config.last_frame = frame
        if event == "line" and frame_info.comprehension_type:
            frame_info.collect_comprehension_values()
            return frame_info.local_tracer or self.trace
        current = Event(frame_info, event, arg, thread_local.depth)
        if not (code.co_name == "<genexpr>" and event not in ("return", "exception")):
            current.variables = frame_info.update_variables(
                self.watch, config.watch_extras, event, self.variable_whitelist)
        if event in ("return", "exit"):
            del self.frame_infos[frame]
            if frame_info.local_tracer:  # frame -> its trace function -> frame: not kept
                frame.f_trace = frame_info.local_tracer = None
            thread_local.depth -= 1
        config.write(config.formatter.format(current))
        if event == "call" and frame_info.comprehension_type:
            frame_info.local_tracer = self._comprehension_tracer(
                frame_info.collect_comprehension_values)
            return frame_info.local_tracer
        return self.trace

    def _comprehension_tracer(self, collect):
        """The local trace function of one comprehension frame: its 'line' events, while no
        other traced frame has printed since, only collect values; anything else goes
        through ``trace``."""
        config, trace = self.config, self.trace

        def local(frame, event, arg):
            if event == "line" and config.last_frame is frame:
                collect()
                return local
            return trace(frame, event, arg)

        return local


class FastFormatterMixin:
    """Memoises the two formatter pieces that are the same on every event that asks for them:
    the prefix for a call depth and the numbered source line. Only for formatters without
    columns (as groundtrace configures snoop)."""

    def full_prefix(self, event):
        cache = self.__dict__.setdefault("_prefixes", {})
        prefix = cache.get(event.depth)
        if prefix is None:
            prefix = cache[event.depth] = super().full_prefix(event)
        return prefix

    def format_event(self, entry):
        cache = self.__dict__.setdefault("_source_lines", {})
        key = (id(entry.source), entry.line_no)
        known = cache.get(key)
        if known is None or known[0] is not entry.source:
            known = cache[key] = (entry.source, super().format_event(entry))
        return known[1]


class _Ends:
    """A list or tuple as cheap_repr reads it, with ``[:n]`` lazy (cheap_repr reads a few
    items of it; a real slice would copy half the sequence)."""

    __slots__ = ("items",)

    def __init__(self, items):
        self.items = items

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self):
        return iter(self.items)

    def __reversed__(self):
        return reversed(self.items)

    def __getitem__(self, part):
        if isinstance(part, slice) and part.start is None and part.step is None \
                and part.stop is not None and part.stop >= 0:
            return itertools.islice(self.items, part.stop)
        return self.items[part]


def _lazy_ends(original, exact_type):
    def repr_function(x, helper):
        if type(x) is exact_type and len(x) > 1:
            return original(_Ends(x), helper)
        return original(x, helper)

    repr_function.__dict__.update(original.__dict__)  # maxparts and the like
    repr_function.__name__ = original.__name__
    return repr_function


def install(config) -> type:
    """Make cheap_repr's list and tuple reprs lazy; return ``config``'s tracer class (use it
    as ``config.snoop`` would be used: ``tracer(depth=N)(function)``). ``config`` must have
    no columns, watch extras or colour (as groundtrace configures snoop)."""
    formatter = config.formatter
    if formatter.columns or config.watch_extras or formatter.c.reset:
        raise ValueError("fast_snoop traces only without columns, watch extras or colour")
    for kind in (list, tuple):
        original = cheap_repr.find_repr_function(kind)
        if not getattr(original, "lazy_ends", False):
            replacement = _lazy_ends(original, kind)
            replacement.lazy_ends = True
            cheap_repr.register_repr(kind)(replacement)
    return type("snoop", (FastTracer,), {"config": config})
