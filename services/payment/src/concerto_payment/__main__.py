from concerto_payment.service import definition
from concerto_runtime import run

run(definition)
