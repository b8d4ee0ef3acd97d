"""``healnet train``: cross-validated multimodal survival training into a run folder."""
