# SPDX-License-Identifier: Apache-2.0
# The health checker's own scenarios (test_healthcheck.py); included by CMakeLists.txt.
set(APILB_HEALTHCHECK_SCENARIOS drain_tcp drain_readyz churn local_errors ca_appears
    full_handshakes interval_timeout no_credentials_unverified)
foreach(s ${APILB_HEALTHCHECK_SCENARIOS})
  add_test(NAME it_healthcheck_${s}
           COMMAND Python3::Interpreter ${CMAKE_CURRENT_SOURCE_DIR}/test_healthcheck.py ${s})
  set_tests_properties(it_healthcheck_${s} PROPERTIES LABELS integration TIMEOUT 300
                       ENVIRONMENT "APILB=$<TARGET_FILE:apilb>" SKIP_RETURN_CODE 77)
endforeach()

# --health-auth against the fake apiserver with anonymous auth off (own network namespace).
foreach(s none_hides_dead_etcd token client_cert unusable)
  add_test(NAME it_healthauth_${s}
           COMMAND Python3::Interpreter ${CMAKE_CURRENT_SOURCE_DIR}/test_healthauth.py ${s})
  set_tests_properties(it_healthauth_${s} PROPERTIES LABELS integration TIMEOUT 300
                       ENVIRONMENT "APILB=$<TARGET_FILE:apilb>" SKIP_RETURN_CODE 77)
endforeach()
