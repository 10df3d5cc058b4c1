"""Test plugins: every fixture of a real peer lives in tests/harness/."""

pytest_plugins = [
    "tests.harness.postgres",
    "tests.harness.kafka",
    "tests.harness.moto",
    "tests.harness.oidc",
    "tests.harness.live_services",
]
