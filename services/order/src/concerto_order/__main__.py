from concerto_order.service import definition
from concerto_runtime import run

run(definition)
