# Tests of collector/ (config loader, flags, file_sd, scrape manager, leakwatchd).
lw_unit_test(test_config SOURCES ${CMAKE_SOURCE_DIR}/tests/unit/test_config.c LIBS lwconfig)
lw_unit_test(test_lw_log SOURCES ${CMAKE_SOURCE_DIR}/tests/unit/test_lw_log.c LIBS lwcommon)
if(TARGET leakwatchd)
  lw_integration_test(collector_scrape SCRIPT test_collector.py GO_PEERS TIMEOUT 300
    ENV LW_COLLECTOR_TESTS=test_config_check,test_scrape_gosvc,test_hostile_targets,test_second_instance,test_leaky_demo)
  lw_integration_test(collector_config SCRIPT test_collector.py GO_PEERS TIMEOUT 300
    ENV LW_COLLECTOR_TESTS=test_file_sd,test_reload,test_disk_full,test_tls_and_auth,test_retention_timer,test_all_profiles,test_content_encoding_gzip)
endif()
if(TARGET lwstore)
  lw_unit_test(test_coll SOURCES ${CMAKE_SOURCE_DIR}/tests/unit/test_coll.c LIBS lwcoll)
endif()

# Crash safety of leakwatchd itself: SIGKILL during heavy ingest, 20 times
# on the same database; corrupted/foreign database files at startup.
if(TARGET leakwatchd)
  lw_integration_test(collector_daemon_crash SCRIPT test_daemon_crash.py GO_PEERS TIMEOUT 240)
endif()

# leakwatchd's own agent: served and self-scraped in plain builds; in
# sanitizer builds --agent.enable is a clear error (the test checks which).
if(TARGET leakwatchd)
  lw_integration_test(collector_self_agent SCRIPT test_self_agent.py TIMEOUT 180)
endif()
