"""Alembic environment: runs on a connection handed over by gis.store.db.migrate, or on sqlalchemy.url."""
from alembic import context
from sqlalchemy import create_engine

from gis.store.models import Base

config = context.config
target_metadata = Base.metadata


def run():
    conn = config.attributes.get("connection")
    if conn is not None:
        context.configure(connection=conn, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    url = config.get_main_option("sqlalchemy.url")
    from gis.store.db import database_url

    engine = create_engine(url or database_url())
    with engine.begin() as conn:
        context.configure(connection=conn, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()


run()
