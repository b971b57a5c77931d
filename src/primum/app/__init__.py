"""The application layer. Importing it registers every target kind's settings with the estate model
(``adapters/targets/registry.py``), so any estate read above the adapters (``primum validate``, the
controller, the demo, a stored estate) knows targets such as ``ssh`` whose settings live in adapters."""

import primum.adapters.targets.registry  # noqa: F401  (registration only; the targets load lazily)
