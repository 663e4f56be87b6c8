# One static library per source folder. Files are globbed so that adding a file
# needs no CMake edit. Files named *_avx2.cpp, *_avx512.cpp, *_neon.cpp are
# compiled for that instruction set only and must be reached through run-time
# dispatch (util/cpu_features.h).
function(herd_add_folder_library name dir)
  file(GLOB srcs CONFIGURE_DEPENDS ${dir}/*.cpp)
  if(CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|AMD64")
    # GCC 12's own intrinsic headers start many results from a self-initialised "undefined"
    # vector (__m512 __Y = __Y) and then warn about it in every caller: silenced for these files.
    set(quiet_intrinsics "-Wno-uninitialized;-Wno-maybe-uninitialized")
    foreach(f ${srcs})
      if(f MATCHES "_avx2\\.cpp$")
        set_source_files_properties(${f} PROPERTIES COMPILE_OPTIONS
          "-mavx2;-mfma;-mf16c;-mbmi2;${quiet_intrinsics}")
      elseif(f MATCHES "_avx512\\.cpp$")
        set_source_files_properties(${f} PROPERTIES COMPILE_OPTIONS
          "-mavx2;-mfma;-mf16c;-mbmi2;-mavx512f;-mavx512bw;-mavx512vl;-mavx512dq;-mavx512vnni;-mavx512bf16;${quiet_intrinsics}")
      endif()
    endforeach()
    list(FILTER srcs EXCLUDE REGEX "_neon\\.cpp$")
  else()
    list(FILTER srcs EXCLUDE REGEX "_(avx2|avx512)\\.cpp$")
    if(CMAKE_SYSTEM_PROCESSOR MATCHES "aarch64|arm64|ARM64")
      # NEON itself is part of ARMv8.0, so *_neon.cpp need no flags, except the dot-product
      # kernels (dot*_neon.cpp): they use the optional ARMv8.2 sdot and are reached only when
      # the CPU reports it (cpu_features().neon_dotprod).
      foreach(f ${srcs})
        get_filename_component(base ${f} NAME)
        if(base MATCHES "^dot.*_neon\\.cpp$")
          set_source_files_properties(${f} PROPERTIES COMPILE_OPTIONS "-march=armv8.2-a+dotprod")
        endif()
      endforeach()
    else()
      list(FILTER srcs EXCLUDE REGEX "_neon\\.cpp$")
    endif()
  endif()
  if(NOT srcs)
    # A folder whose code is not written yet still gives a (empty) library to link against.
    set(empty ${CMAKE_CURRENT_BINARY_DIR}/${name}_empty.cpp)
    file(WRITE ${empty} "// no sources yet\n")
    set(srcs ${empty})
  endif()
  add_library(${name} STATIC ${srcs})
  target_include_directories(${name} PUBLIC ${PROJECT_SOURCE_DIR}/src)
endfunction()

# One test binary per source folder: tests/<folder>/**/*_test.cpp (subfolders mirror the
# folder's own, e.g. tests/cluster/transport/).
function(herd_add_folder_tests name dir)
  file(GLOB_RECURSE srcs CONFIGURE_DEPENDS ${dir}/*_test.cpp)
  if(NOT srcs)
    return()
  endif()
  add_executable(${name} ${srcs} ${ARGN})
  target_link_libraries(${name} PRIVATE herd_test_support GTest::gtest GTest::gtest_main GTest::gmock)
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/tests)
  gtest_discover_tests(${name} DISCOVERY_TIMEOUT 60 PROPERTIES TIMEOUT 600)
endfunction()
