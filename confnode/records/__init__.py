"""Call records without personal data, and the monthly statistics derived from them."""

from confnode.records.call_records import CallLegRecord, MeetingRecord
from confnode.records.statistics import (
    MeetingClass,
    MonthStatistics,
    OrgMonthStatistics,
    RegionMonthStatistics,
    classify,
    daily_peak_concurrency,
    monthly_statistics,
    to_csv,
    to_dict,
)

__all__ = [
    "CallLegRecord",
    "MeetingClass",
    "MeetingRecord",
    "MonthStatistics",
    "OrgMonthStatistics",
    "RegionMonthStatistics",
    "classify",
    "daily_peak_concurrency",
    "monthly_statistics",
    "to_csv",
    "to_dict",
]
