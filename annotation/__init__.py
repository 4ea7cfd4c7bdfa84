"""The psychologists' rating and distortion-labelling work. Imports cbt/ and eval/.

Store: annotation.store (SQLite by default, PostgreSQL by URL; auth, rows, export, sampling); CLI: `python -m cbt
annotate`; tabs and API endpoints: annotation.tabs (pure helpers in annotation.ui).
"""
