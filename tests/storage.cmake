# Tests of storage/ (SQLite profile store) and its lwstore-tool.
lw_unit_test(test_store SOURCES ${CMAKE_SOURCE_DIR}/tests/unit/test_store.c LIBS lwstore)
lw_integration_test(store SCRIPT test_store.py GO_PEERS TIMEOUT 300)
lw_integration_test(store_crash SCRIPT test_store_crash.py GO_PEERS TIMEOUT 300)
