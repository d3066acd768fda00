from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor.store.database import Database
from conveyor.store.migrate import upgrade
from tests.contract.store_contract import StoreContract


class TestSQLiteStore(StoreContract):
    __test__ = True

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[Database]:
        db = Database(f"sqlite:///{tmp_path / 'conveyor.db'}")
        upgrade(db)
        yield db
        db.dispose()
