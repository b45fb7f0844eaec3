"""Alembic migrations of the CRM tables (run by :func:`callcenter.crm.schema.migrate`).

A package only so that the revision scripts ship with callcenter; Alembic loads ``env.py`` and
``versions/*.py`` by path, never through this import.
"""
