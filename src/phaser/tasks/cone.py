"""The ``cone`` demo task: a cone search over a synthetic star catalogue.

Needs the ``astro`` extra (astropy, numpy). The catalogue is deterministic:
the sky is cut into 1°×1° cells and each cell's stars come from a random
generator seeded by the cell number, so the same cone always gives the same
stars and overlapping cones agree.
"""

from __future__ import annotations

import io
import math

import numpy as np
from astropy.io.votable.tree import Field as VOField
from astropy.io.votable.tree import Resource, TableElement, VOTableFile
from pydantic import BaseModel, Field

from .context import TaskContext
from .registry import task

__all__ = ["ConeParameters", "cone_search"]

#: Mean number of stars per 1°×1° cell at the equator.
_STARS_PER_CELL = 40


class ConeParameters(BaseModel):
    """Parameters of the ``cone`` task."""

    ra: float = Field(
        ..., ge=0, lt=360, title="RA", description="Right ascension (deg)."
    )
    dec: float = Field(
        ..., ge=-90, le=90, title="Dec", description="Declination (deg)."
    )
    radius: float = Field(
        ..., gt=0, le=10, title="Radius", description="Cone radius (deg)."
    )
    maxrec: int = Field(
        1000,
        ge=0,
        le=100_000,
        title="MAXREC",
        description="Most rows to return (nearest first).",
    )


def _cell_stars(ra_cell: int, dec_cell: int) -> np.ndarray:
    """Stars of one cell: rows of (id, ra, dec, mag)."""
    seed = (dec_cell + 90) * 360 + ra_cell
    rng = np.random.default_rng(seed)
    # Fewer stars in cells near the poles, which are smaller on the sky.
    area = abs(
        math.sin(math.radians(dec_cell + 1)) - math.sin(math.radians(dec_cell))
    ) * (180 / math.pi)
    count = rng.poisson(_STARS_PER_CELL * area)
    ra = ra_cell + rng.random(count)
    sin_dec = rng.uniform(
        math.sin(math.radians(dec_cell)),
        math.sin(math.radians(dec_cell + 1)),
        count,
    )
    dec = np.degrees(np.arcsin(sin_dec))
    mag = np.round(rng.uniform(8, 20, count), 3)
    ids = seed * 10_000 + np.arange(count)
    return np.rec.fromarrays(  # type: ignore[call-overload]
        [ids, ra, dec, mag], names="id,ra,dec,mag"
    )


def cone_search(
    ra: float, dec: float, radius: float, maxrec: int
) -> np.ndarray:
    """Stars within ``radius`` of (ra, dec), nearest first.

    Returns a record array with fields id, ra, dec, mag and dist (deg).
    """
    dec_lo = max(-90, math.floor(dec - radius))
    dec_hi = min(89, math.floor(dec + radius))
    pole = abs(dec) + radius >= 89
    cos_dec = math.cos(math.radians(min(89.0, abs(dec) + radius)))
    ra_span = 360 if pole else radius / cos_dec
    ra_cells = (
        range(360)
        if ra_span >= 180
        else [
            c % 360
            for c in range(
                math.floor(ra - ra_span), math.floor(ra + ra_span) + 1
            )
        ]
    )
    chunks = [
        _cell_stars(ra_cell, dec_cell)
        for dec_cell in range(dec_lo, dec_hi + 1)
        for ra_cell in sorted(set(ra_cells))
    ]
    stars = np.concatenate(chunks) if chunks else _cell_stars(0, 0)[:0]
    # Angular distance by the haversine formula.
    r1, d1 = math.radians(ra), math.radians(dec)
    r2, d2 = np.radians(stars["ra"]), np.radians(stars["dec"])
    hav = (
        np.sin((d2 - d1) / 2) ** 2
        + math.cos(d1) * np.cos(d2) * np.sin((r2 - r1) / 2) ** 2
    )
    dist = np.degrees(2 * np.arcsin(np.sqrt(np.clip(hav, 0, 1))))
    inside = dist <= radius
    order = np.argsort(dist[inside], kind="stable")[:maxrec]
    found = stars[inside][order]
    return np.rec.fromarrays(  # type: ignore[call-overload]
        [
            found["id"],
            found["ra"],
            found["dec"],
            found["mag"],
            dist[inside][order],
        ],
        names="id,ra,dec,mag,dist",
    )


def to_votable(rows: np.ndarray) -> bytes:
    """The rows as a VOTable document."""
    votable = VOTableFile()
    resource = Resource()
    votable.resources.append(resource)
    table = TableElement(votable, name="cone")
    resource.tables.append(table)
    table.fields.extend(
        [
            VOField(
                votable, name="id", datatype="long", ucd="meta.id;meta.main"
            ),
            VOField(
                votable,
                name="ra",
                datatype="double",
                unit="deg",
                ucd="pos.eq.ra;meta.main",
            ),
            VOField(
                votable,
                name="dec",
                datatype="double",
                unit="deg",
                ucd="pos.eq.dec;meta.main",
            ),
            VOField(
                votable,
                name="mag",
                datatype="float",
                unit="mag",
                ucd="phot.mag",
            ),
            VOField(
                votable,
                name="dist",
                datatype="double",
                unit="deg",
                ucd="pos.angDistance",
            ),
        ]
    )
    table.create_arrays(len(rows))
    for name in ("id", "ra", "dec", "mag", "dist"):
        table.array[name] = rows[name]
    out = io.BytesIO()
    votable.to_xml(out)
    return out.getvalue()


@task("cone", parameters=ConeParameters)
def cone(params: ConeParameters, ctx: TaskContext) -> None:
    """Cone search over a deterministic synthetic star catalogue."""
    ctx.progress(0, "searching")
    rows = cone_search(params.ra, params.dec, params.radius, params.maxrec)
    ctx.add_result(to_votable(rows), mime_type="application/x-votable+xml")
    ctx.progress(100, f"{len(rows)} stars")
