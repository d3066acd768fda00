from __future__ import annotations

from collections.abc import Iterator

import pytest

from conveyor.store.database import Database
from tests.conftest import clear_tables
from tests.contract.store_contract import StoreContract


@pytest.mark.postgres
class TestPostgresStore(StoreContract):
    __test__ = True

    @pytest.fixture
    def store(self, postgres_database: Database) -> Iterator[Database]:
        clear_tables(postgres_database)
        yield postgres_database
