"""Demo and synthetic data, and the help-resource catalogue (DESIGN.md section 6).

``seed_demo`` loads the two demo partners once (idempotent), ``seed_synthetic`` loads N customers
over P partners deterministically for a random seed, ``seed_resources`` loads the help
resources. All of them expect a migrated database and derive ``customer_status_span`` and
``customer_product`` for every customer they create.
"""

from __future__ import annotations

from db.seed.demo import seed_demo
from db.seed.report import SeedError, SeedReport
from db.seed.resources import seed_resources
from db.seed.synthetic import seed_synthetic

__all__ = ["SeedError", "SeedReport", "seed_demo", "seed_resources", "seed_synthetic"]
