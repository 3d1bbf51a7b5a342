# The Debian package, made by CPack from the install rules:
#
#   cmake --build build/release && (cd build/release && cpack -G DEB)
#
# writes provium_<version>_<arch>.deb holding exactly what `cmake --install`
# installs, with prefix /usr. CPack rather than a debian/ directory
# (docs/install.md): one build system and one set of install rules for
# both, so the install test checks the package's contents too, and no
# packaging toolchain beyond dpkg-dev (build-essential) is needed.
set(CPACK_GENERATOR DEB)
set(CPACK_PACKAGE_NAME provium)
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGE_CONTACT "Provium streams developers <provium@localhost>")
set(CPACK_PACKAGE_DESCRIPTION_SUMMARY
  "byte streams of test VMs as files under a FUSE mount")
set(CPACK_DEBIAN_PACKAGE_DESCRIPTION
  "Provium streams turns every flow of bytes out of a test VM - guest log
files and process output (through a guest agent), the VM console, packets
on bridges and NICs - into files under a FUSE mount (/run/provium), which
cat, tail -f, grep and shell scripts use directly, and a Lua 5.4 library
for tests. Contains proviumfs, provium-agent, the provium CLI, provium-vm,
provium-test, the Lua module, man pages, a systemd unit and bash
completion.")
set(CPACK_PACKAGING_INSTALL_PREFIX /usr)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT) # provium_0.1.0_amd64.deb
set(CPACK_DEBIAN_PACKAGE_SECTION utils)
# Shared libraries (libc, libfuse3, libpcap) through dpkg-shlibdeps; the
# rest by hand: fusermount3 to unmount as a user and in the unit, the Lua
# interpreter and dkjson for the CLI and provium-test. provium-vm needs
# QEMU only to start VMs.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_DEPENDS "fuse3, lua5.4, lua-dkjson")
set(CPACK_DEBIAN_PACKAGE_RECOMMENDS "bash-completion")
set(CPACK_DEBIAN_PACKAGE_SUGGESTS "qemu-system-x86, busybox-static, iproute2, tcpdump")
# Stop a running service before its files go (the unit is never enabled
# by the package: `systemctl enable --now proviumfs` is the user's call).
set(CPACK_DEBIAN_PACKAGE_CONTROL_EXTRA
  ${CMAKE_CURRENT_LIST_DIR}/deb/prerm ${CMAKE_CURRENT_LIST_DIR}/deb/postrm)
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)
set(CPACK_STRIP_FILES ON)
include(CPack)
