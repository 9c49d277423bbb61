"""Where the next station goes: MCLP, p-median and LSCP over report demand, solved by HiGHS through PuLP.

>>> dem = demand_grid(x, y, cell_m=250)                          # doctest: +SKIP
>>> fac = Facilities.combine(existing, grid_candidates(area, 250))  # doctest: +SKIP
>>> res = solve("mclp", dem, fac, euclidean(dem, fac), add=2, radius=1000)  # doctest: +SKIP

Coordinates are metres in EPSG:4547 (CGCS2000 Gauss-Krüger CM 114E). Demand is
report points counted per square cell whose edges lie on multiples of the cell
size (the lines of gis.hotspots.grid): cell id ``r<row>c<col>`` with absolute
row = floor(northing / cell), col = floor(easting / cell); its point the cell
centre, its weight the report count. Facilities are the existing
stations (kept open: spopt's ``predefined_facilities_arr``) then the candidates.

Costs are a demand × facility matrix: straight-line metres (`euclidean`) or a
travel-time matrix (`travel_times`: CSV rows origin, destination, seconds, where
origin is a demand cell id and destination a facility id; a missing pair is
unreachable). The radius is in the cost's unit.

Models (spopt, HiGHS via ``pulp.HiGHS``):

- ``mclp``: add `add` stations to the existing ones, maximising demand within `radius`;
- ``pmedian``: add `add` stations minimising the weighted mean cost of demand to its nearest station;
  spopt's PMedian has a variable per demand × facility pair (6 million on the shipped towns at 250 m),
  so above `DENSE_PAIRS` pairs an exact sparse formulation is solved instead (see `_pmedian_sparse`);
- ``lscp``: the fewest stations (existing ones included) putting all demand within `radius`.

HiGHS's status is read from the solver itself: PuLP reports a time-limited incumbent as
"Optimal", which it is not. `SitingResult.proven_optimal` is true only when HiGHS proved it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import shapely

from gis.errors import ZonechiefError

MODELS = ("mclp", "pmedian", "lscp")
DENSE_PAIRS = 250_000  # above this many demand × facility pairs, models are built sparse (see solve)
MAX_SPARSE_PAIRS = 400_000  # sparse p-median: stop widening (not proven) past this many assignment variables
REL_GAP = 1e-6  # HiGHS's mip_rel_gap: "optimal" means within this of the best bound
UNREACHABLE_PENALTY = 10.0  # p-median: an unreachable pair costs this × the largest finite cost


class SitingInputError(ZonechiefError, ValueError):
    """A siting question that cannot be asked of these data (k too large, radius ≤ 0, no demand, bad matrix...)."""


# ------------------------------------------------------------------ inputs
@dataclass(frozen=True)
class Demand:
    """Weighted demand points (EPSG:4547 metres) with ids."""

    ids: np.ndarray
    x: np.ndarray
    y: np.ndarray
    weight: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(frozen=True)
class Facilities:
    """Existing stations and candidate sites (EPSG:4547 metres); `existing` marks the ones kept open."""

    ids: np.ndarray
    x: np.ndarray
    y: np.ndarray
    existing: np.ndarray
    names: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ids)

    @classmethod
    def make(cls, ids, x, y, existing: bool = False, names=None) -> "Facilities":
        """Facilities from arrays; all existing or all candidates."""
        ids = np.asarray(ids, dtype=object).astype(str)
        n = len(ids)
        return cls(ids, np.asarray(x, dtype="f8"), np.asarray(y, dtype="f8"), np.full(n, bool(existing)),
                   np.asarray(names if names is not None else ids, dtype=object))

    @classmethod
    def combine(cls, *parts: "Facilities") -> "Facilities":
        """Concatenate, existing ones first; a later duplicate id is dropped."""
        parts = tuple(sorted(parts, key=lambda p: not (len(p) and bool(p.existing.all()))))
        ids = np.concatenate([p.ids for p in parts]) if parts else np.zeros(0, dtype=object)
        cat = lambda a: np.concatenate([getattr(p, a) for p in parts])  # noqa: E731
        f = cls(ids, cat("x"), cat("y"), cat("existing"),
                np.concatenate([p.names if p.names is not None else p.ids for p in parts]))
        _, first = np.unique(f.ids, return_index=True)
        keep = np.zeros(len(f), bool)
        keep[first] = True
        return f.take(np.flatnonzero(keep))

    def take(self, idx) -> "Facilities":
        """The facilities at positions `idx` (in that order)."""
        idx = np.asarray(idx, dtype=np.int64)
        return Facilities(self.ids[idx], self.x[idx], self.y[idx], self.existing[idx],
                          None if self.names is None else self.names[idx])


def demand_grid(x, y, cell_m: float = 250.0, weights=None) -> Demand:
    """Points (EPSG:4547) counted per `cell_m` cell; id r<row>c<col>, row = floor(y / cell_m), col = floor(x / cell_m)."""
    if not cell_m > 0:
        raise SitingInputError(f"grid cell must be positive, got {cell_m} m")
    x = np.asarray(x, dtype="f8")
    y = np.asarray(y, dtype="f8")
    w = np.ones(len(x)) if weights is None else np.asarray(weights, dtype="f8")
    ok = np.isfinite(x) & np.isfinite(y) & (w > 0)
    col = np.floor(x[ok] / cell_m).astype(np.int64)
    row = np.floor(y[ok] / cell_m).astype(np.int64)
    if not len(col):
        e = np.zeros(0)
        return Demand(np.zeros(0, dtype=object), e, e, e)
    s = pd.Series(w[ok]).groupby([row, col], sort=True).sum()
    r = s.index.get_level_values(0).to_numpy()
    c = s.index.get_level_values(1).to_numpy()
    ids = np.array([f"r{a}c{b}" for a, b in zip(r, c)], dtype=object)
    return Demand(ids, (c + 0.5) * cell_m, (r + 0.5) * cell_m, s.to_numpy(dtype="f8"))


def grid_candidates(area, cell_m: float = 250.0) -> Facilities:
    """Centres of the `cell_m` cells (same lattice as demand_grid) that lie inside `area` (a shapely geometry, EPSG:4547)."""
    if not cell_m > 0:
        raise SitingInputError(f"grid cell must be positive, got {cell_m} m")
    minx, miny, maxx, maxy = area.bounds
    c = np.arange(np.floor(minx / cell_m), np.ceil(maxx / cell_m), dtype=np.int64)
    r = np.arange(np.floor(miny / cell_m), np.ceil(maxy / cell_m), dtype=np.int64)
    cc, rr = np.meshgrid(c, r)
    cx, cy = (cc.ravel() + 0.5) * cell_m, (rr.ravel() + 0.5) * cell_m
    shapely.prepare(area)
    inside = shapely.contains_xy(area, cx, cy)
    ids = [f"r{a}c{b}" for a, b in zip(rr.ravel()[inside], cc.ravel()[inside])]
    return Facilities.make(ids, cx[inside], cy[inside])


def euclidean(demand: Demand, fac: Facilities) -> np.ndarray:
    """Straight-line metres, demand × facility."""
    return np.hypot(demand.x[:, None] - fac.x[None, :], demand.y[:, None] - fac.y[None, :])


def travel_times(table: pd.DataFrame, demand: Demand, fac: Facilities) -> np.ndarray:
    """Demand × facility seconds from rows (origin, destination, seconds); pairs not in the table are inf (unreachable).

    origin: a demand cell id (r<row>c<col>); destination: a facility id (station_id, candidate id or grid r<row>c<col>).
    """
    missing = {"origin", "destination", "seconds"} - set(table.columns)
    if missing:
        raise SitingInputError(f"travel-time table lacks column(s) {', '.join(sorted(missing))}; "
                               "it needs origin, destination, seconds")
    sec = pd.to_numeric(table["seconds"], errors="coerce").to_numpy(dtype="f8")
    bad = ~np.isfinite(sec) | (sec < 0)
    if bad.any():
        raise SitingInputError(f"travel-time table: {int(bad.sum())} row(s) with seconds that are not a number ≥ 0 "
                               f"(first at row {int(np.flatnonzero(bad)[0]) + 1})")
    oi = pd.Index(demand.ids).get_indexer(table["origin"].astype(str))
    di = pd.Index(fac.ids).get_indexer(table["destination"].astype(str))
    out = np.full((len(demand), len(fac)), np.inf)
    ok = (oi >= 0) & (di >= 0)
    out[oi[ok], di[ok]] = sec[ok]
    return out


# ------------------------------------------------------------------ result
@dataclass
class SitingResult:
    """The answer: chosen facilities, before/after measures and what the solver proved."""

    model: str
    status: str  # optimal | feasible (time limit, not proven) | infeasible | no solution
    proven_optimal: bool
    gap: float | None  # relative gap between the solution and HiGHS's bound (0 when proven)
    objective: float | None
    open: np.ndarray  # facility positions open after (existing + added)
    added: np.ndarray  # facility positions added
    radius: float | None
    k: int | None
    seconds: float
    solver: str
    method: str
    before: dict = field(default_factory=dict)
    after: dict = field(default_factory=dict)
    message: str = ""
    nearest: np.ndarray | None = None  # per demand: position of its nearest open facility after (-1: none reachable)

    def to_dict(self) -> dict:
        """Plain JSON-able fields (positions as lists)."""
        return {"model": self.model, "status": self.status, "proven_optimal": self.proven_optimal, "gap": self.gap,
                "objective": self.objective, "radius": self.radius, "k": self.k, "seconds": round(self.seconds, 3),
                "solver": self.solver, "method": self.method, "before": self.before, "after": self.after,
                "message": self.message}


def measures(cost: np.ndarray, weight: np.ndarray, open_: np.ndarray, radius: float | None) -> dict:
    """Demand covered within `radius` (weight and share) and the weighted mean cost to the nearest open facility."""
    total = float(weight.sum())
    out: dict = {"facilities": int(len(open_)), "demand": total}
    if not len(open_):
        out.update(covered=0.0 if radius else None, covered_share=0.0 if radius else None, mean_cost=None,
                   unreachable=total)
        return out
    near = cost[:, open_].min(axis=1)
    reach = np.isfinite(near)
    if radius:
        cov = float(weight[near <= radius].sum())
        out.update(covered=cov, covered_share=cov / total if total else None)
    out["mean_cost"] = float((weight[reach] * near[reach]).sum() / weight[reach].sum()) if reach.any() else None
    out["unreachable"] = float(weight[~reach].sum())
    return out


# ------------------------------------------------------------------ solving
_BANNER_MOVED = False


def _move_banner() -> None:
    """HiGHS prints a banner on stdout at its first instance per process, whatever the options; send it to stderr
    (stdout is the CLI's --json answer)."""
    global _BANNER_MOVED
    if _BANNER_MOVED:
        return
    import os
    import sys

    import highspy

    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        highspy.Highs()
    finally:
        os.dup2(saved, 1)
        os.close(saved)
    _BANNER_MOVED = True


def highs(time_limit: float | None, msg: bool = False, presolve: str = "off"):
    """PuLP's HiGHS (highspy) with a time limit and a tight gap; one thread (the machine is shared)."""
    import pulp

    _move_banner()

    # presolve off: on MCLP over the shipped towns HiGHS 1.16 spent 25 s presolving a model it then solved in 2 s
    s = pulp.HiGHS(msg=msg, timeLimit=time_limit, gapRel=REL_GAP, threads=1, presolve=presolve)
    if not s.available():
        raise RuntimeError("HiGHS (highspy) is not installed: pip install highspy")
    return s


def cbc(time_limit: float | None, msg: bool = False):
    """PuLP's bundled CBC, for comparison (benchmarks)."""
    import pulp

    return pulp.PULP_CBC_CMD(msg=msg, timeLimit=time_limit, gapRel=REL_GAP, threads=1)


def _verdict(problem, solver) -> tuple[str, bool, float | None]:
    """(status, proven_optimal, relative gap) read from the solver, not from PuLP's status mapping."""
    import pulp

    model = getattr(problem, "solverModel", None)
    if model is not None and hasattr(model, "getModelStatus"):  # HiGHS
        import highspy

        st = model.getModelStatus()
        info = model.getInfo()
        has_sol = problem.sol_status in (pulp.LpSolutionOptimal, pulp.LpSolutionIntegerFeasible)
        gap = float(info.mip_gap) if np.isfinite(info.mip_gap) else None
        if st == highspy.HighsModelStatus.kOptimal:
            return "optimal", True, max(0.0, gap or 0.0)
        if st in (highspy.HighsModelStatus.kInfeasible, highspy.HighsModelStatus.kUnboundedOrInfeasible):
            return "infeasible", False, None
        return ("feasible" if has_sol else "no solution"), False, gap
    # CBC (command line): PuLP's status and sol_status are what we have
    if problem.status == pulp.LpStatusInfeasible:
        return "infeasible", False, None
    if problem.sol_status == pulp.LpSolutionOptimal:
        return "optimal", True, 0.0
    if problem.sol_status == pulp.LpSolutionIntegerFeasible:
        return "feasible", False, None
    return "no solution", False, None


def _chosen(problem_vars) -> np.ndarray:
    return np.flatnonzero(np.array([(v.varValue or 0.0) > 0.5 for v in problem_vars]))


def solve(model: str, demand: Demand, fac: Facilities, cost: np.ndarray, *, add: int | None = None,
          radius: float | None = None, time_limit: float | None = 60.0, solver=None,
          dense_pairs: int = DENSE_PAIRS) -> SitingResult:
    """Answer the `model` question; `solver` defaults to HiGHS with `time_limit` seconds.

    The limit bounds the solver (and the sparse p-median's rounds, checked between them); building the
    model in PuLP comes on top, so the wall time can exceed it on large instances.
    """
    model = (model or "").lower()
    if model not in MODELS:
        raise SitingInputError(f"model {model!r} must be one of {', '.join(MODELS)}")
    cost = np.asarray(cost, dtype="f8")
    if cost.shape != (len(demand), len(fac)):
        raise SitingInputError(f"cost matrix is {cost.shape}, expected {(len(demand), len(fac))}")
    if not len(demand) or not float(demand.weight.sum()) > 0:
        raise SitingInputError("there is no demand: no reports match the filters (widen since/until, category or town)")
    n_exist = int(fac.existing.sum())
    n_cand = len(fac) - n_exist
    if model in ("mclp", "lscp"):
        if radius is None or not np.isfinite(radius) or radius <= 0:
            raise SitingInputError(f"radius must be a number > 0, got {radius}")
    if model in ("mclp", "pmedian"):
        if add is None or add < 1:
            raise SitingInputError(f"the number of stations to add must be at least 1, got {add}")
        if add > n_cand:
            raise SitingInputError(f"cannot add {add} stations: there are only {n_cand} candidate sites")
    if time_limit is not None and not time_limit > 0:
        raise SitingInputError(f"time limit must be > 0 seconds, got {time_limit}")
    solver = solver or highs(time_limit)
    existing = np.flatnonzero(fac.existing)
    t0 = time.perf_counter()
    before = measures(cost, demand.weight, existing, radius)
    if model == "pmedian" and cost.size > dense_pairs:
        res = _pmedian_sparse(demand, fac, cost, add, solver, time_limit)
    else:
        res = _spopt(model, demand, fac, cost, add, radius, solver, dense=cost.size <= dense_pairs)
    res.seconds = time.perf_counter() - t0
    res.before = before
    if len(res.open):
        res.after = measures(cost, demand.weight, res.open, radius)
        res.nearest = res.open[np.argmin(cost[:, res.open], axis=1)]
        res.nearest[~np.isfinite(cost[:, res.open].min(axis=1))] = -1
    return res


def _spopt(model, demand, fac, cost, add, radius, solver, dense: bool = True) -> SitingResult:
    """spopt's MCLP, PMedian or LSCP; existing stations fixed open (predefined_facilities_arr).

    `dense`: spopt's own from_cost_matrix, which writes every demand × facility pair into each row;
    otherwise (MCLP and LSCP on large instances) the same spopt model with only the covering pairs per row.
    """
    from spopt.locate import LSCP, MCLP, PMedian

    n_exist = int(fac.existing.sum())
    pre = fac.existing.astype(int) if n_exist else None
    w = demand.weight
    name = {"mclp": "spopt.MCLP", "pmedian": "spopt.PMedian", "lscp": "spopt.LSCP"}[model]
    if model == "lscp":
        uncoverable = ~(cost <= radius).any(axis=1)
        if uncoverable.any():
            return SitingResult(model, "infeasible", False, None, None, np.zeros(0, np.int64), np.zeros(0, np.int64),
                                radius, None, 0.0, _solver_name(solver), name,
                                message=f"{int(uncoverable.sum())} demand cell(s) ({w[uncoverable].sum():g} reports) "
                                        f"have no candidate within {radius:g}; no set of stations covers all demand")
    if model == "pmedian":
        c = cost.copy()
        fin = np.isfinite(c)
        if not fin.any(axis=1).all():
            raise SitingInputError(f"{int((~fin.any(axis=1)).sum())} demand cell(s) reach no facility in the "
                                   "travel-time table; add their rows or drop them")
        c[~fin] = UNREACHABLE_PENALTY * (c[fin].max() if fin.any() else 1.0)
        m = PMedian.from_cost_matrix(c, w, p_facilities=n_exist + add, predefined_facilities_arr=pre)
    elif dense and model == "mclp":
        m = MCLP.from_cost_matrix(cost, w, radius, p_facilities=n_exist + add, predefined_facilities_arr=pre)
    elif dense:
        m = LSCP.from_cost_matrix(cost, radius, predefined_facilities_arr=pre)
    else:
        m = _sparse_cover(model, cost <= radius, w, pre, n_exist + (add or 0))
        name += " (sparse rows)"
    try:
        m.solve(solver, results=False)
    except RuntimeError as exc:  # spopt: "Model is not solved: ..."
        st, _, _ = _verdict(m.problem, solver)
        return SitingResult(model, st, False, None, None, np.zeros(0, np.int64), np.zeros(0, np.int64), radius, add,
                            0.0, _solver_name(solver), name, message=str(exc))
    st, proven, gap = _verdict(m.problem, solver)
    open_ = _chosen(m.fac_vars)
    obj = float(m.problem.objective.value())
    if model == "pmedian":
        obj = obj / float(w.sum())  # spopt's objective is the weighted sum; we report the weighted mean
    added = open_[~fac.existing[open_]]
    msg = "" if proven else f"not proven optimal within the time limit (status {st}, gap {gap})"
    return SitingResult(model, st, proven, gap, obj, open_, added, radius,
                        add if model != "lscp" else int(len(added)), 0.0, _solver_name(solver), name, message=msg)


def _sparse_cover(model: str, covers: np.ndarray, w: np.ndarray, pre, p: int):
    """spopt's MCLP or LSCP built row by row from the covering pairs only (same variables and constraints)."""
    import pulp
    from spopt.locate import LSCP, MCLP
    from spopt.locate.base import FacilityModelBuilder as B

    nd, nf = covers.shape
    rows = [np.flatnonzero(r) for r in covers]
    if model == "mclp":
        m = MCLP(model, pulp.LpProblem(model, pulp.LpMaximize))
        B.add_facility_integer_variable(m, range(nf), "y[{i}]")
        B.add_client_integer_variable(m, range(nd), "x[{i}]")
        y, x = m.fac_vars, m.cli_vars
        m.problem += pulp.LpAffineExpression([(x[i], float(w[i])) for i in range(nd)])
        for i, js in enumerate(rows):
            m.problem += pulp.LpAffineExpression([(y[j], 1.0) for j in js] + [(x[i], -1.0)]) >= 0
        B.add_facility_constraint(m, p)
    else:
        m = LSCP(model, pulp.LpProblem(model, pulp.LpMinimize))
        B.add_facility_integer_variable(m, range(nf), "y[{i}]")
        y = m.fac_vars
        m.problem += pulp.lpSum(y)
        for js in rows:
            m.problem += pulp.LpAffineExpression([(y[j], 1.0) for j in js]) >= 1
    if pre is not None:
        B.add_predefined_facility_constraint(m, pre)
    return m


def _solver_name(solver) -> str:
    return getattr(solver, "name", type(solver).__name__)


def _pmedian_sparse(demand, fac, cost, add, solver, time_limit, max_pairs: int = MAX_SPARSE_PAIRS) -> SitingResult:
    """Exact p-median with assignment variables only near each demand, widened until the bound meets the solution.

    Demand i may be assigned to facilities within T_i, or to a slack u_i costing L_i, the smallest cost above
    T_i (no farther facility can be cheaper), so every solve is a lower bound on the true optimum. The chosen
    stations are then costed exactly; if that equals the bound the solution is optimal, otherwise T_i grows
    towards each demand's actual nearest station (at most doubling) and the model is solved again; past
    `max_pairs` assignment variables or the time limit it stops and says "not proven". T_i starts at the cost to
    the nearest station of a greedy solution, at most the `PER_DEMAND`-th nearest facility, and never beyond
    the nearest existing station (which is always open).
    """
    import pulp

    per_demand = 48
    w = demand.weight
    c = cost.copy()
    fin = np.isfinite(c)
    if not fin.any(axis=1).all():
        raise SitingInputError(f"{int((~fin.any(axis=1)).sum())} demand cell(s) reach no facility in the "
                               "travel-time table; add their rows or drop them")
    c[~fin] = UNREACHABLE_PENALTY * c[fin].max()
    existing = np.flatnonzero(fac.existing)
    p = len(existing) + add
    greedy = _greedy(c, w, existing, add)
    near_g = c[:, greedy].min(axis=1)
    kth = np.partition(c, min(per_demand, c.shape[1] - 1), axis=1)[:, min(per_demand, c.shape[1] - 1)]
    cap = np.full(len(w), np.inf) if not len(existing) else c[:, existing].min(axis=1)
    T = np.minimum(np.minimum(near_g, kth), cap)
    deadline = None if time_limit is None else time.perf_counter() + time_limit
    best_open, best_cost, best_lb, st, last_gap = greedy, float(w @ near_g), -np.inf, "feasible", None
    rounds, limit_note = 0, ""
    while True:
        rounds += 1
        left = None if deadline is None else deadline - time.perf_counter()
        if left is not None and left <= 0.05:
            break
        solver.timeLimit = left
        prob = pulp.LpProblem("pmedian_sparse", pulp.LpMinimize)
        y = [pulp.LpVariable(f"y{j}", cat="Binary") for j in range(c.shape[1])]
        for j in existing:
            y[j].setInitialValue(1)
            y[j].fixValue()
        obj_terms = []
        for i in range(len(w)):
            js = np.flatnonzero(c[i] <= T[i])
            zs = [pulp.LpVariable(f"z{i}_{j}", 0, 1) for j in js]
            obj_terms += [(z, w[i] * c[i, j]) for z, j in zip(zs, js)]
            terms = [(z, 1.0) for z in zs]
            above = c[i][c[i] > T[i]]
            if T[i] < cap[i] and len(above):  # a station farther than T_i may serve i: slack at the next cost level
                u = pulp.LpVariable(f"u{i}", 0, 1)
                obj_terms.append((u, w[i] * float(above.min())))
                terms.append((u, 1.0))
            prob += pulp.LpAffineExpression(terms) == 1
            for z, j in zip(zs, js):
                if not fac.existing[j]:
                    prob += z - y[j] <= 0
        prob += pulp.LpAffineExpression(obj_terms)
        prob += pulp.lpSum(y) == p
        prob.solve(solver)
        st, proven, gap = _verdict(prob, solver)
        if st in ("infeasible", "no solution"):
            break
        open_ = _chosen(y)
        if getattr(prob, "solverModel", None) is not None:  # HiGHS: its proven bound
            lb = float(prob.solverModel.getInfo().mip_dual_bound)
        else:  # CBC: only a proven optimum is a bound
            lb = float(prob.objective.value()) if proven else -np.inf
        best_lb = max(best_lb, lb)
        near = c[:, open_].min(axis=1)
        true = float(w @ near)
        if true < best_cost:
            best_open, best_cost = open_, true
        last_gap = (best_cost - best_lb) / best_cost if best_cost > 0 else 0.0
        if proven and last_gap <= REL_GAP * 10:
            st = "optimal"
            break
        if not proven:  # the restricted model itself ran out of time
            st = "feasible"
            break
        grow = near > T
        if not grow.any():  # bound = solution cost up to the solver's tolerance
            st = "optimal"
            break
        T = np.where(grow, np.minimum(np.minimum(near, np.maximum(2 * T, kth)), cap), T)  # widen, at most doubling
        pairs = int((c <= T[:, None]).sum())
        if pairs > max_pairs:
            st = "feasible"
            limit_note = f"; the next round would need {pairs:,} assignment pairs (limit {max_pairs:,})"
            break
    solver.timeLimit = time_limit  # the caller's solver as it was given
    done = st == "optimal"
    added = best_open[~fac.existing[best_open]]
    msg = "" if done else (f"not proven optimal within the time limit after {rounds} round(s) "
                           f"(best {best_cost / w.sum():.1f}, bound {best_lb / w.sum():.1f}){limit_note}")
    return SitingResult("pmedian", "optimal" if done else ("feasible" if len(best_open) else st), done,
                        0.0 if done else last_gap, best_cost / float(w.sum()), np.sort(best_open), np.sort(added),
                        None, add, 0.0, _solver_name(solver), f"sparse p-median ({rounds} round(s))", message=msg)


def _greedy(c: np.ndarray, w: np.ndarray, existing: np.ndarray, add: int) -> np.ndarray:
    """Existing stations plus `add` sites chosen one at a time, each the largest drop in weighted cost."""
    cur = c[:, existing].min(axis=1) if len(existing) else np.full(len(w), np.inf)
    chosen = list(existing)
    for _ in range(add):
        tot = w @ np.minimum(cur[:, None], c)
        tot[chosen] = np.inf
        j = int(np.argmin(tot))
        chosen.append(j)
        cur = np.minimum(cur, c[:, j])
    return np.array(sorted(chosen), dtype=np.int64)
