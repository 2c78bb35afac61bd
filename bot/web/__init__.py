"""The ASGI web server: webhook endpoints and health."""
