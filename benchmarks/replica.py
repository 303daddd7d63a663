"""Values of numpy, pandas, matplotlib and seaborn as plain data, and real ones rebuilt from it: what a
DataFrameBench solution's results become to cross from its sandbox to the judge (`benchmarks.judge`).

Runs in both sandboxes, sent as source text like `benchmarks.judge` (stdlib at import; numpy, pandas,
matplotlib and seaborn imported on first use). The candidate side reads its live objects and writes
tagged JSON-able lists; the judge side never runs the solution's code: it checks every field's type and
rebuilds genuine objects with the libraries' own constructors (`pd.DataFrame`, `np.frombuffer`,
`Axes.plot`, `Axes.add_patch`, ...). So whatever the solution returns, the tests compare a real
DataFrame or Axes holding the data it described; a type or method of its own never arrives. What a
described plot keeps is listed in `_axes` (titles, labels, limits, scales, ticks and their labels,
lines, patches, collections with their arrays, colormaps and colorbars, texts, images, bar containers,
legend texts); anything else a test reads of a plot is what a fresh Axes holds.

Refused (`WireError`, the task fails): object arrays of anything not plain, structured dtypes, and
any type not handled here (the message names it).
"""

from __future__ import annotations

import collections
import datetime
import decimal
import json
import math
from collections.abc import Callable
from typing import Any, Literal, cast

Recurse = Callable[[object, int], object]
TimeUnit = Literal["s", "ms", "us", "ns"]
"""The units a pandas Timestamp or Timedelta holds its value in (`Timestamp.unit`)."""
_TIME_UNITS: tuple[TimeUnit, ...] = ("s", "ms", "us", "ns")


class WireError(TypeError):
    """A value that may not cross between the candidate and the judge."""


def _tag(value: object) -> str:
    kind = type(value)
    return f"{getattr(kind, '__module__', '')}.{kind.__qualname__}"


def _is(value: object, *names: str) -> bool:
    """Whether `value` is an instance of a class of these qualified names (checked without importing)."""
    return any(f"{c.__module__}.{c.__qualname__}" in names for c in type(value).__mro__)


def _str(value: object) -> str:
    if type(value) is not str:
        raise WireError("malformed value: a string was expected")
    return value


def _num(value: object) -> float:
    if not isinstance(value, (int, float)) or type(value) not in (int, float):  # a bool is no number here
        raise WireError("malformed value: a number was expected")
    return float(value)


def _int(value: object) -> int:
    if type(value) is not int:
        raise WireError("malformed value: an integer was expected")
    return value


def _list(value: object, size: int | None = None) -> list:
    if type(value) is not list or (size is not None and len(value) != size):
        raise WireError("malformed value: a list was expected")
    return value


def _float(x: float) -> object:
    return x if math.isfinite(x) else repr(x)


def _unit(value: object) -> TimeUnit:
    unit = _str(value)
    if unit not in _TIME_UNITS:
        raise WireError(f"malformed time unit {unit!r}")
    return unit


def _unfloat(x: object) -> float:
    if type(x) is str and x in ("nan", "inf", "-inf"):
        return float(x)
    return _num(x)


# --- candidate side: live objects -> tagged data --------------------------------------------------


def encode(value: object, depth: int, recurse: Recurse) -> object:
    """`value` (not plain data) as a tagged list; `recurse` encodes nested values. Raises WireError."""
    if type(value) in (datetime.datetime, datetime.date, datetime.time, datetime.timedelta, decimal.Decimal):
        return _stdlib(value)
    live: Any = value  # its class is checked below by type() or by qualified name (`_is`), which mypy cannot follow
    if type(live) in (collections.Counter, collections.OrderedDict):
        return ["cC" if type(live) is collections.Counter else "cO", recurse(dict(live), depth + 1)]
    factory = live.default_factory if type(live) is collections.defaultdict else None
    if factory is not None and factory in _FACTORIES.values():
        return ["cD", factory.__name__, recurse(dict(live), depth + 1)]
    if type(value).__name__ == "module" and getattr(value, "__name__", None) in _MODULES:
        return _module(value, recurse, depth)
    module = type(value).__module__.split(".")[0]
    if module == "numpy":
        return _numpy(value, recurse, depth)
    if module == "pandas":
        return _pandas(value, recurse, depth)
    if module == "matplotlib" and _is(value, "matplotlib.figure.Figure", "matplotlib.axes._base._AxesBase"):
        figure = live if _is(live, "matplotlib.figure.Figure") else live.figure
        described = _figure(figure, recurse, depth)
        if figure is live:
            return ["mF", described]
        return ["mA", described, figure.axes.index(live)]
    if module == "seaborn" and _is(value, "seaborn.axisgrid.Grid"):
        import numpy as np

        figure = live.figure
        axes = np.asarray(live.axes, dtype=np.object_)
        where = [figure.axes.index(a) if a is not None else -1 for a in axes.ravel().tolist()]  # the Axes, in order
        return ["sG", type(value).__name__, _figure(figure, recurse, depth), list(axes.shape), where]
    if module == "sklearn" and _is(value, "sklearn.base.BaseEstimator"):
        return _estimator(value, recurse, depth)
    raise WireError(f"a value of type {_tag(value)} cannot be compared by the grader")


_FACTORIES = {"int": int, "float": float, "str": str, "list": list, "dict": dict, "set": set, "tuple": tuple}
"""The default factories a defaultdict may carry (by name)."""
_MODULES = ("matplotlib.pyplot", "matplotlib", "numpy", "pandas", "seaborn", "scipy.stats")
"""Library modules a solution may return (`return plt, ax`): the judge's own module arrives."""


def _module(value: Any, recurse: Recurse, depth: int) -> list:
    current = None
    if value.__name__ == "matplotlib.pyplot" and value.get_fignums():
        current = _figure(value.gcf(), recurse, depth + 1)  # what `plt.gca()` shows the tests
    return ["mP", value.__name__, current]


def _estimator(value: Any, recurse: Recurse, depth: int) -> list:
    """A scikit-learn estimator: its class, constructor parameters and fitted attributes (`coef_`, ...)."""
    fitted = {k: v for k, v in vars(value).items() if k.endswith("_") and not k.startswith("_")}
    params = dict(value.get_params(deep=False))
    kind = type(value)
    return ["kE", kind.__module__, kind.__qualname__, recurse(params, depth + 1), recurse(fitted, depth + 1)]


def _stdlib(value: object) -> list:
    if isinstance(value, decimal.Decimal):
        return ["dD", str(value)]
    if isinstance(value, datetime.timedelta):
        return ["dT", value.days, value.seconds, value.microseconds]
    if not isinstance(value, (datetime.date, datetime.time)) or type(value) not in _DATETIMES:
        raise WireError(f"a value of type {_tag(value)} cannot be compared by the grader")
    return ["d" + _DATETIMES[type(value)], value.isoformat()]


_DATETIMES: dict[type, str] = {datetime.datetime: "t", datetime.date: "d", datetime.time: "h"}
"""The datetime classes that cross (exactly these, no subclass), by the letter that tags them."""


def _dtype(dtype: Any) -> str:
    if dtype.hasobject or dtype.kind == "V" or dtype.fields:
        raise WireError(f"arrays of dtype {dtype} cannot be compared by the grader")
    return str(dtype.str)


def _numpy(value: Any, recurse: Recurse, depth: int) -> list:
    import numpy as np

    if isinstance(value, np.ma.MaskedArray):
        return [
            "nM",
            _numpy(np.asarray(value.data), recurse, depth + 1),
            _numpy(np.ma.getmaskarray(value), recurse, depth + 1),
        ]
    if isinstance(value, np.ndarray):
        if value.dtype == object:
            return ["nO", list(value.shape), [recurse(v, depth + 1) for v in value.flat]]
        return ["nA", _dtype(value.dtype), list(value.shape), np.ascontiguousarray(value).tobytes().hex()]
    if isinstance(value, np.generic):
        return ["nS", _dtype(value.dtype), np.asarray(value).tobytes().hex()]
    if isinstance(value, np.dtype):
        return ["nD", _dtype(value)]
    raise WireError(f"a value of type {_tag(value)} cannot be compared by the grader")


def _pandas(value: Any, recurse: Recurse, depth: int) -> list:
    import pandas as pd

    if value is pd.NaT:
        return ["pNaT"]
    if value is pd.NA:
        return ["pNA"]
    if isinstance(value, pd.Timestamp):
        return ["pT", value.value, value.unit, None if value.tz is None else str(value.tz)]
    if isinstance(value, pd.Timedelta):
        return ["pt", value.value, value.unit]
    if isinstance(value, pd.DataFrame):
        arrays = [_array(value.iloc[:, i].array, recurse, depth + 1) for i in range(value.shape[1])]
        return ["pD", arrays, _index(value.columns, recurse, depth + 1), _index(value.index, recurse, depth + 1)]
    if isinstance(value, pd.Series):
        return [
            "pS",
            _array(value.array, recurse, depth + 1),
            _index(value.index, recurse, depth + 1),
            recurse(value.name, depth + 1),
        ]
    if isinstance(value, pd.Index):
        return _index(value, recurse, depth)
    if isinstance(value, pd.api.extensions.ExtensionArray):
        return _array(value, recurse, depth)
    raise WireError(f"a value of type {_tag(value)} cannot be compared by the grader")


def _index(index: Any, recurse: Recurse, depth: int) -> list:
    import pandas as pd

    if isinstance(index, pd.RangeIndex):
        return ["pR", index.start, index.stop, index.step, recurse(index.name, depth + 1)]
    if isinstance(index, pd.MultiIndex):
        return [
            "pMI",
            [_index(level, recurse, depth + 1) for level in index.levels],
            [_numpy(codes, recurse, depth + 1) for codes in index.codes],
            [recurse(n, depth + 1) for n in index.names],
        ]
    freq = getattr(index, "freqstr", None) if isinstance(index, pd.DatetimeIndex) else None
    return ["pI", _array(index.array, recurse, depth + 1), recurse(index.name, depth + 1), freq]


def _array(array: Any, recurse: Recurse, depth: int) -> list:
    """A pandas ExtensionArray or numpy array, keeping its dtype."""
    import numpy as np
    import pandas as pd

    if isinstance(array, np.ndarray):
        return ["a", _numpy(array, recurse, depth)]
    if isinstance(array, pd.arrays.NumpyExtensionArray):
        return ["a", _numpy(array.to_numpy(), recurse, depth)]
    if isinstance(array, pd.Categorical):
        return [
            "aC",
            _index(array.categories, recurse, depth + 1),
            _numpy(array.codes, recurse, depth + 1),
            bool(array.ordered),
        ]
    if isinstance(array, pd.arrays.DatetimeArray):
        # asi8 (pandas-stubs omit it): the int64 values, UTC for a tz-aware array; np.asarray gives Timestamps there
        i8 = array.asi8  # type: ignore[attr-defined]
        return ["aDT", _numpy(i8, recurse, depth + 1), array.unit, None if array.tz is None else str(array.tz)]
    if isinstance(array, pd.arrays.TimedeltaArray):
        return ["aTD", _numpy(array.asi8, recurse, depth + 1), array.unit]  # type: ignore[attr-defined]  # as above
    if isinstance(array, (pd.arrays.IntegerArray, pd.arrays.FloatingArray, pd.arrays.BooleanArray)):
        return [
            "aM",
            str(array.dtype),
            # The values and mask as stored, no fill under the mask (pandas has no public view; stubs omit them)
            _numpy(array._data, recurse, depth + 1),  # type: ignore[union-attr]
            _numpy(array._mask, recurse, depth + 1),  # type: ignore[union-attr]
        ]
    if isinstance(array, pd.arrays.StringArray):
        # None for a missing string; pandas takes any scalar as na_value, pandas-stubs' Scalar leaves None out
        strings = array.to_numpy(dtype=object, na_value=None)  # type: ignore[arg-type]
        return ["aS", _numpy(strings, recurse, depth + 1), str(array.dtype)]
    if isinstance(array, pd.arrays.PeriodArray):
        # The int64 ordinals (stubs omit asi8); np.asarray would give Period objects
        return ["aP", _numpy(array.asi8, recurse, depth + 1), array.freqstr]  # type: ignore[attr-defined]
    raise WireError(f"a pandas array of type {_tag(array)} cannot be compared by the grader")


def _color(color: Any) -> list | None:
    import matplotlib.colors as mcolors

    try:
        return [float(c) for c in mcolors.to_rgba(color)]
    except (ValueError, TypeError):
        return None


def _colors(colors: Any) -> list:
    import numpy as np

    return [[float(c) for c in row] for row in np.asarray(colors, dtype=float).reshape(-1, 4)]


def _text(text: Any) -> dict:
    x, y = text.get_position()
    return {
        "text": str(text.get_text()),
        "x": _float(float(x)) if isinstance(x, (int, float)) else 0.0,
        "y": _float(float(y)) if isinstance(y, (int, float)) else 0.0,
        "ha": str(text.get_ha()),
        "va": str(text.get_va()),
        "color": _color(text.get_color()),
        "fontsize": float(text.get_fontsize()),
        "visible": bool(text.get_visible()),
    }


def _path(path: Any, recurse: Recurse, depth: int) -> list:
    import numpy as np

    codes = None if path.codes is None else _numpy(np.asarray(path.codes, dtype=np.uint8), recurse, depth)
    return [_numpy(np.asarray(path.vertices, dtype=float), recurse, depth), codes]


def _artist(artist: Any) -> dict:
    label = artist.get_label()
    return {
        "label": label if type(label) is str else str(label),
        "visible": bool(artist.get_visible()),
        "alpha": artist.get_alpha() if isinstance(artist.get_alpha(), float) else None,
        "zorder": float(artist.get_zorder()),
    }


def _patch(patch: Any, recurse: Recurse, depth: int) -> dict:
    from matplotlib import patches as mpatches

    hatch = patch.get_hatch()
    common = {
        **_artist(patch),
        "facecolor": _color(patch.get_facecolor()),
        "edgecolor": _color(patch.get_edgecolor()),
        "linewidth": float(patch.get_linewidth()),
        "hatch": hatch if type(hatch) is str else None,
    }
    if type(patch) is mpatches.Rectangle:
        x, y = patch.get_xy()
        return {
            **common,
            "kind": "Rectangle",
            "xy": [_float(float(x)), _float(float(y))],
            "width": _float(float(patch.get_width())),
            "height": _float(float(patch.get_height())),
            "angle": float(patch.get_angle()),
        }
    if type(patch) is mpatches.Wedge:
        return {
            **common,
            "kind": "Wedge",
            "center": [float(c) for c in patch.center],
            "r": float(patch.r),
            "theta1": float(patch.theta1),
            "theta2": float(patch.theta2),
            "width": None if patch.width is None else float(patch.width),
        }
    # Anything else keeps its outline in data coordinates (a Polygon, PathPatch, Circle, ...).
    path = patch.get_path().transformed(patch.get_patch_transform())
    return {**common, "kind": "Path", "path": _path(path, recurse, depth + 1)}


def _collection(collection: Any, figure: Any, recurse: Recurse, depth: int) -> dict:
    import numpy as np

    array = collection.get_array()
    colorbar = getattr(collection, "colorbar", None)
    offsets = collection.get_offsets()
    offsets = offsets if isinstance(offsets, np.ma.MaskedArray) else np.asarray(offsets, dtype=float)
    sizes = collection.get_sizes() if hasattr(collection, "get_sizes") else []
    colorbar_axes = figure.axes.index(colorbar.ax) if colorbar is not None and colorbar.ax in figure.axes else None
    kind = type(collection).__name__
    described = {
        **_artist(collection),
        "kind": kind,
        "offsets": _numpy(offsets, recurse, depth + 1),
        "array": None if array is None else _numpy(array, recurse, depth + 1),
        "cmap": str(collection.get_cmap().name),
        "clim": [_float(float(v)) if v is not None else None for v in collection.get_clim()],
        "facecolors": _colors(collection.get_facecolor()),
        "edgecolors": _colors(collection.get_edgecolor()),
        "sizes": [float(s) for s in np.asarray(sizes, dtype=float).ravel()],
        "paths": [_path(p, recurse, depth + 1) for p in collection.get_paths()[:10000]],
        "colorbar": colorbar_axes,
    }
    if kind == "QuadMesh":
        described["coordinates"] = _numpy(np.asarray(collection.get_coordinates(), dtype=float), recurse, depth + 1)
    return described


def _ticks(axis: Any) -> dict:
    return {
        "ticks": [_float(float(t)) for t in axis.get_ticklocs()],
        "labels": [str(t.get_text()) for t in axis.get_ticklabels()],
    }


def _axes(ax: Any, figure: Any, recurse: Recurse, depth: int) -> dict:
    """One Axes as plain data: what the rebuilt Axes will hold."""
    from matplotlib.container import BarContainer

    legend = ax.get_legend()
    patches = list(ax.patches)
    described = {
        "position": [float(v) for v in ax.get_position().bounds],
        "titles": {loc: str(ax.get_title(loc=loc)) for loc in ("left", "center", "right")},
        "xlabel": str(ax.get_xlabel()),
        "ylabel": str(ax.get_ylabel()),
        "xscale": str(ax.get_xscale()),
        "yscale": str(ax.get_yscale()),
        "xlim": [_float(float(v)) for v in ax.get_xlim()],
        "ylim": [_float(float(v)) for v in ax.get_ylim()],
        "xticks": _ticks(ax.xaxis),
        "yticks": _ticks(ax.yaxis),
        "lines": [
            {
                **_artist(line),
                "x": recurse(line.get_xdata(orig=True), depth + 1),
                "y": recurse(line.get_ydata(orig=True), depth + 1),
                "color": _color(line.get_color()),
                "linestyle": str(line.get_linestyle()),
                "linewidth": float(line.get_linewidth()),
                "marker": str(line.get_marker()) if line.get_marker() is not None else "None",
                "markersize": float(line.get_markersize()),
            }
            for line in ax.lines
        ],
        "patches": [_patch(p, recurse, depth + 1) for p in patches],
        "collections": [_collection(c, figure, recurse, depth + 1) for c in ax.collections],
        "texts": [_text(t) for t in ax.texts],
        "images": [
            {
                **_artist(image),
                "array": _numpy(image.get_array(), recurse, depth + 1),
                "extent": [float(v) for v in image.get_extent()],
                "cmap": str(image.get_cmap().name),
            }
            for image in ax.images
        ],
        "containers": [
            {
                "label": str(c.get_label()),
                "orientation": str(getattr(c, "orientation", "vertical")),
                "patches": [patches.index(p) for p in c.patches if p in patches],
            }
            for c in ax.containers
            if isinstance(c, BarContainer)
        ],
        "legend": None
        if legend is None
        else {"texts": [str(t.get_text()) for t in legend.get_texts()], "title": str(legend.get_title().get_text())},
        "colorbar": None,
    }
    return described


def _figure(figure: Any, recurse: Recurse, depth: int) -> dict:
    axes = [_axes(ax, figure, recurse, depth + 1) for ax in figure.axes]
    for i, ax in enumerate(figure.axes):  # a colorbar's own Axes is rebuilt by the colorbar
        for j, other in enumerate(figure.axes):
            for k, collection in enumerate(other.collections):
                colorbar = getattr(collection, "colorbar", None)
                if colorbar is not None and colorbar.ax is ax:
                    axes[i]["colorbar"] = [j, k, str(ax.get_ylabel()), str(ax.get_xlabel())]
    suptitle = figure._suptitle.get_text() if getattr(figure, "_suptitle", None) is not None else None
    return {
        "size": [float(v) for v in figure.get_size_inches()],
        "dpi": float(figure.dpi),
        "axes": axes,
        "suptitle": suptitle,
        "number": getattr(figure, "number", None),
    }


# --- judge side: tagged data -> genuine objects ---------------------------------------------------

_MESSAGE: dict[str, Any] = {}
"""The figures rebuilt from the message being decoded, by description (`new_message` empties it)."""


def new_message() -> None:
    """Judge side, before decoding a reply: figures of earlier replies are not reused."""
    _MESSAGE.clear()


def decode(data: list, depth: int, recurse: Recurse) -> object:
    """The object `encode` described, rebuilt with the libraries' own constructors. Raises WireError."""
    tag, rest = data[0], data[1:]
    try:
        if tag in ("dt", "dd", "dh"):
            kinds: dict[str, type[datetime.date] | type[datetime.time]]
            kinds = {"dt": datetime.datetime, "dd": datetime.date, "dh": datetime.time}
            return kinds[tag].fromisoformat(_str(rest[0]))
        if tag == "dT":
            return datetime.timedelta(days=_num(rest[0]), seconds=_num(rest[1]), microseconds=_num(rest[2]))
        if tag == "dD":
            return decimal.Decimal(_str(rest[0]))
        if tag in ("cC", "cO", "cD"):
            items = recurse(rest[-1], depth + 1)
            if type(items) is not dict:
                raise WireError("malformed mapping")
            if tag == "cD":
                return collections.defaultdict(_FACTORIES[_str(rest[0])], items)
            return (collections.Counter if tag == "cC" else collections.OrderedDict)(items)
        if tag.startswith("n"):
            return _unnumpy(data, recurse, depth)
        if tag.startswith("p"):
            return _unpandas(data, recurse, depth)
        if tag in ("mF", "mA"):
            key = json.dumps(rest[0], sort_keys=True)  # two Axes of one figure: one figure
            figure = _MESSAGE.get(key) or _MESSAGE.setdefault(key, _unfigure(rest[0], recurse, depth))
            return figure if tag == "mF" else figure.axes[_int(rest[1])]
        if tag == "sG":
            return _ungrid(rest, recurse, depth)
        if tag == "mP":
            return _unmodule(rest, recurse, depth)
        if tag == "kE":
            return _unestimator(rest, recurse, depth)
    except WireError:
        raise
    except Exception as e:  # noqa: BLE001 - a library refusing a described value: the value is malformed
        raise WireError(f"malformed {tag} value: {type(e).__name__}: {e}") from None
    raise WireError(f"malformed value tag {tag!r}")


def _undtype(text: object) -> Any:
    import numpy as np

    dtype = np.dtype(_str(text))
    if dtype.hasobject or dtype.kind == "V" or dtype.fields:
        raise WireError(f"arrays of dtype {dtype} cannot cross")
    return dtype


def _unnumpy(data: list, recurse: Recurse, depth: int) -> Any:
    import numpy as np

    tag, rest = data[0], data[1:]
    if tag == "nA":
        dtype = _undtype(rest[0])
        shape = tuple(_int(n) for n in _list(rest[1]))
        return np.frombuffer(bytes.fromhex(_str(rest[2])), dtype=dtype).reshape(shape).copy()
    if tag == "nS":
        return np.frombuffer(bytes.fromhex(_str(rest[1])), dtype=_undtype(rest[0]))[0]
    if tag == "nO":
        shape = tuple(_int(n) for n in _list(rest[0]))
        items = [recurse(v, depth + 1) for v in _list(rest[1])]
        array = np.empty(len(items), dtype=object)
        array[:] = items if items else []
        return array.reshape(shape)
    if tag == "nM":
        return np.ma.MaskedArray(
            _unnumpy(_list(rest[0]), recurse, depth + 1), mask=_unnumpy(_list(rest[1]), recurse, depth + 1)
        )
    if tag == "nD":
        return _undtype(rest[0])
    raise WireError(f"malformed value tag {tag!r}")


def _unpandas(data: list, recurse: Recurse, depth: int) -> Any:
    import pandas as pd

    tag, rest = data[0], data[1:]
    if tag == "pNaT":
        return pd.NaT
    if tag == "pNA":
        return pd.NA
    if tag == "pT":
        stamp = pd.Timestamp(_int(rest[0]), unit="ns", tz=None if rest[2] is None else "UTC")
        stamp = stamp if rest[2] is None else stamp.tz_convert(_str(rest[2]))
        return stamp.as_unit(_unit(rest[1]))
    if tag == "pt":
        return pd.Timedelta(_int(rest[0]), unit="ns").as_unit(_unit(rest[1]))
    if tag == "pD":
        arrays = [_unarray(_list(a), recurse, depth + 1) for a in _list(rest[0])]
        columns, index = _unindex(_list(rest[1]), recurse, depth + 1), _unindex(_list(rest[2]), recurse, depth + 1)
        if len(columns) != len(arrays):
            raise WireError("malformed DataFrame: columns and arrays differ in number")
        frame = pd.DataFrame(dict(enumerate(arrays)), index=index) if arrays else pd.DataFrame(index=index)
        frame.columns = columns
        return frame
    if tag == "pS":
        index = _unindex(_list(rest[1]), recurse, depth + 1)
        return pd.Series(
            _unarray(_list(rest[0]), recurse, depth + 1), index=index, name=recurse(rest[2], depth + 1), copy=False
        )
    if tag in ("pR", "pMI", "pI"):
        return _unindex(data, recurse, depth)
    if tag.startswith("a"):
        return _unarray(data, recurse, depth)
    raise WireError(f"malformed value tag {tag!r}")


def _unindex(data: list, recurse: Recurse, depth: int) -> Any:
    import pandas as pd

    tag, rest = data[0], data[1:]
    if tag == "pR":
        start, stop, step = (_int(v) for v in rest[:3])
        return pd.RangeIndex(start, stop, step, name=recurse(rest[3], depth + 1))
    if tag == "pMI":
        return pd.MultiIndex(
            levels=[_unindex(_list(level), recurse, depth + 1) for level in _list(rest[0])],
            codes=[_unnumpy(_list(c), recurse, depth + 1) for c in _list(rest[1])],
            names=[recurse(n, depth + 1) for n in _list(rest[2])],
            verify_integrity=True,
        )
    if tag == "pI":
        values = _unarray(_list(rest[0]), recurse, depth + 1)
        index = pd.Index(values, name=recurse(rest[1], depth + 1), tupleize_cols=False)
        if rest[2] is not None:
            index = pd.DatetimeIndex(index, freq=_str(rest[2]))
        return index
    raise WireError(f"malformed index tag {tag!r}")


_MASKED = ("Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64", "Float32", "Float64", "boolean")


def _unarray(data: list, recurse: Recurse, depth: int) -> Any:
    import numpy as np
    import pandas as pd

    tag, rest = data[0], data[1:]
    if tag == "a":
        return _unnumpy(_list(rest[0]), recurse, depth + 1)
    if tag == "aC":
        categories = _unindex(_list(rest[0]), recurse, depth + 1)
        return pd.Categorical.from_codes(
            _unnumpy(_list(rest[1]), recurse, depth + 1), categories=categories, ordered=rest[2] is True
        )
    if tag == "aDT":
        values = _unnumpy(_list(rest[0]), recurse, depth + 1).astype(f"M8[{_str(rest[1])}]")
        array = pd.array(values)
        return array if rest[2] is None else array.tz_localize("UTC").tz_convert(_str(rest[2]))
    if tag == "aTD":
        return pd.array(_unnumpy(_list(rest[0]), recurse, depth + 1).astype(f"m8[{_str(rest[1])}]"))
    if tag == "aM":
        dtype = pd.api.types.pandas_dtype(_str(rest[0]))
        if not isinstance(dtype, pd.api.extensions.ExtensionDtype) or dtype.name not in _MASKED:
            raise WireError(f"masked arrays of dtype {dtype} cannot cross")
        values = _unnumpy(_list(rest[1]), recurse, depth + 1)
        mask = _unnumpy(_list(rest[2]), recurse, depth + 1).astype(bool)
        filled = np.where(mask, np.array(None), values.astype(object))  # None under the mask
        # pandas-stubs type pd.array's dtype per concrete dtype class; this is one of _MASKED, checked above
        return pd.array(filled, dtype=dtype)  # type: ignore[call-overload]
    if tag == "aS":
        if rest[1] not in ("str", "string"):
            raise WireError("malformed string array")
        return pd.array(_unnumpy(_list(rest[0]), recurse, depth + 1), dtype=rest[1])
    if tag == "aP":
        return pd.arrays.PeriodArray(_unnumpy(_list(rest[0]), recurse, depth + 1), dtype=pd.PeriodDtype(_str(rest[1])))
    raise WireError(f"malformed array tag {tag!r}")


def _rgba(value: object) -> tuple | None:
    if value is None:
        return None
    return tuple(_num(c) for c in _list(value, 4))


def _unpath(data: object, recurse: Recurse, depth: int) -> Any:
    from matplotlib.path import Path

    vertices, codes = _list(data, 2)
    return Path(
        _unnumpy(_list(vertices), recurse, depth + 1),
        None if codes is None else _unnumpy(_list(codes), recurse, depth + 1),
    )


def _common(d: dict) -> dict:
    return {
        "label": _str(d["label"]),
        "visible": d["visible"] is True,
        "zorder": _num(d["zorder"]),
        "alpha": None if d["alpha"] is None else _num(d["alpha"]),
    }


def _unpatch(d: dict, recurse: Recurse, depth: int) -> Any:
    from matplotlib import patches as mpatches

    style = {
        **_common(d),
        "facecolor": _rgba(d["facecolor"]),
        "edgecolor": _rgba(d["edgecolor"]),
        "linewidth": _num(d["linewidth"]),
        "hatch": None if d["hatch"] is None else _str(d["hatch"]),
    }
    if d["kind"] == "Rectangle":
        x, y = (_unfloat(v) for v in _list(d["xy"], 2))
        return mpatches.Rectangle((x, y), _unfloat(d["width"]), _unfloat(d["height"]), angle=_num(d["angle"]), **style)
    if d["kind"] == "Wedge":
        cx, cy = (_num(c) for c in _list(d["center"], 2))
        return mpatches.Wedge(
            (cx, cy),
            _num(d["r"]),
            _num(d["theta1"]),
            _num(d["theta2"]),
            width=None if d["width"] is None else _num(d["width"]),
            **style,
        )
    if d["kind"] == "Path":
        return mpatches.PathPatch(_unpath(d["path"], recurse, depth), **style)
    raise WireError(f"malformed patch kind {d['kind']!r}")


_COLLECTIONS = (
    "PathCollection",
    "PolyCollection",
    "LineCollection",
    "QuadMesh",
    "FillBetweenPolyCollection",
    "EventCollection",
    "PatchCollection",
    "CircleCollection",
    "RegularPolyCollection",
)


def _uncollection(d: dict, ax: Any, recurse: Recurse, depth: int) -> Any:
    import matplotlib.collections as mcollections
    import numpy as np

    kind = _str(d["kind"])
    if kind not in _COLLECTIONS:
        raise WireError(f"a {kind} collection cannot cross")
    paths = [_unpath(p, recurse, depth) for p in _list(d["paths"])]
    offsets = _unnumpy(_list(d["offsets"]), recurse, depth + 1)
    common = _common(d)
    style = {
        "facecolors": np.array([_rgba(c) for c in _list(d["facecolors"])]).reshape(-1, 4),
        "edgecolors": np.array([_rgba(c) for c in _list(d["edgecolors"])]).reshape(-1, 4),
    }
    collection: mcollections.Collection
    if kind == "QuadMesh":
        coordinates = _unnumpy(_list(d["coordinates"]), recurse, depth + 1)
        collection = mcollections.QuadMesh(coordinates, facecolors=style["facecolors"], edgecolors=style["edgecolors"])
    elif kind == "LineCollection":
        collection = mcollections.LineCollection([p.vertices for p in paths], colors=style["edgecolors"])
    else:  # drawn as the paths they were: a PathCollection keeps its offsets and sizes
        collection = mcollections.PathCollection(paths, sizes=[_num(s) for s in _list(d["sizes"])], **style)
    collection.set_offsets(offsets)
    if not isinstance(offsets, np.ma.MaskedArray):
        # As described, shape included (set_offsets makes a (2,) pair (1, 2)); no public setter skips that
        collection._offsets = np.asarray(offsets, dtype=float)  # type: ignore[union-attr]
    if d["array"] is not None:
        collection.set_array(_unnumpy(_list(d["array"]), recurse, depth + 1))
    collection.set_cmap(_str(d["cmap"]))
    low, high = (None if v is None else _unfloat(v) for v in _list(d["clim"], 2))
    collection.set_clim(low, high)
    collection.set(**common)
    ax.add_collection(collection, autolim=False)
    return collection


def _unaxes(figure: Any, d: dict, recurse: Recurse, depth: int) -> Any:
    from matplotlib.container import BarContainer

    ax = figure.add_axes([_num(v) for v in _list(d["position"], 4)])
    if d["colorbar"] is not None:
        return ax  # filled by its colorbar once every Axes exists
    for line in _list(d["lines"]):
        ax.plot(
            recurse(line["x"], depth + 1),
            recurse(line["y"], depth + 1),
            color=_rgba(line["color"]),
            linestyle=_str(line["linestyle"]),
            linewidth=_num(line["linewidth"]),
            marker=_str(line["marker"]),
            markersize=_num(line["markersize"]),
            **_common(line),
        )
    patches = [ax.add_patch(_unpatch(p, recurse, depth + 1)) for p in _list(d["patches"])]
    for c in _list(d["collections"]):
        _uncollection(c, ax, recurse, depth + 1)
    for image in _list(d["images"]):
        extent = [_num(v) for v in _list(image["extent"], 4)]
        ax.imshow(
            _unnumpy(_list(image["array"]), recurse, depth + 1),
            extent=extent,
            cmap=_str(image["cmap"]),
            **_common(image),
        )
    for t in _list(d["texts"]):
        ax.text(
            _unfloat(t["x"]),
            _unfloat(t["y"]),
            _str(t["text"]),
            ha=_str(t["ha"]),
            va=_str(t["va"]),
            color=_rgba(t["color"]),
            fontsize=_num(t["fontsize"]),
            visible=t["visible"] is True,
        )
    for c in _list(d["containers"]):
        ax.containers.append(
            BarContainer(
                [patches[_int(i)] for i in _list(c["patches"])],
                label=_str(c["label"]),
                # Carried as the candidate's container held it (matplotlib stores it unchecked; "None" when unset)
                orientation=cast(Literal["vertical", "horizontal"], _str(c["orientation"])),
            )
        )
    for loc, title in d["titles"].items():
        if title:
            ax.set_title(_str(title), loc=_str(loc))
    ax.set_xlabel(_str(d["xlabel"]))
    ax.set_ylabel(_str(d["ylabel"]))
    ax.set_xscale(_str(d["xscale"]))
    ax.set_yscale(_str(d["yscale"]))
    for axis, name in ((ax.xaxis, "xticks"), (ax.yaxis, "yticks")):
        ticks = d[name]
        axis.set_ticks([_unfloat(t) for t in _list(ticks["ticks"])], labels=[_str(s) for s in _list(ticks["labels"])])
    ax.set_xlim(*(_unfloat(v) for v in _list(d["xlim"], 2)))
    ax.set_ylim(*(_unfloat(v) for v in _list(d["ylim"], 2)))
    if d["legend"] is not None:
        from matplotlib.lines import Line2D

        texts = [_str(t) for t in _list(d["legend"]["texts"])]
        ax.legend([Line2D([], []) for _ in texts], texts, title=_str(d["legend"]["title"]) or None)
    return ax


_CANDIDATE_NUMBER = "_june_candidate_number"
"""The attribute of a rebuilt Figure that holds the candidate's figure number (`open_figures` reads it)."""


def _unfigure(d: object, recurse: Recurse, depth: int) -> Any:
    import matplotlib.pyplot as plt

    if type(d) is not dict:
        raise WireError("malformed figure")
    figure = plt.figure(figsize=tuple(_num(v) for v in _list(d["size"], 2)), dpi=_num(d["dpi"]))
    described = [a for a in _list(d["axes"]) if type(a) is dict]
    axes = [_unaxes(figure, a, recurse, depth + 1) for a in described]
    for ax, a in zip(axes, described, strict=True):
        if a["colorbar"] is not None:
            j, k, ylabel, xlabel = _list(a["colorbar"], 4)
            colorbar = figure.colorbar(axes[_int(j)].collections[_int(k)], cax=ax)
            ax.set_ylabel(_str(ylabel))
            ax.set_xlabel(_str(xlabel))
            x0, y0, width, height = (_num(v) for v in _list(a["position"], 4))
            colorbar.ax.set_position((x0, y0, width, height))
    if d["suptitle"] is not None:
        figure.suptitle(_str(d["suptitle"]))
    if type(d.get("number")) is int:
        setattr(figure, _CANDIDATE_NUMBER, d["number"])  # see `open_figures`
    return figure


def open_figures() -> list[int]:
    """Judge side: the candidate's figure numbers whose rebuilt figures the tests have not closed; the
    candidate closes the rest before its next call (`close_figures`), as `plt.close()` would have."""
    import sys

    if "matplotlib.pyplot" not in sys.modules:
        return []
    from matplotlib._pylab_helpers import Gcf  # pyplot's registry, read without making a figure current

    numbers = [getattr(manager.canvas.figure, _CANDIDATE_NUMBER, None) for manager in Gcf.get_all_fig_managers()]
    return [n for n in numbers if type(n) is int]


def close_figures(keep: object) -> None:
    """Candidate side: close every pyplot figure whose number is not in `keep`."""
    import sys

    if "matplotlib.pyplot" not in sys.modules or type(keep) is not list:
        return
    plt = sys.modules["matplotlib.pyplot"]
    for number in plt.get_fignums():
        if number not in keep:
            plt.close(number)


def _unmodule(rest: list, recurse: Recurse, depth: int) -> Any:
    import importlib

    name = _str(rest[0])
    if name not in _MODULES:
        raise WireError(f"the module {name} cannot cross")
    if rest[1] is not None:
        _unfigure(rest[1], recurse, depth + 1)  # the current figure, as the solution left it
    return importlib.import_module(name)


def _unestimator(rest: list, recurse: Recurse, depth: int) -> Any:
    import sys

    module, qualname = _str(rest[0]), _str(rest[1])
    found: Any = sys.modules.get(module) if module.split(".")[0] == "sklearn" else None
    for part in qualname.split(".") if found is not None else []:
        found = getattr(found, part, None) if part.isidentifier() else None
    base = sys.modules.get("sklearn.base")
    if not (isinstance(found, type) and base is not None and issubclass(found, base.BaseEstimator)):
        raise WireError(f"the estimator {module}.{qualname} cannot cross")
    params = recurse(rest[2], depth + 1)
    fitted = recurse(rest[3], depth + 1)
    if type(params) is not dict or type(fitted) is not dict or not all(type(k) is str for k in [*params, *fitted]):
        raise WireError("malformed estimator")
    estimator = found(**params)
    for key, value in fitted.items():
        if not key.endswith("_") or key.startswith("_"):
            raise WireError("malformed estimator")
        setattr(estimator, key, value)
    return estimator


def _ungrid(rest: list, recurse: Recurse, depth: int) -> Any:
    import numpy as np
    import seaborn as sns

    kinds = {"FacetGrid": sns.FacetGrid, "PairGrid": sns.PairGrid, "JointGrid": sns.JointGrid}
    kind = kinds.get(_str(rest[0]))
    if kind is None:
        raise WireError(f"a seaborn {rest[0]} cannot cross")
    figure = _unfigure(rest[1], recurse, depth + 1)
    where = [_int(i) for i in _list(rest[3])]
    axes = np.array([figure.axes[i] if i >= 0 else None for i in where], dtype=object)
    grid = kind.__new__(kind)  # the grid's own attributes: its figure and Axes, nothing the solution made
    grid._figure = figure
    grid.axes = axes.reshape(tuple(_int(n) for n in _list(rest[2])))
    return grid
