# Tests of deploy/ and dashboards/ (systemd unit, Kubernetes manifests,
# Dockerfile, rules, dashboard). Needs the built leakwatchd.
if(TARGET leakwatchd)
  lw_integration_test(deploy SCRIPT test_deploy.py TIMEOUT 120)
endif()
if(TARGET leakwatchd)
  lw_integration_test(dashboard_prometheus SCRIPT test_dashboard_prometheus.py GO_PEERS TIMEOUT 240)
endif()
if(TARGET leakwatchd AND TARGET leaky-demo AND TARGET leakwatch)
  lw_integration_test(quickstart SCRIPT test_quickstart.py TIMEOUT 300)
endif()
