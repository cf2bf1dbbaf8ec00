# soak.cmake — the watcher watched: leakwatchd through ~10k scrapes of canned
# and real targets, its own threads and RSS flat, no leak verdict on itself
# (tests/integration/test_soak.py; self-profiling through the agent only in
# a non-sanitized build).
if(TARGET leakwatchd)
  lw_integration_test(soak SCRIPT test_soak.py GO_PEERS TIMEOUT 300)
endif()
