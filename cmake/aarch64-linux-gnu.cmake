# Cross-compiles tern for 64-bit Arm on Debian 12 (multiarch) and runs the
# results under qemu-user. Used by scripts/test_arm.sh:
#   cmake -S . -B build/arm -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake -DTERN_ARM_SUBSET=ON
# Needs g++-aarch64-linux-gnu, qemu-user and the arm64 -dev packages
# (scripts/setup.sh installs them).
set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)
set(CMAKE_C_COMPILER aarch64-linux-gnu-gcc)
set(CMAKE_CXX_COMPILER aarch64-linux-gnu-g++)
set(CMAKE_LIBRARY_ARCHITECTURE aarch64-linux-gnu)

# Libraries, headers and CMake package files come from the cross toolchain's
# root or from the multiarch directories of the host root
# (/usr/lib/aarch64-linux-gnu, arch-independent /usr/include and /usr/share);
# CMAKE_LIBRARY_ARCHITECTURE keeps the search out of /usr/lib/x86_64-linux-gnu.
# Programs (pkg-config, qemu) are the host's.
set(CMAKE_FIND_ROOT_PATH /usr/aarch64-linux-gnu /)
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# pkg-config reads only the arm64 .pc files (and arch-independent ones), never
# the host's /usr/lib/x86_64-linux-gnu/pkgconfig.
set(ENV{PKG_CONFIG_LIBDIR} /usr/lib/aarch64-linux-gnu/pkgconfig:/usr/share/pkgconfig)
set(ENV{PKG_CONFIG_PATH} "")
set(ENV{PKG_CONFIG_SYSROOT_DIR} "")

# ctest and gtest_discover_tests run the test binaries under qemu. `-cpu max`
# exposes every Armv8/v9 feature qemu emulates (NEON, SVE, SVE2), so Highway's
# run-time dispatch finds every target compiled in attainable. No `-L`: the
# loader and libc come from libc6:arm64 (/lib/ld-linux-aarch64.so.1, pulled in
# by the arm64 -dev packages) like every other arm64 library. `-L
# /usr/aarch64-linux-gnu` would pair the cross toolchain's ld.so (2.36-8cross1)
# with libc6:arm64's libc.so.6 (2.36-9+deb12uN), and that mismatch hangs in
# the first pthread_create.
set(CMAKE_CROSSCOMPILING_EMULATOR qemu-aarch64 -cpu max)
