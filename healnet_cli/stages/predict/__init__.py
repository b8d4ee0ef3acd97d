"""``healnet predict``: apply a trained run to the patients of another workspace (external validation)."""
