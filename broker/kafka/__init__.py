"""Kafka plumbing: the transport, the brokers we start, topics, ACLs, client security."""
