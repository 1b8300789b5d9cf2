# SPDX-License-Identifier: Apache-2.0
# The health checker's unit suites; included by CMakeLists.txt.
add_executable(test_healthauth test_healthauth.c)
target_link_libraries(test_healthauth PRIVATE proxy_core PkgConfig::CHECK)
add_test(NAME unit_healthauth COMMAND test_healthauth)
set_tests_properties(unit_healthauth PROPERTIES LABELS unit ENVIRONMENT "CK_FORK=no"
                     SKIP_RETURN_CODE 77)

# The rise/fall and drain rules (health_verdict), pure.
add_executable(test_healthverdict test_healthverdict.c)
target_link_libraries(test_healthverdict PRIVATE proxy_core PkgConfig::CHECK)
add_test(NAME unit_healthverdict COMMAND test_healthverdict)
set_tests_properties(unit_healthverdict PROPERTIES LABELS unit ENVIRONMENT "CK_FORK=no"
                     SKIP_RETURN_CODE 77)
