# SPDX-License-Identifier: Apache-2.0
# apilb_scenarios(PREFIX SCRIPT [LABELS l...] [TIMEOUT s] [ENVIRONMENT v...]): one CTest per
# scenario of a Python test file, named PREFIX_<scenario>. The file says which scenarios it has
# (`SCRIPT --list`: a scenario's name, then its own labels, one scenario a line; harness.py's
# @scenario), asked at configure time; a change to the file or to the harness configures again.
# Every test gets the labels LABELS plus its own, TIMEOUT (default 300), ENVIRONMENT (one
# argument per variable) and SKIP_RETURN_CODE 77 (a scenario that cannot run here, e.g. without
# root, says SKIP and exits 77). Needs find_package(Python3 COMPONENTS Interpreter).
set(APILB_HARNESS ${CMAKE_CURRENT_LIST_DIR}/integration/harness.py)

function(apilb_scenarios prefix script)
  cmake_parse_arguments(PARSE_ARGV 2 A "" "TIMEOUT" "LABELS;ENVIRONMENT")
  if(A_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "apilb_scenarios(${prefix}): unknown arguments ${A_UNPARSED_ARGUMENTS}")
  endif()
  if(NOT A_TIMEOUT)
    set(A_TIMEOUT 300)
  endif()
  set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${script} ${APILB_HARNESS})
  execute_process(COMMAND ${Python3_EXECUTABLE} ${script} --list
                  WORKING_DIRECTORY ${CMAKE_CURRENT_BINARY_DIR}
                  OUTPUT_VARIABLE listed ERROR_VARIABLE err RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "${script} --list failed (${rc}):\n${listed}${err}")
  endif()
  string(REGEX REPLACE "\n$" "" listed "${listed}")
  if(listed STREQUAL "")
    message(FATAL_ERROR "${script} --list names no scenario")
  endif()
  string(REPLACE "\n" ";" lines "${listed}")
  foreach(line IN LISTS lines)
    if(NOT line MATCHES "^[a-z][a-z0-9_]*( [a-z][a-z0-9_-]*)*$")
      message(FATAL_ERROR "${script} --list: not a scenario line: '${line}'")
    endif()
    string(REPLACE " " ";" words "${line}")
    list(POP_FRONT words name)
    add_test(NAME ${prefix}_${name} COMMAND Python3::Interpreter ${script} ${name})
    set_tests_properties(${prefix}_${name} PROPERTIES LABELS "${A_LABELS};${words}"
                         TIMEOUT ${A_TIMEOUT} ENVIRONMENT "${A_ENVIRONMENT}"
                         SKIP_RETURN_CODE 77)
  endforeach()
endfunction()
