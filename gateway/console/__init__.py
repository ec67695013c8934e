"""The dispatcher's web console: static pages that talk to the broker over MQTT-over-WebSockets,
and the small HTTP server (`crosspatch console`) that serves them."""
