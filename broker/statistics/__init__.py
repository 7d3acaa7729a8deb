"""The annual MAPPA statistics: the statutory tables computed from what an area's
co-ordination unit holds (docs/statistics.md)."""
