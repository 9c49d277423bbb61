"""The dashboard's charts as Vega-Lite specs built with altair: pure functions, DataFrames in, altair Charts out.

The same functions serve the page (``chart.to_dict()``, rendered by the vendored vega-embed)
and notebooks (an altair Chart displays itself). The tables are zonechief.dashboard's
(``DashboardTables``); any DataFrame with the named columns will do. Data goes inline
(``values``), so a spec is self-contained and loads nothing. Labels: Chinese first, English beside.
"""
from __future__ import annotations

import math

import altair as alt
import pandas as pd

from gis.gini import lorenz

TOP_CATEGORIES = 8  # the rest stacked as one "其他 Other", so the legend stays readable
WIDTH = 380
OTHER = "其他 Other"

__all__ = ["weekly_chart", "backlog_chart", "time_to_fix_chart", "satisfaction_chart", "workload_chart",
           "dashboard_charts", "chart_spec", "TOP_CATEGORIES"]


def _records(df: pd.DataFrame) -> pd.DataFrame:
    """The chart's data: a plain DataFrame (altair writes it inline, NaN as null)."""
    return df.reset_index(drop=True)


def chart_spec(chart: alt.TopLevelMixin) -> dict:
    """The Vega-Lite spec of a chart with its data inline, for the page (not validated: the tests validate)."""
    with alt.data_transformers.disable_max_rows():  # the tables are aggregates, not raw reports
        return chart.to_dict(validate=False)


def weekly_chart(weekly: pd.DataFrame, top: int = TOP_CATEGORIES) -> alt.Chart:
    """Reports per week, stacked by category (columns week, category, category_name, reports); the `top` largest
    categories by name, the others as one."""
    w = weekly.copy()
    label = (w["category"] + " " + w["category_name"].fillna("")).str.strip() if len(w) else w["category"]
    keep = set(w.groupby(label)["reports"].sum().nlargest(top).index) if len(w) else set()
    w["类别 category"] = [x if x in keep else OTHER for x in label]
    w = w.groupby(["week", "类别 category"], as_index=False)["reports"].sum()
    return alt.Chart(_records(w), title="每周报告（按类别）Reports per week by category").mark_bar().encode(
        x=alt.X("week:O", title="周 Week (Monday)", axis=alt.Axis(labelAngle=-60, labelOverlap=True)),
        y=alt.Y("sum(reports):Q", title="报告 Reports"),
        color=alt.Color("类别 category:N", legend=alt.Legend(orient="bottom", columns=2, labelLimit=180)),
        tooltip=[alt.Tooltip("week:O", title="周 Week"), "类别 category:N",
                 alt.Tooltip("sum(reports):Q", title="报告 Reports")],
    ).properties(width=WIDTH, height=200)


def _chief_label(chiefs: pd.DataFrame) -> pd.Series:
    return (chiefs.index.astype(str) + " " + chiefs["name"].fillna("").astype(str)).str.strip()


def backlog_chart(chiefs: pd.DataFrame) -> alt.Chart:
    """Open reports (backlog) per chief (index chief_id; columns name, open, reports)."""
    d = pd.DataFrame({"片长 chief": _chief_label(chiefs), "open": chiefs["open"].to_numpy(),
                      "reports": chiefs["reports"].to_numpy()})
    return alt.Chart(_records(d), title="积压（未办结）Backlog: open reports per chief").mark_bar().encode(
        y=alt.Y("片长 chief:N", sort="-x", title=None),
        x=alt.X("open:Q", title="未办结 Open"),
        tooltip=["片长 chief:N", alt.Tooltip("open:Q", title="未办结 Open"),
                 alt.Tooltip("reports:Q", title="报告 Reports")],
    ).properties(width=WIDTH)


def time_to_fix_chart(chiefs: pd.DataFrame) -> alt.Chart:
    """Median hours to fix per chief with its bootstrap 95 % interval (columns name, n_fixed, median_h, low_h, high_h)."""
    d = pd.DataFrame({"片长 chief": _chief_label(chiefs), "n": chiefs["n_fixed"].to_numpy(),
                      "median_h": chiefs["median_h"].to_numpy(), "low_h": chiefs["low_h"].to_numpy(),
                      "high_h": chiefs["high_h"].to_numpy()})
    d = d[d["n"] > 0]
    base = alt.Chart(_records(d))
    y = alt.Y("片长 chief:N", sort=alt.EncodingSortField("median_h", order="descending"), title=None)
    tip = ["片长 chief:N", alt.Tooltip("median_h:Q", title="中位数 Median h", format=".1f"),
           alt.Tooltip("low_h:Q", title="下限 Low h", format=".1f"), alt.Tooltip("high_h:Q", title="上限 High h", format=".1f"),
           alt.Tooltip("n:Q", title="已办结 Fixed")]
    rule = base.mark_rule(color="#888").encode(y=y, x=alt.X("low_h:Q", title="小时 Hours"), x2="high_h:Q", tooltip=tip)
    point = base.mark_point(filled=True, color="#d62f27").encode(y=y, x="median_h:Q", tooltip=tip)
    return (rule + point).properties(title="办结时长中位数（95% 区间）Time to fix: median hours, 95% interval",
                                     width=WIDTH)


def satisfaction_chart(sat: pd.DataFrame) -> alt.Chart:
    """Share of answers "已解决 fixed" per zone (index zone_id; columns zone_name, answered, fixed_rate, …)."""
    d = pd.DataFrame({"片区 zone": (sat.index.astype(str) + " " + sat["zone_name"].fillna("").astype(str)).str.strip(),
                      "fixed_rate": sat["fixed_rate"].to_numpy(), "answered": sat["answered"].to_numpy(),
                      "median_rating": sat["median_rating"].to_numpy()})
    d = d[d["answered"] > 0]
    return alt.Chart(_records(d), title="满意度：已解决占比 Satisfaction: share answered 'fixed'").mark_bar().encode(
        y=alt.Y("片区 zone:N", sort="-x", title=None),
        x=alt.X("fixed_rate:Q", title="已解决 Fixed (share of answers)", axis=alt.Axis(format="%"),
                scale=alt.Scale(domain=[0, 1])),
        tooltip=["片区 zone:N", alt.Tooltip("fixed_rate:Q", title="已解决 Fixed", format=".0%"),
                 alt.Tooltip("answered:Q", title="回答 Answers"),
                 alt.Tooltip("median_rating:Q", title="评分中位数 Median rating")],
    ).properties(width=WIDTH)


def workload_chart(workload: pd.DataFrame, gini: float) -> alt.Chart:
    """The Lorenz curve of reports across chiefs (column reports), the line of equality, and the Gini in the title."""
    curve = lorenz(workload["reports"].to_numpy()) if len(workload) else lorenz([])
    g = "—" if gini is None or (isinstance(gini, float) and math.isnan(gini)) else f"{gini:.3f}"
    title = f"工作量均衡：基尼系数 {g} Workload balance across chiefs: Gini {g}"
    line = alt.Chart(_records(curve)).mark_line(point=True).encode(
        x=alt.X("share_people:Q", title="片长累计占比 Share of chiefs", axis=alt.Axis(format="%")),
        y=alt.Y("share_load:Q", title="报告累计占比 Share of reports", axis=alt.Axis(format="%")),
        tooltip=[alt.Tooltip("share_people:Q", format=".0%"), alt.Tooltip("share_load:Q", format=".0%")])
    equal = alt.Chart(_records(pd.DataFrame({"share_people": [0.0, 1.0], "share_load": [0.0, 1.0]}))).mark_line(
        strokeDash=[4, 4], color="#888").encode(x="share_people:Q", y="share_load:Q")
    return (equal + line).properties(title=title, width=WIDTH, height=WIDTH * 0.75)


def dashboard_charts(tables) -> dict[str, alt.Chart]:
    """Every chart of the dashboard from a zonechief.dashboard.DashboardTables, by name."""
    return {"weekly": weekly_chart(tables.weekly), "backlog": backlog_chart(tables.chiefs),
            "time_to_fix": time_to_fix_chart(tables.chiefs), "satisfaction": satisfaction_chart(tables.satisfaction),
            "workload": workload_chart(tables.workload, tables.gini)}
