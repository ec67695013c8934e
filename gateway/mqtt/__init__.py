"""The MQTT room: the topic tree, the durable outbox, the broker connection and its publisher
process, per-login command limits, and `crosspatch tail`.
"""
