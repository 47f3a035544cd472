"""A strict stand-in for a device array module: NumPy underneath, but not NumPy to the core.

``backend.use(checked_xp.namespace)`` makes ``backend.xp`` a namespace whose arrays
(``DeviceArray``) behave as CuPy's do towards NumPy, only more strictly:

- a NumPy function called on one (``np.exp(a)``, ``np.add.at(a, ...)``) raises ``Escaped``;
- so does an implicit conversion to NumPy (``np.asarray(a)``: CuPy refuses it too);
- a plain NumPy array that meets one (``a + np.zeros(3)``, ``xp.concatenate([a, host])``,
  ``a[...] = host``, ``a[host_index]``) raises ``Escaped``: on a GPU that is a host array
  where a device array belongs;
- so does a function not on ``CUPY_FUNCTIONS`` (checked by hand against CuPy's API), an output
  given to ``matmul`` by position (CuPy's refuses it) and, where CuPy is installed, a call that
  does not bind to the CuPy function's signature.

Arrays cross only through ``backend.asarray`` (``xp.asarray``) and ``backend.to_numpy``
(``.get()``), as on a GPU. Reductions return 0-d arrays, as CuPy's do. Every computation is
NumPy's own, so results equal the NumPy backend's bit for bit: a test can compare the two.
"""

from __future__ import annotations

import importlib.util
import inspect
import operator

import numpy as np

# Where CuPy is installed (a GPU is not needed to import it), every call through the namespace
# must also bind to the CuPy function's own signature: a keyword CuPy lacks raises Escaped.
cupy = importlib.import_module("cupy") if importlib.util.find_spec("cupy") else None


class Escaped(TypeError):
    """The core used NumPy where it should have gone through ``backend``."""


def unwrap(value, what: str):
    """``value`` with every DeviceArray replaced by its NumPy array; a NumPy array in it
    (not a NumPy scalar) raises Escaped."""
    if isinstance(value, DeviceArray):
        return value._a
    if isinstance(value, np.ndarray):
        raise Escaped(f"a NumPy array {value.shape} {value.dtype} met device arrays in {what}")
    if isinstance(value, list | tuple):
        return type(value)(unwrap(v, what) for v in value)
    return value


def wrap(value):
    """NumPy results as device arrays (scalars from reductions as 0-d ones)."""
    if isinstance(value, np.ndarray):
        return DeviceArray(value)
    if isinstance(value, np.generic):
        return DeviceArray(np.asarray(value))
    if isinstance(value, tuple) and any(isinstance(v, np.ndarray) for v in value):
        return tuple(wrap(v) for v in value)
    return value


def _call(f, what: str):
    def call(*args, **kwargs):
        args = unwrap(args, what)
        kwargs = {k: unwrap(v, what) for k, v in kwargs.items()}
        return wrap(f(*args, **kwargs))

    return call


class DeviceArray:
    """A NumPy array seen as device memory (see the module docstring)."""

    __slots__ = ("_a",)

    def __init__(self, a: np.ndarray):
        self._a = a

    def __array__(self, *args, **kwargs):
        raise Escaped("a device array was converted to NumPy implicitly; use backend.to_numpy")

    def __array_ufunc__(self, ufunc, method, *args, **kwargs):
        if method == "__call__" and not kwargs and len(args) == 2 and args[1] is self:
            if isinstance(args[0], np.generic):  # np.float32(1) / a: CuPy takes it too
                return wrap(ufunc(args[0], self._a))
        name = ufunc.__name__ if method == "__call__" else f"{ufunc.__name__}.{method}"
        raise Escaped(f"numpy.{name} called on a device array; use backend.xp")

    def __array_function__(self, func, types, args, kwargs):
        raise Escaped(f"numpy.{func.__name__} called on a device array; use backend.xp")

    def get(self) -> np.ndarray:
        """A host copy, as ``cupy.ndarray.get``."""
        return self._a.copy()

    def __getattr__(self, name):
        if name.startswith("__"):  # __array_interface__ would hand NumPy the memory
            raise AttributeError(name)
        value = getattr(self._a, name)
        return _call(value, f"ndarray.{name}") if callable(value) else wrap(value)

    def __getitem__(self, key):
        return wrap(self._a[unwrap(key, "an index")])

    def __setitem__(self, key, value):
        self._a[unwrap(key, "an index")] = unwrap(value, "an assignment")

    def __len__(self) -> int:
        return len(self._a)

    def __iter__(self):
        return (wrap(v) for v in self._a)

    def __bool__(self) -> bool:
        return bool(self._a)

    def __float__(self) -> float:
        return float(self._a)

    def __int__(self) -> int:
        return int(self._a)

    def __index__(self) -> int:
        return operator.index(self._a)

    def __repr__(self) -> str:
        return f"DeviceArray({self._a!r})"


def _binary(name: str) -> None:
    """DeviceArray's ``a <op> b``, ``b <op> a`` and ``a <op>= b`` for operator ``name``."""
    f, what = getattr(operator, f"__{name}__"), f"operator {name}"
    setattr(DeviceArray, f"__{name}__", lambda a, b: wrap(f(a._a, unwrap(b, what))))
    setattr(DeviceArray, f"__r{name}__", lambda a, b: wrap(f(unwrap(b, what), a._a)))
    in_place = getattr(operator, f"__i{name}__")

    def update(a, b):
        in_place(a._a, unwrap(b, what))
        return a

    setattr(DeviceArray, f"__i{name}__", update)


for _name in "add sub mul truediv floordiv mod pow matmul and or xor".split():
    _binary(_name)


def _compare(name: str) -> None:
    f = getattr(operator, f"__{name}__")
    setattr(DeviceArray, f"__{name}__", lambda a, b: wrap(f(a._a, unwrap(b, "a comparison"))))


def _unary(name: str) -> None:
    f = getattr(operator, f"__{name}__")
    setattr(DeviceArray, f"__{name}__", lambda a: wrap(f(a._a)))


for _name in "lt le gt ge eq ne".split():
    _compare(_name)
for _name in "neg pos abs invert".split():
    _unary(_name)
DeviceArray.__hash__ = None  # arrays are not hashable (eq is elementwise)


class _Ufunc:
    """A ufunc of the namespace: call, ``at``, ``reduce``, ``reduceat``, ``outer``."""

    def __init__(self, ufunc: np.ufunc):
        self._u = ufunc
        self.__name__ = ufunc.__name__

    def __call__(self, *args, **kwargs):
        return _call(self._u, f"xp.{self.__name__}")(*args, **kwargs)

    def __getattr__(self, method):
        return _call(getattr(self._u, method), f"xp.{self.__name__}.{method}")


# Functions that copy host data to the device (the one way in), as cupy.asarray does.
_HOST_TO_DEVICE = {"asarray", "array", "ascontiguousarray"}

# The functions the core may call, each checked to exist in CuPy 13 with the arguments the core
# passes (cupy/__init__.py; ufuncs take their outputs positionally or as ``out=``). A new one
# is refused here until it has been checked the same way and added.
CUPY_FUNCTIONS = set(
    """abs add all arange argsort array asarray ascontiguousarray bincount broadcast_to clip
    concatenate count_nonzero divide empty empty_like equal exp expand_dims expm1 flatnonzero
    full greater isfinite log log1p matmul maximum minimum multiply ndim ones pad round sign
    split sqrt stack subtract take tanh vdot where zeros zeros_like""".split()
)
# CuPy's matmul is a generalized ufunc that takes its output only as ``out=``
# (cupy/_core/_gufuncs.py: "requires 2 arguments"); NumPy's takes it positionally too.
_POSITIONAL_LIMIT = {"matmul": 2}


class Namespace:
    """NumPy's functions, taking and returning DeviceArrays (see the module docstring)."""

    name = "checked"

    def __init__(self, module=np):
        self._module = module

    def __getattr__(self, name):
        value = getattr(self._module, name)
        if isinstance(value, type | np.dtype) or not callable(value):
            return value  # dtypes (xp.float32), constants (xp.inf)
        if name not in CUPY_FUNCTIONS:
            raise Escaped(f"xp.{name} is not among the functions checked against CuPy's API")
        if name in _POSITIONAL_LIMIT:
            value = _limited(value, name, _POSITIONAL_LIMIT[name])
        value = _binding_as_cupy(value, name)
        if isinstance(value, np.ufunc):
            return _Ufunc(value)
        if name in _HOST_TO_DEVICE:
            return lambda a, *args, **kw: wrap(value(_host_or_device(a), *args, **kw))
        return _call(value, f"xp.{name}")


def _binding_as_cupy(f, name: str):
    """``f``, checking first that its arguments bind to ``cupy.<name>`` (when CuPy is
    installed and the function is Python, not a compiled ufunc)."""
    if cupy is None:
        return f
    try:
        signature = inspect.signature(getattr(cupy, name))
    except (TypeError, ValueError):  # a compiled ufunc: its arguments are NumPy's
        return f

    def call(*args, **kwargs):
        try:
            signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise Escaped(f"xp.{name}: CuPy's {name}{signature} does not take it: {exc}") from None
        return f(*args, **kwargs)

    return call


def _limited(f, name: str, positional: int):
    def call(*args, **kwargs):
        if len(args) > positional:
            raise Escaped(f"xp.{name} takes {positional} arguments on CuPy; pass out= by name")
        return f(*args, **kwargs)

    return call


def _host_or_device(a):
    """The NumPy array behind ``a``: a device array's own, or a copy of host data (a GPU
    copies it too, so later changes to the host array must not show on the device)."""
    if isinstance(a, DeviceArray):
        return a._a
    if isinstance(a, np.ndarray):
        return a.copy()
    if isinstance(a, list | tuple) and any(isinstance(v, DeviceArray) for v in a):
        return unwrap(a, "xp.asarray")
    return a


namespace = Namespace()
