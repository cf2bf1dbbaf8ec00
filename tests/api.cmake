# Tests of api/ (HTTP API server, parameter parsing) and the leakwatch CLI.
lw_unit_test(test_api_params SOURCES ${CMAKE_SOURCE_DIR}/tests/unit/test_api_params.c LIBS lwapi_params)
lw_unit_test(test_api_json SOURCES ${CMAKE_SOURCE_DIR}/tests/unit/test_api_json.c
                              ${CMAKE_SOURCE_DIR}/common/lw_json.c LIBS lwcommon)
target_include_directories(test_api_json PRIVATE ${CMAKE_SOURCE_DIR}/common)
if(TARGET lwapi)
  lw_unit_test(test_api_webconfig SOURCES ${CMAKE_SOURCE_DIR}/tests/unit/test_api_webconfig.c LIBS lwapi)
endif()

if(TARGET lwapi-testd)
  lw_integration_test(api SCRIPT test_api.py GO_PEERS TIMEOUT 300)
  lw_integration_test(cli SCRIPT test_cli.py GO_PEERS TIMEOUT 300)
endif()
# Against the real daemon, once collector/ links the API into leakwatchd.
if(TARGET leakwatchd AND TARGET lwapi)
  get_target_property(LW_DAEMON_DEFS leakwatchd COMPILE_DEFINITIONS)
  if(LW_DAEMON_DEFS MATCHES "LW_HAVE_API")
    lw_integration_test(api_daemon SCRIPT test_api_daemon.py GO_PEERS TIMEOUT 300)
  endif()
endif()
