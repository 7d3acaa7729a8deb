"""mappa-broker core: envelope crypto, trust directory, agreements, topics, Kafka I/O, audit."""
