# targets.cmake — the fuzz targets and the libraries each links; shared by
# tests/fuzz/CMakeLists.txt (libFuzzer build, clang) and tests/fuzz.cmake
# (replay executables in the normal suite).
set(LW_FUZZ_TARGETS pprof_decode config file_sd api_params)
set(LW_FUZZ_LIBS_pprof_decode lwpprof)
set(LW_FUZZ_LIBS_config lwconfig)
set(LW_FUZZ_LIBS_file_sd lwconfig)
set(LW_FUZZ_LIBS_api_params lwapi_params)
set(LW_FUZZ_DIR ${CMAKE_SOURCE_DIR}/tests/fuzz)
set(LW_FUZZ_REGRESSION_DIR ${CMAKE_SOURCE_DIR}/tests/data/fuzz-regressions)
