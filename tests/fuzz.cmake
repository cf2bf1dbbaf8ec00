# fuzz.cmake — replays the fuzz targets' seed corpora (tests/fuzz/corpus/<t>)
# and every crash input ever found (tests/data/fuzz-regressions/<t>) through
# the same LLVMFuzzerTestOneInput() entry points, built with the normal
# compiler and sanitizers, so the suite exercises them without clang.
include(${CMAKE_SOURCE_DIR}/tests/fuzz/targets.cmake)
foreach(t ${LW_FUZZ_TARGETS})
  set(have_libs TRUE)
  foreach(lib ${LW_FUZZ_LIBS_${t}})
    if(NOT TARGET ${lib})
      set(have_libs FALSE)
    endif()
  endforeach()
  if(NOT have_libs)
    continue()
  endif()
  add_executable(fuzz_replay_${t} ${LW_FUZZ_DIR}/replay_main.c ${LW_FUZZ_DIR}/fuzz_common.c
                 ${LW_FUZZ_DIR}/fuzz_${t}.c)
  target_include_directories(fuzz_replay_${t} PRIVATE ${LW_FUZZ_DIR})
  target_link_libraries(fuzz_replay_${t} PRIVATE ${LW_FUZZ_LIBS_${t}})
  lw_sanitize(fuzz_replay_${t})
  add_test(NAME unit.fuzz_replay_${t}
    COMMAND fuzz_replay_${t} ${LW_FUZZ_DIR}/corpus/${t} -o ${LW_FUZZ_REGRESSION_DIR}/${t})
  set_tests_properties(unit.fuzz_replay_${t} PROPERTIES TIMEOUT 300)
endforeach()
