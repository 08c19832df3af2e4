"""Hierarchy builders and ARX hierarchy files.

Builders are checked row by row on small inputs; the loader on ARX's own
hierarchies for the adult and test2 tables in ../shared/data/adult, and the
TAC builder on the Osmocom TAC database in ../shared/data/tacdb (both skipped
when that folder is absent).
"""

from __future__ import annotations

import csv

import pytest
from conftest import SHARED_DATA

from core.kanon.builders import (
    datetimes,
    intervals,
    ip_prefixes,
    prefix_mask,
    region_tree,
    tac_model_brand,
    to_arx_csv,
    tree,
)
from core.kanon.hierarchy import Hierarchy, HierarchyError, find_hierarchies, load_arx_hierarchy
from stages.reference import parse_tac_csv

ADULT = SHARED_DATA / "adult"
TACDB = SHARED_DATA / "tacdb" / "tacdb.csv"
needs_adult = pytest.mark.skipif(not ADULT.is_dir(), reason="../shared/data/adult not present")
needs_tacdb = pytest.mark.skipif(not TACDB.is_file(), reason="../shared/data/tacdb not present")


def assert_error_hides(exc: pytest.ExceptionInfo, column: str, count: int, *values: str) -> None:
    """The message names the column and the count of bad values, never a value."""
    message = str(exc.value)
    assert f"'{column}'" in message
    assert f"{count} value(s)" in message
    for value in values:
        assert value not in message


# --- intervals ---------------------------------------------------------------------------------------


def test_intervals_nest_from_the_floored_minimum():
    built = intervals("age", ["29", "22", "52", "47"], widths=(5, 10, 20))
    assert built.rows == (
        ("29", "[25, 30[", "[20, 30[", "[20, 40[", "*"),
        ("22", "[20, 25[", "[20, 30[", "[20, 40[", "*"),
        ("52", "[50, 55[", "[50, 60[", "[40, 60[", "*"),
        ("47", "[45, 50[", "[40, 50[", "[40, 60[", "*"),
    )


def test_intervals_align_at_an_explicit_lower_bound_and_keep_decimals():
    built = intervals("amount", ["2", "4.5", "12.25", "2"], widths=(2.5, 5), lower=0.5)
    assert built.rows == (
        ("2", "[0.5, 3[", "[0.5, 5.5[", "*"),
        ("4.5", "[3, 5.5[", "[0.5, 5.5[", "*"),
        ("12.25", "[10.5, 13[", "[10.5, 15.5[", "*"),
    )


def test_intervals_reject_non_numbers_by_count():
    with pytest.raises(HierarchyError) as exc:
        intervals("age", ["29", "twenty", "NaN", "", "31"])
    assert_error_hides(exc, "age", 3, "twenty")


@pytest.mark.parametrize("widths", [(5, 12), (10, 5), (10, 10), (), (0,)])
def test_intervals_need_growing_multiples(widths):
    with pytest.raises(HierarchyError, match="'age'"):
        intervals("age", ["29"], widths=widths)


def test_intervals_reject_values_below_the_lower_bound():
    with pytest.raises(HierarchyError) as exc:
        intervals("age", ["-3", "17", "-1"], widths=(10,), lower=0)
    assert_error_hides(exc, "age", 2, "-3", "-1")


# --- dates and times ---------------------------------------------------------------------------------


def test_datetimes_default_levels_end_in_months():
    built = datetimes("seen_at", ["2026-11-01T13:05:00", "2026-10-31 23:59", "2026-11-02T06:00+09:00"])
    assert built.rows == (
        ("2026-11-01T13:05:00", "2026-11-01T13", "2026-11-01 afternoon", "2026-11-01", "2026-11", "*"),
        ("2026-10-31 23:59", "2026-10-31T23", "2026-10-31 evening", "2026-10-31", "2026-10", "*"),
        ("2026-11-02T06:00+09:00", "2026-11-02T06", "2026-11-02 morning", "2026-11-02", "2026-11", "*"),
    )


def test_datetimes_parts_of_day_follow_the_issue_boundaries():
    hours = {"05": "night", "06": "morning", "11": "morning", "12": "afternoon", "17": "afternoon"}
    hours |= {"18": "evening", "23": "evening", "00": "night"}
    built = datetimes("t", [f"2026-11-01T{h}:30" for h in hours], levels=("part_of_day",))
    assert built.mapping(1) == {f"2026-11-01T{h}:30": f"2026-11-01 {part}" for h, part in hours.items()}


def test_datetimes_iso_weeks_cross_months_and_years():
    days = ["2026-10-31", "2026-11-01", "2026-11-02", "2026-12-31", "2027-01-01"]
    values = [f"{day}T10:00" for day in days]
    built = datetimes("t", values, levels=("day", "week"))
    assert built.mapping(2) == {
        "2026-10-31T10:00": "2026-W44",
        "2026-11-01T10:00": "2026-W44",
        "2026-11-02T10:00": "2026-W45",
        "2026-12-31T10:00": "2026-W53",
        "2027-01-01T10:00": "2026-W53",
    }


def test_datetimes_refuse_week_with_month_before_seeing_data():
    # Data inside one month would pass the tree check; the rule must not depend on it.
    with pytest.raises(HierarchyError, match="'week' and 'month'"):
        datetimes("t", ["2026-11-10T10:00"], levels=("hour", "part_of_day", "day", "week", "month"))


def test_week_over_month_is_not_a_tree_for_the_constructor_either():
    rows = (("2026-10-31", "2026-W44", "2026-10", "*"), ("2026-11-01", "2026-W44", "2026-11", "*"))
    with pytest.raises(HierarchyError, match="not a tree"):
        Hierarchy("t", rows)


@pytest.mark.parametrize("levels", [("day", "hour"), ("hour", "hour"), ("minute",), ()])
def test_datetimes_need_known_levels_from_fine_to_coarse(levels):
    with pytest.raises(HierarchyError, match="'t'"):
        datetimes("t", ["2026-11-01T13:00"], levels=levels)


def test_datetimes_reject_non_timestamps_by_count():
    with pytest.raises(HierarchyError) as exc:
        datetimes("seen_at", ["2026-11-01T13:00", "yesterday", "2026-13-01"])
    assert_error_hides(exc, "seen_at", 2, "yesterday", "2026-13-01")


# --- prefix masking ----------------------------------------------------------------------------------


@needs_adult
def test_prefix_mask_matches_arx_zipcode_hierarchy_below_the_top():
    arx = load_arx_hierarchy(ADULT / "test2_hierarchy_ZIPCode.csv")
    built = prefix_mask("ZIPCode", arx.values, keep=(4, 3, 2, 1))
    # ARX's file tops out at `*****`; builders use a single `*` for every length.
    assert [row[:-1] for row in built.rows] == [row[:-1] for row in arx.rows]
    assert set(built.mapping(built.height).values()) == {"*"}


def test_prefix_mask_keeps_length_and_leaves_short_values():
    built = prefix_mask("phone_prefix", ["+8210", "+822", "+82"], keep=(4, 2))
    assert built.rows == (
        ("+8210", "+821*", "+8***", "*"),
        ("+822", "+822", "+8**", "*"),
        ("+82", "+82", "+8*", "*"),
    )


@pytest.mark.parametrize("keep", [(2, 3), (2, 2), (), (1, -1)])
def test_prefix_mask_needs_decreasing_lengths(keep):
    with pytest.raises(HierarchyError, match="'zip'"):
        prefix_mask("zip", ["47677"], keep=keep)


# --- IP prefixes -------------------------------------------------------------------------------------


def test_ip_prefixes_give_both_families_the_same_levels():
    built = ip_prefixes("src_ip", ["10.1.2.3", "2001:db8:1:2::1", "10.1.9.9"])
    assert built.rows == (
        ("10.1.2.3", "10.1.2.0/24", "10.1.0.0/16", "10.0.0.0/8", "*"),
        ("2001:db8:1:2::1", "2001:db8:1::/48", "2001:db8::/32", "2001::/16", "*"),
        ("10.1.9.9", "10.1.9.0/24", "10.1.0.0/16", "10.0.0.0/8", "*"),
    )


def test_ip_prefixes_reject_bad_addresses_by_count():
    with pytest.raises(HierarchyError) as exc:
        ip_prefixes("src_ip", ["10.1.2.3", "10.1.2.300", "host.example", "-"])
    assert_error_hides(exc, "src_ip", 3, "10.1.2.300", "host.example")


@pytest.mark.parametrize(("v4", "v6"), [((24, 16), (48,)), ((16, 24), (48, 32)), ((33,), (48,))])
def test_ip_prefixes_need_matching_decreasing_levels(v4, v6):
    with pytest.raises(HierarchyError, match="'ip'"):
        ip_prefixes("ip", ["10.1.2.3"], ipv4_bits=v4, ipv6_bits=v6)


# --- trees -------------------------------------------------------------------------------------------


def test_tree_adds_the_top():
    built = tree("cell", {"cell-17": ("site-3", "Seoul"), "cell-18": ("site-3", "Seoul")})
    assert built.rows == (("cell-17", "site-3", "Seoul", "*"), ("cell-18", "site-3", "Seoul", "*"))


def test_tree_rejects_a_site_in_two_regions():
    with pytest.raises(HierarchyError, match="not a tree"):
        tree("cell", {"c1": ("s1", "Seoul"), "c2": ("s1", "Busan")})


def test_tree_rejects_uneven_depths():
    with pytest.raises(HierarchyError, match="same number of ancestors"):
        tree("cell", {"c1": ("s1", "Seoul"), "c2": ("Busan",)})


def test_region_tree_puts_missing_cells_and_sites_under_unknown():
    built = region_tree(
        "cell_id",
        ["c1", "c2", "c3", "c1"],
        cell_sites={"c1": "s1", "c2": "s9"},
        site_regions={"s1": "Seoul"},
    )
    assert built.rows == (
        ("c1", "s1", "Seoul", "*"),
        ("c2", "s9", "unknown region", "*"),
        ("c3", "unknown site", "unknown region", "*"),
    )


def test_tac_model_brand_qualifies_models_and_pads_lost_zeros():
    table = {"35675904": ("Oppo", "N1"), "35315300": ("Neonode", "N1"), "1130000": ("Apple", "iPhone 4")}
    built = tac_model_brand("imei", ["35675904", "35315300", "011300001234567", "99999999"], table)
    assert built.rows == (
        ("35675904", "Oppo N1", "Oppo", "*"),
        ("35315300", "Neonode N1", "Neonode", "*"),
        ("011300001234567", "Apple iPhone 4", "Apple", "*"),
        ("99999999", "unknown model", "unknown brand", "*"),
    )


@needs_tacdb
def test_tac_model_brand_is_a_tree_over_the_whole_osmocom_database():
    frame = parse_tac_csv(TACDB.read_bytes())
    table: dict[str, tuple[str, str]] = {}
    for tac, brand, model in frame.itertuples(index=False):
        table.setdefault(tac, (brand, model))
    built = tac_model_brand("tac", list(table), table)
    assert built.height == 3
    assert len(built.rows) == len(table) > 25_000
    assert built.generalize("35675904", 1) == "Oppo N1"
    assert built.generalize("01130000", 2) == "Apple"


# --- ARX files ---------------------------------------------------------------------------------------


def test_arx_csv_round_trip_keeps_separators_and_quotes(tmp_path):
    built = tree("cell", {"c;1": ('site "3"', "Seoul; Jung-gu"), "c2": ("s4", "Busan")})
    path = to_arx_csv(built, tmp_path / "cells_hierarchy_cell.csv")
    assert load_arx_hierarchy(path) == built


def test_arx_csv_round_trip_of_an_interval_hierarchy(tmp_path):
    built = intervals("age", [str(a) for a in range(17, 91)], widths=(5, 10, 20))
    path = to_arx_csv(built, tmp_path / "adult_hierarchy_age.csv", sep=",")
    assert load_arx_hierarchy(path, sep=",") == built


ADULT_HEIGHTS = {
    "sex": 1,
    "age": 4,
    "race": 1,
    "marital-status": 2,
    "education": 3,
    "native-country": 2,
    "workclass": 2,
    "occupation": 2,
    "salary-class": 1,
}
TEST2_HEIGHTS = {"ZIPCode": 5, "Age": 2, "Disease": 3}


def column_values(path, sep=";") -> dict[str, set[str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle, delimiter=sep))
    return {column: {row[column] for row in rows} for column in rows[0]}


@needs_adult
@pytest.mark.parametrize(
    ("dataset", "heights"), [("adult", ADULT_HEIGHTS), ("test2", TEST2_HEIGHTS)], ids=["adult", "test2"]
)
def test_arx_hierarchies_load_with_their_heights_and_cover_the_data(dataset, heights):
    loaded = find_hierarchies(ADULT, heights)
    assert len(sorted(ADULT.glob(f"{dataset}_hierarchy_*.csv"))) == len(heights)
    assert {column: h.height for column, h in loaded.items()} == heights
    data = column_values(ADULT / f"{dataset}.csv")
    for column, hierarchy in loaded.items():
        assert data[column] <= set(hierarchy.values), column
        # One group at the top (ARX's own tops are `*`, `*****` or a disease category).
        assert len(hierarchy.leaves_under(hierarchy.height)) == 1, column
