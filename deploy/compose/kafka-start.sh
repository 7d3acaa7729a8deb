#!/bin/sh
# Starts the Kafka node of deploy/compose.yaml: formats its storage on the first start
# with the SCRAM credentials of the platform's admin and of the node itself (KIP-900,
# so SASL works from the first start; later starts keep what the storage holds), then
# runs the broker. The passwords come from compose secrets and are written only to
# /tmp, a tmpfs: the node's own login, and the admin client config the healthcheck uses.
set -eu
umask 077
work=/tmp/kafka
mkdir -p "$work"
node_password=$(cat /run/secrets/kafka-node-password)
admin_password=$(cat /run/secrets/kafka-admin-password)
scram=org.apache.kafka.common.security.scram.ScramLoginModule

cp /etc/mappa/kafka-node.properties "$work/server.properties"
printf '%s\n' "listener.name.internal.scram-sha-512.sasl.jaas.config=$scram required username=\"kafka-node\" password=\"$node_password\";" \
  >>"$work/server.properties"
cat >"$work/admin.properties" <<PROPERTIES
security.protocol=SASL_SSL
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=$scram required username="mappa-admin" password="$admin_password";
ssl.truststore.type=PEM
ssl.truststore.location=/etc/mappa/kafka-ca.pem
PROPERTIES

/opt/kafka/bin/kafka-storage.sh format --ignore-formatted \
  --cluster-id "$KAFKA_CLUSTER_ID" --config "$work/server.properties" \
  --add-scram "SCRAM-SHA-512=[name=mappa-admin,password=$admin_password]" \
  --add-scram "SCRAM-SHA-512=[name=kafka-node,password=$node_password]"
exec /opt/kafka/bin/kafka-server-start.sh "$work/server.properties"
