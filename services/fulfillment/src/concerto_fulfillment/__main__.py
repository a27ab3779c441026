from concerto_fulfillment.service import definition
from concerto_runtime import run

run(definition)
