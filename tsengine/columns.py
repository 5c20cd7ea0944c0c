"""The internal column names of canonical frames, in one place.

Every stage between validation and rendering works on frames with these
private columns (double underscore, so they never clash with a user's column):
the input row, the series key, the parsed time, the grid index, the timestamp
as written, the target, and for queries the forecast point and distance.
"""

from __future__ import annotations

__all__ = ["D", "FP", "IDX", "ORIG", "ROW", "SID", "TIME", "Y"]

ROW, SID, TIME, IDX, ORIG, Y = "__row", "__sid", "__t", "__i", "__orig", "__y"
FP, D = "__fp", "__d"
