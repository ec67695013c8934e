"""The MQTT room: the topic tree, the durable outbox, the login and TLS set-up, the broker
connection and its publisher process (for the daemon and the demo alike), the retained port and
patch states, per-login command limits, and `crosspatch tail`.
"""
