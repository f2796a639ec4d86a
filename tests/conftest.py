"""Session fixtures live in one plugin module per test-bed part (docker, s3, k8s, ...)."""

pytest_plugins: list[str] = [
    "tests.fixtures_bundle",
    "tests.fixtures_docker",
    "tests.fixtures_k8s",
    "tests.fixtures_s3",
]
