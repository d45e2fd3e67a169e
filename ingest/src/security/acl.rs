//! Kafka's ACL model and the authorizer every request handler asks.
