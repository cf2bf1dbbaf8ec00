# Tests of collector/ (config loader, flags, file_sd, scrape manager, leakwatchd).
lw_unit_test(test_config SOURCES ${CMAKE_SOURCE_DIR}/tests/unit/test_config.c LIBS lwconfig)
lw_unit_test(test_lw_log SOURCES ${CMAKE_SOURCE_DIR}/tests/unit/test_lw_log.c LIBS lwcommon)
if(TARGET leakwatchd)
  lw_integration_test(collector SCRIPT test_collector.py GO_PEERS TIMEOUT 400)
endif()
if(TARGET lwstore)
  lw_unit_test(test_coll SOURCES ${CMAKE_SOURCE_DIR}/tests/unit/test_coll.c LIBS lwcoll)
endif()
