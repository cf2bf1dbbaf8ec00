# Tests of detect/ (statistics, detector, alerts, Alertmanager client).
lw_unit_test(test_stats SOURCES ${CMAKE_SOURCE_DIR}/tests/unit/test_stats.c LIBS lwdetect_core)
lw_unit_test(test_detect SOURCES ${CMAKE_SOURCE_DIR}/tests/unit/test_detect.c LIBS lwdetect_core)
lw_unit_test(test_alerts SOURCES ${CMAKE_SOURCE_DIR}/tests/unit/test_alerts.c LIBS lwdetect_core)
if(TARGET lwdetect)
  lw_unit_test(test_detect_engine SOURCES ${CMAKE_SOURCE_DIR}/tests/unit/test_detect_engine.c
               LIBS lwdetect)
endif()
lw_integration_test(alertmanager SCRIPT test_alertmanager.py TIMEOUT 180)
if(TARGET leakwatchd AND TARGET lwdetect)
  lw_integration_test(detect_e2e SCRIPT test_detect_e2e.py GO_PEERS TIMEOUT 400)
endif()
