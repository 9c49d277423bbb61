"""The report store: tables, migrations, API keys, audit trail and bulk writes, on PostGIS or embedded SQLite."""
