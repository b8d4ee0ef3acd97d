"""The shared synthetic-workspace factories (tests/data/factories.py), loaded by path so that the
train tests do not depend on which ``conftest`` module pytest imported first."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_NAME = "healnet_train_factories"
if _NAME in sys.modules:
    factories = sys.modules[_NAME]
else:
    _spec = importlib.util.spec_from_file_location(_NAME, Path(__file__).resolve().parents[2] / "data" / "factories.py")
    factories = importlib.util.module_from_spec(_spec)
    _spec.loader.exec_module(factories)
