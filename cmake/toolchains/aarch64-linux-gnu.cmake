# Cross build for 64-bit ARM Linux with Debian's cross compiler (apt: g++-aarch64-linux-gnu) and
# multiarch arm64 libraries (libgtest-dev:arm64, libfmt-dev:arm64, libspdlog-dev:arm64). The test
# binaries run under qemu-user: qemu-aarch64 -L / <binary> (scripts/test-arm.sh does all of it).
# Configure with -DHERD_KERNELS_ONLY=ON: the folders above kernels/ need libraries (ICU, UCX, OpenSSL, cpp-httplib) that are rarely installed for arm64.
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)

set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)

# Multiarch packages live in /usr/lib/aarch64-linux-gnu (found through CMAKE_LIBRARY_ARCHITECTURE);
# the cross toolchain's own runtime in /usr/aarch64-linux-gnu.
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE BOTH)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE BOTH)

# gtest_discover_tests runs the test binary at build time: through qemu. "-L /" loads the
# multiarch loader and libc (libc6:arm64, installed with the libraries above): the cross
# toolchain's own copy in /usr/aarch64-linux-gnu can be a different Debian revision, and mixing
# that loader with the multiarch libc.so.6 hangs in the first pthread_create.
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64 -L /)
