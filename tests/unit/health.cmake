# SPDX-License-Identifier: Apache-2.0
# The health checker's unit suites; included by CMakeLists.txt.
apilb_unit_test(healthauth)

# The rise/fall and drain rules (health_verdict), pure.
apilb_unit_test(healthverdict)
