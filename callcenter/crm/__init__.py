"""CRM: who is calling. Customers with their phone and account numbers, looked up for each call.

- :mod:`~callcenter.crm.phone`: numbers in any written form to E.164 (``normalize_number``)
- :mod:`~callcenter.crm.schema`: the tables and their Alembic migrations (``migrate(engine)``)
- :mod:`~callcenter.crm.store`: ``CrmStore`` (synchronous): customers, lookups, interactions
- :mod:`~callcenter.crm.importer`: all-or-nothing CSV import with ``file:line: column`` problems
- :mod:`~callcenter.crm.lookup`: ``CustomerDirectory``, the async lookup with a timeout calls use
- :mod:`~callcenter.crm.cli`: ``callcenter crm migrate | import | lookup``

Nothing is imported here, so the command line does not load SQLAlchemy, Alembic and phonenumbers
for commands that never touch the CRM.
"""
