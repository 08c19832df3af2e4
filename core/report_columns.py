"""The columns a report may group by beyond a source's own, and where each comes from.

A report input (transforms.report_inputs, and its pandas twin in
kr_reports.analysis) gives event rows the hour of the event and the
subscriber's profile attributes, and derives a few columns from protected
ones. The policy judges a derived column as the column it comes from
(core.policy.derived_origin), so each origin is stated here, once:

- `hour`: the hour of an event's generalized time;
- `category`: a visited domain's category, from the shipped reference table;
- `cell_area`: a cell's area, the first four characters of its id (C + region
  code + the cell number's hundreds digit); calls with no cell (roaming) have none;
- `addon_<name>`: 1 when the subscriber has add-on <name>, else 0.
"""

from __future__ import annotations

HOUR = "hour"
CATEGORY = "category"
CELL_AREA = "cell_area"
DOMAIN = "domain"
CELL_ID = "cell_id"
ADDONS = "addons"  # a subscriber's add-ons, ';'-joined
ADDON_PREFIX = "addon_"  # addon_<name>: 1 when the subscriber has that add-on, else 0

EVENT_HOUR = {"network_flows": "start_hour", "call_records": "start_hour", "web_visits": "visit_hour"}
PROFILE_ATTRIBUTES = ("region", "age_band", "plan")  # joined onto event rows from the subscriber
CELL_AREA_LENGTH = 4
DOMAIN_CATEGORIES = "domain_categories"  # the reference frame `category` needs

DERIVED_REPORT_COLUMNS: dict[str, tuple[str, ...]] = {
    HOUR: tuple(dict.fromkeys(EVENT_HOUR.values())),
    CATEGORY: (DOMAIN,),
    CELL_AREA: (CELL_ID,),
}
