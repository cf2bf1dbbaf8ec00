# tests/agent.cmake — the agent's tests. The agent interposes malloc, so its
# unit test and test programs are never sanitized (no lw_sanitize, no
# lw_unit_test); they are checked with valgrind and the stress test instead.
if(TARGET leakwatch-agent)
  # C programs driven by the integration tests; built WITHOUT the agent
  # (they get it through LD_PRELOAD).
  foreach(prog plain_service malloc_stress)
    add_executable(agent_${prog} ${CMAKE_CURRENT_SOURCE_DIR}/agent_programs/${prog}.c)
    target_link_libraries(agent_${prog} PRIVATE Threads::Threads m)
    target_compile_options(agent_${prog} PRIVATE -g -O1 -fno-omit-frame-pointer)
  endforeach()

  # A C++ program (operator new/delete, demangled names), when a C++
  # compiler exists.
  include(CheckLanguage)
  check_language(CXX)
  if(CMAKE_CXX_COMPILER)
    enable_language(CXX)
    add_executable(agent_cxx_service ${CMAKE_CURRENT_SOURCE_DIR}/agent_programs/cxx_service.cpp)
    target_link_libraries(agent_cxx_service PRIVATE Threads::Threads)
    # The project's warning flags are C flags; drop the C-only ones here.
    get_target_property(cxx_opts agent_cxx_service COMPILE_OPTIONS)
    list(REMOVE_ITEM cxx_opts -Wstrict-prototypes -Wmissing-prototypes)
    set_property(TARGET agent_cxx_service PROPERTY COMPILE_OPTIONS ${cxx_opts})
    target_compile_options(agent_cxx_service PRIVATE -g -O1 -fno-omit-frame-pointer)
  endif()

  add_executable(test_agent ${CMAKE_CURRENT_SOURCE_DIR}/unit/test_agent.c)
  target_link_libraries(test_agent PRIVATE leakwatch-agent PkgConfig::CMOCKA Threads::Threads)
  target_compile_options(test_agent PRIVATE -g)
  add_test(NAME unit.test_agent COMMAND test_agent)
  set_tests_properties(unit.test_agent PROPERTIES TIMEOUT 120
    ENVIRONMENT "CMOCKA_MESSAGE_OUTPUT=STDOUT")

  find_program(LW_VALGRIND valgrind)
  if(LW_VALGRIND)
    add_test(NAME unit.test_agent_valgrind
      COMMAND ${LW_VALGRIND} --error-exitcode=99 --errors-for-leak-kinds=definite
              --leak-check=full --trace-children=no
              --suppressions=${CMAKE_CURRENT_SOURCE_DIR}/agent_programs/valgrind.supp
              $<TARGET_FILE:test_agent>)
    # Alone: valgrind serializes the test's threads, and its fork and sleep
    # timings do not hold next to another test on 2 cores.
    set_tests_properties(unit.test_agent_valgrind PROPERTIES TIMEOUT 600 RUN_SERIAL TRUE
      ENVIRONMENT "CMOCKA_MESSAGE_OUTPUT=STDOUT;LW_UNDER_VALGRIND=1")
  endif()

  set(LW_AGENT_TEST_DEPS leaky-demo agent_plain_service agent_malloc_stress)
  lw_integration_test(agent_demo_threads SCRIPT test_agent_threads.py TIMEOUT 180)
  lw_integration_test(agent_demo_heap SCRIPT test_agent_heap.py TIMEOUT 180)
  lw_integration_test(agent_demo_cpu SCRIPT test_agent_cpu.py TIMEOUT 180)
  lw_integration_test(agent_endpoints SCRIPT test_agent_endpoints.py TIMEOUT 180)
  lw_integration_test(agent_preload SCRIPT test_agent_preload.py TIMEOUT 180)
  # One stress script, one ctest entry per rate. Each keeps 8 threads busy,
  # so they run alone: next to them, timing-sensitive tests (thread stack
  # capture on 2 cores) would measure the stress, not the agent.
  lw_integration_test(agent_stress_rate1 SCRIPT test_agent_stress.py TIMEOUT 600
    ENV LW_STRESS_RATE=rate1)
  lw_integration_test(agent_stress_default SCRIPT test_agent_stress.py TIMEOUT 600
    ENV LW_STRESS_RATE=default)
  set_tests_properties(integration.agent_stress_rate1 integration.agent_stress_default
    PROPERTIES RUN_SERIAL TRUE)
endif()

# Bearer token and request limits of the agent's server; also scraped by
# leakwatchd with and without credentials.
if(TARGET leakwatch-agent AND TARGET leakwatchd)
  lw_integration_test(agent_auth SCRIPT test_agent_auth.py TIMEOUT 180)
endif()
