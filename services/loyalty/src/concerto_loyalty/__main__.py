from concerto_loyalty.service import definition
from concerto_runtime import run

run(definition)
