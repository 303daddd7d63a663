"""What crosses from a DataFrameBench solution to the judge (`benchmarks.replica`): genuine pandas,
numpy and matplotlib objects with the described data and dtypes, and descriptions the judge refuses."""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from benchmarks import judge, replica


def cross(value: object) -> object:
    return judge.decode(json.loads(json.dumps(judge.encode(value, 0, replica))), 0, replica)


def test_frames_series_and_arrays_keep_their_values_and_dtypes() -> None:
    frame = pd.DataFrame(
        {
            "i": [1, 2, 3],
            "f": [0.5, np.nan, 2.0],
            "s": ["a", None, "c"],
            "b": [True, False, True],
            "t": pd.to_datetime(["2021-01-01", None, "2021-03-01"]).tz_localize("Europe/Paris"),
            "c": pd.Categorical(["x", "y", "x"], ordered=True),
            "n": pd.array([1, None, 3], dtype="Int64"),
        },
        index=pd.MultiIndex.from_tuples([("a", 1), ("a", 2), ("b", 1)], names=["k", "j"]),
    )
    back = cross(frame)
    assert type(back) is pd.DataFrame and back.dtypes.to_dict() == frame.dtypes.to_dict()
    pd.testing.assert_frame_equal(back, frame)
    series = pd.Series([1.5, 2.5], index=pd.date_range("2020-01-01", periods=2, freq="D"), name=("a", 1))
    pd.testing.assert_series_equal(cross(series), series)
    assert cross(series).index.freq == series.index.freq
    for value in (
        np.float32(1.25),
        np.int64(-3),
        np.bool_(True),
        np.datetime64("2021-01-01", "D"),
        pd.Timestamp("2021-01-01 12:00", tz="UTC"),
        pd.Timestamp(1764927000123456789),
        pd.Timedelta("3h"),
        pd.NaT,
    ):
        back = cross(value)
        assert type(back) is type(value) and (back == value or value is pd.NaT), (value, back)
    array = np.arange(12, dtype=">i4").reshape(3, 4)
    assert cross(array).dtype == array.dtype and (cross(array) == array).all()
    masked = np.ma.MaskedArray([1.0, 2.0], mask=[False, True])
    assert (np.ma.getmaskarray(cross(masked)) == [False, True]).all()


def test_a_plot_arrives_as_a_genuine_axes_with_what_tests_read() -> None:
    fig, (ax, other) = plt.subplots(1, 2)
    ax.bar(["A", "B"], [3, 5], label="counts")
    ax.plot([0, 1], [1, 2], color="red", label="line")
    ax.set(title="Title", xlabel="X", ylabel="Y")
    ax.legend()
    mesh = other.pcolormesh(np.arange(6.0).reshape(2, 3), cmap="YlGnBu")
    fig.colorbar(mesh, ax=other)
    legend = [t.get_text() for t in ax.get_legend().get_texts()]
    replica.new_message()
    back, back_other = cross((ax, other))
    plt.close(fig)
    assert type(back) is type(ax) and back.figure is back_other.figure and len(back.figure.axes) == 3
    assert (back.get_title(), back.get_xlabel(), back.get_ylabel()) == ("Title", "X", "Y")
    assert [p.get_height() for p in back.patches] == [3, 5] and len(back.containers[0]) == 2
    assert [t.get_text() for t in back.get_xticklabels()] == ["A", "B"]
    assert list(back.lines[0].get_ydata()) == [1, 2] and back.lines[0].get_label() == "line"
    assert [t.get_text() for t in back.get_legend().get_texts()] == legend and sorted(legend) == ["counts", "line"]
    assert back_other.collections[0].cmap.name == "YlGnBu" and back_other.collections[0].colorbar is not None
    assert list(back_other.collections[0].get_array().ravel()) == list(np.arange(6.0))
    plt.close("all")


@pytest.mark.parametrize(
    "forged",
    [
        ["nA", "|O", [1], "00" * 8],  # an object array from raw bytes: pointers
        ["nA", "[('a', '<i4')]", [1], "00" * 4],  # a structured dtype
        ["pD", [], ["pR", 0, 3, 1, ["n"]], ["pR", 0, 0, 1, ["n"]]],  # more columns than arrays
        ["aM", "object", ["nA", "<i8", [1], "00" * 8], ["nA", "|b1", [1], "00"]],
        ["kE", "os", "system", ["d", []], ["d", []]],  # not an estimator
        ["mP", "os", None],  # not a library module the grader carries
        ["sG", "Foo", {}, [1], [0]],
        ["zz"],
    ],
)
def test_forged_descriptions_are_refused(forged: list) -> None:
    with pytest.raises(judge.WireError):
        judge.decode(forged, 0, replica)


def test_solution_made_types_do_not_cross() -> None:
    class Frame(pd.DataFrame):
        def __eq__(self, other: object) -> bool:  # type: ignore[override]
            return True

    for made in (object(), Frame({"a": [1]}), [np.float64(1), Frame()]):
        with pytest.raises(replica.WireError):
            judge.encode(made, 0, replica)
