# Tests of common/ (capped buffer).
lw_unit_test(test_lw_buf SOURCES ${CMAKE_SOURCE_DIR}/tests/unit/test_lw_buf.c LIBS lwcommon)
