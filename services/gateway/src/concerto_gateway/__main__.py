from concerto_gateway.app import create_app
from concerto_gateway.settings import GatewaySettings
from concerto_runtime import serve

settings = GatewaySettings()
serve(create_app(settings), "gateway", settings.http_port or 8080, settings)
