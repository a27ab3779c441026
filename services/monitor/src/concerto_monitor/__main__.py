from concerto_monitor.service import definition
from concerto_runtime import run

run(definition)
