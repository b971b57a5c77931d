"""The newest migration's revision, apart from ``db.py`` so that a reader can check it without SQLAlchemy.

Every command opens the store; when the schema is already here, Alembic (0.4 s to import) is never loaded
and no write lock is taken. ``tests/store/test_store_db.py`` checks this equals Alembic's head.
"""

HEAD_REVISION = "0005_identities"
