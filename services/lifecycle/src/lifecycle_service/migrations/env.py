from teamkit.migrations import run_env

run_env()
