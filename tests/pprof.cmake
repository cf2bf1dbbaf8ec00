# Tests of pprof/ (the profile codec): cmocka unit tests and the integration
# test against real Go profiles and `go tool pprof`.
lw_unit_test(test_pprof SOURCES ${CMAKE_SOURCE_DIR}/tests/unit/test_pprof.c
             LIBS lwpprof)
target_include_directories(test_pprof PRIVATE ${CMAKE_BINARY_DIR}/pprof/gen)
add_dependencies(test_pprof lwpprof)
lw_integration_test(pprof_go SCRIPT test_pprof_go.py GO_PEERS TIMEOUT 600)
# Allocation failure injection: route the codec's malloc/calloc/realloc
# through wrappers in test_pprof.c.
target_link_options(test_pprof PRIVATE -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc)
