"""The ``kubernetes`` target: settings (``settings.py``), objects (``objects.py``), API (``api.py``), target."""
