# install.cmake — what `cmake --install BUILD --prefix P` puts under P:
#   bin/mgrun, bin/mg-hog, bin/mgrun-plot (unless MG_BUILD_PLOT is OFF)
#   lib/libmg.so.0, lib/libmg-runtime.so.0 (+ the .so links), lib/libmg.a,
#   lib/libmg-runtime.a
#   include/mg/*.h                  one header per module, mg/mg.h umbrella
#   lib/pkgconfig/mg.pc, mg-runtime.pc
#   lib/cmake/mg/                   find_package(mg): mg::mg, mg::runtime
#   share/mgrun/scripts, share/mgrun/policies, share/man/man1/mgrun.1
#   share/mgrun/contrib/systemd/mgrun@.service (ExecStart: this bin/),
#   share/mgrun/contrib/k8s/ (node-problem-detector plugin, examples)
# (lib/ is GNUInstallDirs' libdir: lib/x86_64-linux-gnu under /usr.)
include(CMakePackageConfigHelpers)

install(TARGETS mgrun mg-hog DESTINATION ${CMAKE_INSTALL_BINDIR})
if(MG_BUILD_PLOT) # `mgrun plot` finds it beside mgrun
  install(TARGETS mgrun-plot DESTINATION ${CMAKE_INSTALL_BINDIR})
endif()
install(TARGETS mg_shared mg_runtime_shared EXPORT mgTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(TARGETS mg mg_runtime_static
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(DIRECTORY runtime/include/mg DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
  FILES_MATCHING PATTERN "*.h")

install(DIRECTORY scripts/ DESTINATION ${CMAKE_INSTALL_DATADIR}/mgrun/scripts)
install(DIRECTORY policies/ DESTINATION ${CMAKE_INSTALL_DATADIR}/mgrun/policies)
install(FILES docs/mgrun.1 DESTINATION ${CMAKE_INSTALL_MANDIR}/man1)
set(MG_BINDIR ${CMAKE_INSTALL_FULL_BINDIR})
configure_file(contrib/systemd/mgrun@.service.in
  ${CMAKE_BINARY_DIR}/contrib/systemd/mgrun@.service @ONLY)
install(FILES ${CMAKE_BINARY_DIR}/contrib/systemd/mgrun@.service
  DESTINATION ${CMAKE_INSTALL_DATADIR}/mgrun/contrib/systemd)
install(DIRECTORY contrib/k8s/ DESTINATION ${CMAKE_INSTALL_DATADIR}/mgrun/contrib/k8s
  USE_SOURCE_PERMISSIONS)

# pkg-config: relocatable (prefix from the .pc file's own place).
file(RELATIVE_PATH MG_PC_TO_PREFIX "${CMAKE_INSTALL_FULL_LIBDIR}/pkgconfig"
     "${CMAKE_INSTALL_PREFIX}")
foreach(pc mg mg-runtime)
  configure_file(cmake/${pc}.pc.in ${CMAKE_BINARY_DIR}/${pc}.pc @ONLY)
  install(FILES ${CMAKE_BINARY_DIR}/${pc}.pc
    DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig)
endforeach()

# CMake package.
set(MG_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/mg)
install(EXPORT mgTargets NAMESPACE mg:: DESTINATION ${MG_CMAKE_DIR})
configure_package_config_file(cmake/mgConfig.cmake.in
  ${CMAKE_BINARY_DIR}/mgConfig.cmake INSTALL_DESTINATION ${MG_CMAKE_DIR})
write_basic_package_version_file(${CMAKE_BINARY_DIR}/mgConfigVersion.cmake
  COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_BINARY_DIR}/mgConfig.cmake
  ${CMAKE_BINARY_DIR}/mgConfigVersion.cmake DESTINATION ${MG_CMAKE_DIR})
