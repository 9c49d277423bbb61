"""Colours for zones: one hue per chief, neighbours never alike.

Chiefs are the nodes of a graph, joined when any of their zones touch; a
greedy colouring (largest degree first) gives each chief a hue that no
neighbouring chief has. A chief's own zones share that hue; where two of them
touch each other they get different shades of it, so no two adjacent zones are
ever filled alike.
"""
from __future__ import annotations

import colorsys
import itertools

import numpy as np
import shapely

# Qualitative and light enough for black labels (mostly ColorBrewer Set3), the most distinct first.
PALETTE = ("#8dd3c7", "#fdb462", "#bebada", "#fb8072", "#b3de69", "#80b1d3", "#fccde5", "#ffffb3",
           "#d9b38c", "#ccebc5")
TOUCH_M = 1.0  # zones closer than this (metres) count as neighbours


def adjacency(geoms_metric) -> list[set[int]]:
    """Neighbour sets of geometries in a metric CRS (touching, overlapping or within TOUCH_M)."""
    g = np.asarray(geoms_metric, dtype=object)
    tree = shapely.STRtree(g)
    a, b = tree.query(g, predicate="dwithin", distance=TOUCH_M)
    nbrs: list[set[int]] = [set() for _ in range(len(g))]
    for i, j in zip(a.tolist(), b.tolist()):
        if i != j:
            nbrs[i].add(j)
            nbrs[j].add(i)
    return nbrs


def greedy_colouring(nbrs: dict, spread: int = 0) -> dict:
    """A colour index per node that no neighbour has; nodes taken by decreasing degree (then name).

    With `spread` > 0 each node takes the least-used free colour among the
    first `spread` (so a palette is used evenly and the legend says more);
    only when all of those are taken by neighbours does it open a new one.
    """
    colour: dict = {}
    count: dict[int, int] = {}
    for node in sorted(nbrs, key=lambda n: (-len(nbrs[n]), str(n))):
        used = {colour[n] for n in nbrs[node] if n in colour}
        free = [c for c in range(spread) if c not in used]
        if free:
            c = min(free, key=lambda k: (count.get(k, 0), k))
        else:
            c = next(k for k in itertools.count() if k not in used)
        colour[node] = c
        count[c] = count.get(c, 0) + 1
    return colour


def hue(k: int) -> str:
    """The k-th chief colour; past the palette, evenly spaced extra hues."""
    if k < len(PALETTE):
        return PALETTE[k]
    h = ((k - len(PALETTE)) * 0.618034) % 1.0
    r, g, b = colorsys.hls_to_rgb(h, 0.75, 0.6)
    return f"#{int(r * 255):02x}{int(g * 255):02x}{int(b * 255):02x}"


def shade(colour: str, k: int) -> str:
    """Shade k of a colour: 0 is the colour, then darker and lighter variants."""
    if k == 0:
        return colour
    r, g, b = (int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5))
    h, lum, s = colorsys.rgb_to_hls(r, g, b)
    steps = (-0.14, 0.1, -0.26, 0.18)
    lum = min(0.95, max(0.2, lum + steps[(k - 1) % len(steps)] * (1 + (k - 1) // len(steps))))
    r, g, b = colorsys.hls_to_rgb(h, lum, s)
    return f"#{int(r * 255):02x}{int(g * 255):02x}{int(b * 255):02x}"


def zone_colours(geoms_metric, owners) -> tuple[list[int], list[str]]:
    """(chief colour index, fill colour) per zone; `owners` names each zone's chief (None: its own group)."""
    n = len(owners)
    nbrs = adjacency(geoms_metric)
    groups = [o if o is not None else ("__zone__", i) for i, o in enumerate(owners)]
    graph: dict = {g: set() for g in groups}
    for i in range(n):
        for j in nbrs[i]:
            if groups[i] != groups[j]:
                graph[groups[i]].add(groups[j])
    chief_colour = greedy_colouring(graph, spread=len(PALETTE))
    # Within one chief, touching zones get different shades.
    shade_of = [0] * n
    for g in set(groups):
        members = [i for i in range(n) if groups[i] == g]
        if len(members) > 1:
            sub = greedy_colouring({i: {j for j in nbrs[i] if groups[j] == g} for i in members})
            for i in members:
                shade_of[i] = sub[i]
    idx = [chief_colour[groups[i]] for i in range(n)]
    return idx, [shade(hue(idx[i]), shade_of[i]) for i in range(n)]
