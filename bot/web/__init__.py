"""The ASGI web server: webhook endpoints, Slack's requests, health, request signatures."""
