# Tests of collector/ (config loader, flags, file_sd, scrape manager, leakwatchd).
lw_unit_test(test_config SOURCES ${CMAKE_SOURCE_DIR}/tests/unit/test_config.c LIBS lwconfig)
