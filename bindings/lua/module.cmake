# module.cmake — mg.so, the `mg` module for Debian's stock lua5.4
# (`local mg = require "mg"`; docs/embedding.md).
#
# A Lua C module as Debian's lua-* packages build them: no liblua5.4.so
# among its NEEDED libraries (the Lua API comes from the interpreter that
# loads it: /usr/bin/lua5.4 has Lua linked in and exports it), one exported
# symbol (luaopen_mg; mg.map hides the rest). It is made of the same PIC
# objects as libmg-runtime.so.0 (supervisor, bindings, host) and its own
# luaopen_mg, on libmg.so.0, libuv and jansson.
#
# Build tree: ${CMAKE_BINARY_DIR}/lua/mg.so (LUA_CPATH=<build>/lua/?.so).
# Installed: ${CMAKE_INSTALL_LIBDIR}/lua/5.4/mg.so, where Debian's lua5.4
# looks under /usr/local and /usr (lib/x86_64-linux-gnu/lua/5.4 is on its
# default package.cpath under /usr).
set(MG_LUA_MODULE_DIR ${CMAKE_INSTALL_LIBDIR}/lua/5.4)
set(MG_LUA_MODULE_MAP ${CMAKE_CURRENT_LIST_DIR}/module/mg.map)

# Where mg.so finds what belongs with it once installed, relative to its
# own directory: libmg.so.0 (rpath), mgrun's programs (mg.bindir) and the
# shipped Lua library (mg.strategies on package.path).
set(MG__LUADIR "${CMAKE_INSTALL_FULL_LIBDIR}/lua/5.4")
file(RELATIVE_PATH MG_LUADIR_TO_LIBDIR "${MG__LUADIR}" "${CMAKE_INSTALL_FULL_LIBDIR}")
file(RELATIVE_PATH MG_LUADIR_TO_BINDIR "${MG__LUADIR}" "${CMAKE_INSTALL_FULL_BINDIR}")
file(RELATIVE_PATH MG_LUADIR_TO_SCRIPTS "${MG__LUADIR}"
     "${CMAKE_INSTALL_FULL_DATADIR}/mgrun/scripts")

add_library(mg_lua_module MODULE ${CMAKE_CURRENT_LIST_DIR}/module/lmg_module.c
  $<TARGET_OBJECTS:mgsup_objs> $<TARGET_OBJECTS:mglua_objs>
  $<TARGET_OBJECTS:mghost_objs>)
set_target_properties(mg_lua_module PROPERTIES
  OUTPUT_NAME mg PREFIX ""
  LIBRARY_OUTPUT_DIRECTORY ${CMAKE_BINARY_DIR}/lua
  INSTALL_RPATH "\$ORIGIN/${MG_LUADIR_TO_LIBDIR}"
  LINK_DEPENDS ${MG_LUA_MODULE_MAP})
target_include_directories(mg_lua_module PRIVATE bindings runtime/include
  runtime/host ${LUA_INCLUDE_DIRS} ${UV_INCLUDE_DIRS})
target_compile_definitions(mg_lua_module PRIVATE
  MG_LUADIR_TO_BINDIR="${MG_LUADIR_TO_BINDIR}"
  MG_LUADIR_TO_SCRIPTS="${MG_LUADIR_TO_SCRIPTS}"
  MG_BUILD_BINDIR="${CMAKE_BINARY_DIR}"
  MG_SCRIPTS_DIR="${MG_SCRIPTS_DIR}")
# Not liblua: the interpreter provides Lua's symbols.
target_link_libraries(mg_lua_module PRIVATE mg_shared PkgConfig::UV
  PkgConfig::JANSSON Threads::Threads m dl)
target_link_options(mg_lua_module PRIVATE
  -Wl,--version-script=${MG_LUA_MODULE_MAP})
add_dependencies(mg_lua_module mg-hog) # mg.bindir of the build tree

install(TARGETS mg_lua_module LIBRARY DESTINATION ${MG_LUA_MODULE_DIR})
