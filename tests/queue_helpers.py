"""Helpers shared by the label-queue and web-app tests (imported as a plain module from tests/)."""

import sqlite3


class Clock:
    """A settable clock for ``LabelQueue(clock=...)``: leases expire when a test moves ``t``."""

    def __init__(self, t=1_000_000.0):
        self.t = t

    def __call__(self):
        return self.t


def snapshot(path):
    """Every row of the tables a queue touches, read through a fresh connection."""
    db = sqlite3.connect(path)
    try:
        return {t: db.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall() for t in ("labels", "queries", "query_media")}
    finally:
        db.close()
